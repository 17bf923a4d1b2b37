use super::*;

const GOOD: &str = r#"
store = "/var/lib/snap"
[sources.app]
paths = ["/srv/app/data"]
checkpoint = true
[policy]
keep_within = "30d"
[remotes.bucket]
url = "gs://b/snap"
policy = { keep_within = "90d" }
[jobs.nightly]
action = "take"
schedule = "daily 03:00"
[jobs.prune]
action = "gc"
schedule = "0 4 * * *"
[jobs.offsite]
action = "mirror"
remote = "bucket"
schedule = "daily 04:30"
[monitoring]
log = "/tmp/snap.jsonl"
"#;

#[test]
fn good_config_parses() {
    let c = Config::parse(GOOD, Path::new("snap.toml")).unwrap();
    assert_eq!(c.jobs.len(), 3);
    assert_eq!(c.remote_url("bucket").unwrap(), "gs://b/snap");
    assert_eq!(
        c.remote_policy("bucket").unwrap().keep_within.as_deref(),
        Some("90d")
    );
}

#[test]
fn errors_name_the_line() {
    let cases = [
        (
            GOOD.replace("schedule = \"daily 03:00\"", "schedule = \"daily 25:00\""),
            13,
        ),
        (GOOD.replace("remote = \"bucket\"", "remote = \"nope\""), 19),
        (
            GOOD.replace("url = \"gs://b/snap\"", "url = \"ftp://b\""),
            9,
        ),
        (
            GOOD.replace("keep_within = \"30d\"", "keep_within = \"thirty\""),
            6,
        ),
        (GOOD.replace("checkpoint = true", "checkpoint = maybe"), 5),
        (GOOD.replace("checkpoint = true", "chekpoint = true"), 5),
    ];
    for (text, line) in cases {
        let err = Config::parse(&text, Path::new("snap.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("snap.toml:{line}:")), "{err}");
    }
}

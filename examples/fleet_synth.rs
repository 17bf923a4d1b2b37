//! Builds a big fleet bucket fast, for `scripts/bench_fleet.sh`: HOSTS
//! hosts, each with a real host's `config` and `keys/` (TEMPLATE, a
//! `file://` fleet bucket's `hosts/<id>/` directory) under a store id of its
//! own, and the catalogs an operator's compaction leaves after ENTRIES
//! snapshots (one merged catalog with an entry each, then four a mirror
//! wrote since), sealed to the recipients in RECIPIENTS. Their packs,
//! records and holds are left out: they are under prefixes that neither
//! `fleet status` nor another host's listing reads (a bucket lists by
//! prefix), and copying a thousand packs per host would take the emulator
//! hours.
//!
//! usage: fleet_synth TEMPLATE URL HOSTS ENTRIES RECIPIENTS

use chrono::{Duration, Utc};
use snap::mirror::catalog::{Catalog, Entry, Newest, Summary, CATALOG_FORMAT};
use snap::mirror::crypt::{parse_recipients, Codec};
use snap::mirror::Remote;
use std::path::{Path, PathBuf};

fn files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        match path.is_dir() {
            true if rel == "keys" => files(root, &path, out),
            false if rel == "config" || rel.starts_with("keys/") => out.push((rel, path)),
            _ => {}
        }
    }
}

/// Host `k`'s catalogs: (key, plain bytes).
fn catalogs(store_id: &str, entries: usize) -> Vec<(String, Vec<u8>)> {
    let start = Utc::now().fixed_offset() - Duration::hours(entries as i64);
    let entry = |i: usize| Entry {
        id: hex::encode(blake3::hash(format!("{store_id} {i}").as_bytes()).as_bytes()),
        time: start + Duration::hours(i as i64),
        paths: vec!["/srv/app/data".into(), "/srv/app/app.db".into()],
        tags: vec!["hourly".into()],
        point: false,
        databases: vec![("app.db".into(), true)],
        size: 40 << 20,
        added: 300 << 10,
    };
    let mut out = Vec::new();
    let mut summary = Summary::default();
    let add = |s: &mut Summary, e: &Entry| {
        s.records += 1;
        s.bytes_sent += e.added;
        for p in &e.paths {
            let n = Newest {
                id: e.id.clone(),
                time: e.time,
                point: false,
                check_ok: true,
            };
            s.newest.insert(p.clone(), n);
        }
        s.last_mirror = Some(e.time);
    };
    let merged: Vec<Entry> = (0..entries - 4).map(entry).collect();
    merged.iter().for_each(|e| add(&mut summary, e));
    let key = |e: &Entry, c: &str| {
        let ns = e.time.timestamp_nanos_opt().unwrap();
        format!("catalogs/{ns:020}-{}{c}", &e.id[..8])
    };
    let last = merged.last().unwrap().clone();
    let catalog = |entries: Vec<Entry>, summary: &Summary, replaces: Vec<String>| Catalog {
        catalog: CATALOG_FORMAT,
        store_id: store_id.to_string(),
        host: format!("host-{}", &store_id[..6]),
        written: entries.last().unwrap().time,
        entries,
        replaces,
        summary: summary.clone(),
    };
    let c = catalog(merged, &summary, Vec::new());
    out.push((key(&last, "-c0000000"), serde_json::to_vec(&c).unwrap()));
    for i in entries - 4..entries {
        let e = entry(i);
        add(&mut summary, &e);
        let c = catalog(vec![e.clone()], &summary, Vec::new());
        out.push((key(&e, ""), serde_json::to_vec(&c).unwrap()));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, template, url, hosts, entries, recipients] = args.as_slice() else {
        panic!("usage: fleet_synth TEMPLATE URL HOSTS ENTRIES RECIPIENTS");
    };
    let (hosts, entries): (usize, usize) = (hosts.parse().unwrap(), entries.parse().unwrap());
    let text = std::fs::read_to_string(recipients).unwrap();
    let codec = Codec::Age {
        recipients: parse_recipients(&text, recipients).unwrap(),
        identities: Vec::new(),
        naming: [0; 32],
        others: Vec::new(),
    };
    let mut objects = Vec::new();
    files(Path::new(template), Path::new(template), &mut objects);
    let remote = Remote::open(url).unwrap();
    let mut items: Vec<(String, Vec<u8>)> = Vec::new();
    for k in 0..hosts {
        let id = &blake3::hash(format!("synthetic host {k}").as_bytes()).to_hex()[..32];
        for (rel, path) in &objects {
            items.push((format!("hosts/{id}/{rel}"), std::fs::read(path).unwrap()));
        }
        for (key, plain) in catalogs(id, entries) {
            items.push((format!("hosts/{id}/{key}"), codec.seal(&plain).unwrap()));
        }
    }
    let n = items.len();
    let (done, failed) = remote.upload(
        items,
        &|_, bytes: &Vec<u8>| Ok(bytes.clone()),
        &snap::progress::Reporter::none(),
    );
    assert!(failed.is_none(), "{failed:?}");
    assert!(done.iter().all(|(_, _, r)| r.is_ok()));
    println!("{hosts} hosts, {n} objects");
}

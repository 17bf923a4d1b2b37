//! Validation of a parsed configuration: every error names `path:line`
//! (through `at`, from a value's span) or at least the file.

use super::{Action, Config, Job, Policy};
use crate::error::{Error, Result};
use toml::Spanned;

/// Makes an error at a byte offset of the configuration's text.
pub(super) type At<'a> = dyn Fn(usize, String) -> Error + 'a;

/// Checks policies, remotes, watches, sources and jobs.
pub(super) fn check(config: &Config, at: &At) -> Result<()> {
    let path = &config.path;
    let check_policy = |p: &Spanned<Policy>| -> Result<()> {
        p.get_ref()
            .within()
            .map_err(|e| at(p.span().start, e.to_string()))?;
        if p.get_ref().is_empty() {
            return Err(at(p.span().start, "the policy has no keep rule".into()));
        }
        Ok(())
    };
    if let Some(p) = &config.policy {
        check_policy(p)?;
    }
    for r in config.remotes.values() {
        let url = r.url.get_ref();
        let schemes = ["gs://", "s3://", "azblob://", "file:///"];
        if !schemes.iter().any(|s| url.starts_with(s)) {
            return Err(at(
                r.url.span().start,
                format!("remote url {url:?}: expected gs://BUCKET/PREFIX, s3://BUCKET/PREFIX, azblob://CONTAINER/PREFIX or file:///PATH"),
            ));
        }
        if let Some(p) = &r.policy {
            check_policy(p)?;
        }
        r.fleet_options()
            .map_err(|e| at(r.url.span().start, e.to_string()))?;
    }
    for (name, w) in &config.watches {
        w.check(&config.remotes)
            .map_err(|e| Error::Invalid(format!("{}: watch {name}: {e}", path.display())))?;
    }
    for (name, s) in &config.sources {
        if s.paths.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: source {name} has no paths",
                path.display()
            )));
        }
    }
    for (name, job) in &config.jobs {
        check_job(config, name, job, at)?;
    }
    Ok(())
}

/// Checks one job: its schedule, sources, remote, and that a gc has a policy.
fn check_job(config: &Config, name: &str, job: &Job, at: &At) -> Result<()> {
    let path = &config.path;
    if let Some(s) = &job.schedule {
        crate::schedule::Schedule::parse(s.get_ref())
            .map_err(|e| at(s.span().start, format!("job {name}: {e}")))?;
    }
    for s in &job.sources {
        if !config.sources.contains_key(s.get_ref()) {
            return Err(at(
                s.span().start,
                format!("job {name}: no source named {:?}", s.get_ref()),
            ));
        }
    }
    match (&job.remote, job.action) {
        (Some(r), _) if !config.remotes.contains_key(r.get_ref()) => {
            return Err(at(
                r.span().start,
                format!("job {name}: no remote named {:?}", r.get_ref()),
            ));
        }
        (None, Action::Mirror) => {
            return Err(Error::Invalid(format!(
                "{}: job {name}: a mirror job needs `remote`",
                path.display()
            )));
        }
        _ => {}
    }
    let needs_policy = match (&job.remote, job.action) {
        (None, Action::Gc) => config.policy.is_none(),
        (Some(r), Action::Gc) => config.remotes[r.get_ref()].policy.is_none(),
        _ => false,
    };
    if needs_policy {
        return Err(Error::Invalid(format!(
            "{}: job {name}: gc needs a policy for its tier",
            path.display()
        )));
    }
    Ok(())
}

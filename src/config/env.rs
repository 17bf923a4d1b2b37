//! `${NAME}` in a configuration file, expanded from the environment.

use super::line_of;
use crate::error::{Error, Result};
use std::path::Path;

/// Expands `${NAME}` from the environment (as Litestream does), so secrets
/// and per-host paths stay out of the file; `$${` is a literal `${`. An
/// unset variable is an error naming it and its line, never an empty string.
pub fn expand_env(text: &str, path: &Path, var: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let at = text.len() - rest.len() + i;
        let end = rest[i..].find('}').ok_or_else(|| {
            Error::Invalid(format!(
                "{}:{}: `${{` without a closing `}}`",
                path.display(),
                line_of(text, at)
            ))
        })?;
        let name = &rest[i + 2..i + end];
        let value = var(name).ok_or_else(|| {
            Error::Invalid(format!(
                "{}:{}: environment variable {name} is not set",
                path.display(),
                line_of(text, at)
            ))
        })?;
        out.push_str(&value);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_expanded_and_unset_ones_named() {
        let var = |n: &str| (n == "BUCKET").then(|| "b1".to_string());
        let p = Path::new("snap.toml");
        assert_eq!(
            expand_env("url = \"gs://${BUCKET}/x\"", p, var).unwrap(),
            "url = \"gs://b1/x\""
        );
        assert_eq!(
            expand_env("a = \"$${HOME}\"", p, var).unwrap(),
            "a = \"${HOME}\""
        );
        let e = expand_env("\n\nstore = \"${NOPE}\"", p, var)
            .unwrap_err()
            .to_string();
        assert!(e.contains("snap.toml:3") && e.contains("NOPE"), "{e}");
    }
}

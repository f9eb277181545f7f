//! Per-connection identity in requests: `{i}` in a target's path or query, or in a
//! header value, stands for the connection's number in the run (0-based, the same on
//! every reconnect), so each connection can be a different user (`/ws?user=u{i}`,
//! `Authorization: Bearer token-{i}`). Nothing else is expanded; text without `{i}`
//! is used as it is, with no per-connection cost.

use std::fmt::Write;

/// The placeholder.
pub const CONNECTION: &str = "{i}";

/// Whether `text` has anything to expand.
pub fn is_template(text: &str) -> bool {
    text.contains(CONNECTION)
}

/// Appends `template` to `out` with every `{i}` replaced by `i`.
pub fn expand_into(template: &str, i: u64, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find(CONNECTION) {
        out.push_str(&rest[..at]);
        let _ = write!(out, "{i}");
        rest = &rest[at + CONNECTION.len()..];
    }
    out.push_str(rest);
}

/// `template` expanded for connection `i`.
pub fn expand(template: &str, i: u64) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    expand_into(template, i, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_becomes_the_connection_number() {
        assert_eq!(expand("/ws?user=u{i}&unit={i}", 41), "/ws?user=u41&unit=41");
        assert_eq!(expand("/plain", 7), "/plain");
        assert_eq!(expand("{i}{i}", 0), "00");
        assert_eq!(expand("{ i} {x} {", 3), "{ i} {x} {", "only {{i}} is a placeholder");
        assert!(is_template("Bearer t-{i}") && !is_template("Bearer t-{j}"));
        let mut out = String::from("x");
        expand_into("-{i}", u64::MAX, &mut out);
        assert_eq!(out, format!("x-{}", u64::MAX));
    }
}

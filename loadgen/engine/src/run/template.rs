//! Per-connection identity in requests: placeholders in a target's (or a cohort's)
//! path and query, and in header values, expanded for each connection:
//!
//! - `{i}`: the connection's number in the run (0-based, the same on every reconnect),
//!   so each connection can be a different user (`/ws?user=u{i}`,
//!   `Authorization: Bearer token-{i}`);
//! - `{token}`: `RunConfig::tokens[i % len]`, a value the caller computed per
//!   connection (a signed handshake token, say): `Authorization: Bearer {token}`,
//!   `/ws?token={token}`. Inserted as it is (the caller makes it safe for where it
//!   goes); a run that uses `{token}` without tokens is refused before it starts.
//!
//! Nothing else is expanded; text without a placeholder is used as it is, with no
//! per-connection cost.

use std::fmt::Write;

/// The connection-number placeholder.
pub const CONNECTION: &str = "{i}";

/// The token placeholder.
pub const TOKEN: &str = "{token}";

/// Whether `text` has anything to expand.
pub fn is_template(text: &str) -> bool {
    text.contains(CONNECTION) || text.contains(TOKEN)
}

/// Whether `text` uses `{token}`.
pub fn uses_token(text: &str) -> bool {
    text.contains(TOKEN)
}

/// The token of connection `i`: `tokens[i % len]` (`""` without tokens).
pub fn token_of(tokens: Option<&[String]>, i: u64) -> &str {
    match tokens {
        Some(t) if !t.is_empty() => &t[(i % t.len() as u64) as usize],
        _ => "",
    }
}

/// Appends `template` to `out` with every `{i}` replaced by `i` and every `{token}`
/// by `token`.
pub fn expand_into(template: &str, i: u64, token: &str, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix(CONNECTION) {
            let _ = write!(out, "{i}");
            rest = after;
        } else if let Some(after) = tail.strip_prefix(TOKEN) {
            out.push_str(token);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

/// `template` expanded for connection `i` with its `token`.
pub fn expand(template: &str, i: u64, token: &str) -> String {
    let mut out = String::with_capacity(template.len() + 8 + token.len());
    expand_into(template, i, token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_becomes_the_connection_number() {
        assert_eq!(expand("/ws?user=u{i}&unit={i}", 41, ""), "/ws?user=u41&unit=41");
        assert_eq!(expand("/plain", 7, ""), "/plain");
        assert_eq!(expand("{i}{i}", 0, ""), "00");
        assert_eq!(expand("{ i} {x} {", 3, ""), "{ i} {x} {", "only {{i}} is a placeholder");
        assert!(is_template("Bearer t-{i}") && !is_template("Bearer t-{j}"));
        let mut out = String::from("x");
        expand_into("-{i}", u64::MAX, "", &mut out);
        assert_eq!(out, format!("x-{}", u64::MAX));
    }

    #[test]
    fn token_is_the_connections_own_from_the_list_round_robin() {
        let tokens: Vec<String> = vec!["aa.1".into(), "bb.2".into(), "cc.3".into()];
        let t = Some(tokens.as_slice());
        assert_eq!(token_of(t, 0), "aa.1");
        assert_eq!(token_of(t, 4), "bb.2", "i % len");
        assert_eq!(token_of(None, 4), "");
        assert_eq!(expand("Bearer {token}", 5, token_of(t, 5)), "Bearer cc.3");
        assert_eq!(expand("/ws?u={i}&t={token}&again={token}", 1, "bb.2"), "/ws?u=1&t=bb.2&again=bb.2");
        assert_eq!(expand("{tok} {{token}}", 1, "T"), "{tok} {T}", "only {{token}} is a placeholder");
        assert!(is_template("/ws?t={token}") && uses_token("/ws?t={token}") && !uses_token("/ws?u={i}"));
    }
}

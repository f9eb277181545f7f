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
//! - `{since}`: what the connection has seen, for servers that replay what a client
//!   missed (`/ws?user=u{i}&since={since}`): the highest sequence number the
//!   connection has received on its first push stream (the first stream it heard
//!   from, kept across its reconnects), filled in on every connect. Before anything
//!   arrived there is no number: a query parameter whose value holds `{since}` is then
//!   left out whole (with its `&`, and the `?` when it was the only one), and
//!   elsewhere (a path segment, a header value) `{since}` expands to nothing.
//!
//! Nothing else is expanded; text without a placeholder is used as it is, with no
//! per-connection cost. Expansion writes into a caller's buffer and allocates nothing
//! of its own.

use std::fmt::Write;

/// The connection-number placeholder.
pub const CONNECTION: &str = "{i}";

/// The token placeholder.
pub const TOKEN: &str = "{token}";

/// The placeholder of the highest sequence number received.
pub const SINCE: &str = "{since}";

/// What a connection's placeholders stand for on this attempt.
#[derive(Clone, Copy, Debug)]
pub struct Ids<'a> {
    /// `{i}`: the connection's number in the run.
    pub i: u64,
    /// `{token}`: its token (`""` without tokens).
    pub token: &'a str,
    /// `{since}`: the highest sequence number it has received (`None`: nothing yet).
    pub since: Option<u64>,
}

/// Whether `text` has anything to expand.
pub fn is_template(text: &str) -> bool {
    text.contains(CONNECTION) || text.contains(TOKEN) || text.contains(SINCE)
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

/// Appends `template` (a header value, or any text that is not a path) to `out` with
/// every placeholder replaced (`{since}` without a number: nothing).
pub fn expand_into(template: &str, ids: Ids<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix(CONNECTION) {
            let _ = write!(out, "{}", ids.i);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(TOKEN) {
            out.push_str(ids.token);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(SINCE) {
            if let Some(since) = ids.since {
                let _ = write!(out, "{since}");
            }
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

/// Appends a path and query to `out`, expanded as [`expand_into`] does, except that
/// without a `since` number each query parameter holding `{since}` is left out whole.
pub fn expand_path_into(template: &str, ids: Ids<'_>, out: &mut String) {
    let Some((path, query)) = template.split_once('?').filter(|_| ids.since.is_none() && template.contains(SINCE))
    else {
        return expand_into(template, ids, out);
    };
    expand_into(path, ids, out);
    let mut first = true;
    for param in query.split('&').filter(|p| !p.contains(SINCE)) {
        out.push(if first { '?' } else { '&' });
        first = false;
        expand_into(param, ids, out);
    }
}

/// A path and query expanded for a connection ([`expand_path_into`]).
pub fn expand_path(template: &str, ids: Ids<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 24 + ids.token.len());
    expand_path_into(template, ids, &mut out);
    out
}

/// A header value expanded for a connection ([`expand_into`]).
pub fn expand(template: &str, ids: Ids<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 24 + ids.token.len());
    expand_into(template, ids, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(i: u64, token: &str) -> Ids<'_> {
        Ids { i, token, since: None }
    }

    #[test]
    fn every_placeholder_becomes_the_connection_number() {
        assert_eq!(expand_path("/ws?user=u{i}&unit={i}", ids(41, "")), "/ws?user=u41&unit=41");
        assert_eq!(expand("/plain", ids(7, "")), "/plain");
        assert_eq!(expand("{i}{i}", ids(0, "")), "00");
        assert_eq!(expand("{ i} {x} {", ids(3, "")), "{ i} {x} {", "only {{i}} is a placeholder");
        assert!(is_template("Bearer t-{i}") && !is_template("Bearer t-{j}"));
        let mut out = String::from("x");
        expand_into("-{i}", ids(u64::MAX, ""), &mut out);
        assert_eq!(out, format!("x-{}", u64::MAX));
    }

    #[test]
    fn token_is_the_connections_own_from_the_list_round_robin() {
        let tokens: Vec<String> = vec!["aa.1".into(), "bb.2".into(), "cc.3".into()];
        let t = Some(tokens.as_slice());
        assert_eq!(token_of(t, 0), "aa.1");
        assert_eq!(token_of(t, 4), "bb.2", "i % len");
        assert_eq!(token_of(None, 4), "");
        assert_eq!(expand("Bearer {token}", ids(5, token_of(t, 5))), "Bearer cc.3");
        assert_eq!(expand_path("/ws?u={i}&t={token}&again={token}", ids(1, "bb.2")), "/ws?u=1&t=bb.2&again=bb.2");
        assert_eq!(expand("{tok} {{token}}", ids(1, "T")), "{tok} {T}", "only {{token}} is a placeholder");
        assert!(is_template("/ws?t={token}") && uses_token("/ws?t={token}") && !uses_token("/ws?u={i}"));
    }

    #[test]
    fn since_is_the_number_seen_or_its_query_parameter_left_out() {
        let seen = Ids { i: 3, token: "", since: Some(41) };
        assert_eq!(expand_path("/ws?user=u{i}&since={since}", seen), "/ws?user=u3&since=41");
        assert_eq!(expand_path("/ws?since={since}&user=u{i}", seen), "/ws?since=41&user=u3");
        assert_eq!(expand_path("/ws?since={since}", Ids { since: Some(0), ..seen }), "/ws?since=0", "0 is a number");
        assert!(is_template("/ws?since={since}"));
        // Nothing received yet: the parameter goes, with its separator.
        let fresh = Ids { since: None, ..seen };
        assert_eq!(expand_path("/ws?user=u{i}&since={since}", fresh), "/ws?user=u3");
        assert_eq!(expand_path("/ws?since={since}&user=u{i}", fresh), "/ws?user=u3");
        assert_eq!(expand_path("/ws?a=1&since={since}&b={i}", fresh), "/ws?a=1&b=3");
        assert_eq!(expand_path("/ws?since={since}", fresh), "/ws", "the only parameter: no ? left");
        assert_eq!(expand_path("/ws?user=u{i}", fresh), "/ws?user=u3");
        // Outside a query, and in header values: the number or nothing.
        assert_eq!(expand_path("/resume/{since}", fresh), "/resume/");
        assert_eq!(expand_path("/resume/{since}?u={i}", seen), "/resume/41?u=3");
        assert_eq!(expand("last={since}", fresh), "last=");
        assert_eq!(expand("last={since}", seen), "last=41");
        let mut out = String::with_capacity(64);
        let cap = out.capacity();
        expand_path_into("/ws?user=u{i}&since={since}", fresh, &mut out);
        out.clear();
        expand_path_into("/ws?user=u{i}&since={since}", seen, &mut out);
        assert_eq!((out.as_str(), out.capacity()), ("/ws?user=u3&since=41", cap), "written into the caller's buffer");
    }
}

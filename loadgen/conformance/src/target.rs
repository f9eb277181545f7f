//! Parsing of `ws://host:port/path` (and, for load runs, `wss://`) targets. Only loopback-or-named hosts are resolved
//! here; the check never follows redirects.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::DriverError;

/// A parsed `ws://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host as written (name or address; IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// wss:// (TLS).
    pub tls: bool,
}

impl Target {
    /// Parses `ws://host[:port][/path]` (the conformance check speaks ws:// only).
    pub fn parse(url: &str) -> Result<Self, DriverError> {
        let target = Self::parse_url(url)?;
        if target.tls {
            return Err(DriverError::BadUrl(format!(
                "{url:?}: wss:// is not supported by the conformance check yet; use ws:// (expected ws://host:port/path)"
            )));
        }
        Ok(target)
    }

    /// Parses `ws://host[:port][/path]` or `wss://host[:port][/path]` (port 443 by default).
    pub fn parse_url(url: &str) -> Result<Self, DriverError> {
        let bad = |why: &str| DriverError::BadUrl(format!("{url:?}: {why} (expected ws://host:port/path)"));
        let (rest, tls) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => (rest, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => (rest, true),
            _ => return Err(bad("scheme must be ws:// or wss://")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported; pass an Authorization header"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h.to_owned(), tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("port must be 1-65535"))?,
        };
        Ok(Self { host, port, path, tls })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port { host } else { format!("{host}:{}", self.port) }
    }

    /// Resolves to socket addresses.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, DriverError> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| DriverError::BadUrl(format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(DriverError::BadUrl(format!("{} resolves to no address", self.host)));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let t = Target::parse("ws://127.0.0.1:8080/chat?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("127.0.0.1", 8080, "/chat?x=1"));
        assert_eq!(t.host_header(), "127.0.0.1:8080");
        let t = Target::parse("WS://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str(), t.host_header().as_str()), (80, "/", "localhost"));
        let t = Target::parse_url("wss://example.test/feed").unwrap();
        assert_eq!((t.tls, t.port, t.host_header().as_str()), (true, 443, "example.test"));
        let t = Target::parse_url("wss://127.0.0.1:8443/").unwrap();
        assert_eq!((t.tls, t.host_header().as_str()), (true, "127.0.0.1:8443"));
        let t = Target::parse("ws://[::1]:9000?q").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str(), t.host_header().as_str()), ("::1", "/?q", "[::1]:9000"));
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for bad in ["http://h/", "wss://h/", "ws://:80/", "ws://h:0/", "ws://h:99999/", "ws://u:p@h/", "h:80"] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.contains("ws://"), "{bad}: {err}");
        }
    }
}

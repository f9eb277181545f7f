//! A small per-connection cookie jar (a subset of RFC 6265).
//!
//! Supported: `Set-Cookie` name=value pairs (values kept byte for byte, quotes
//! included), replaced when name and path match, deleted by `Max-Age` ≤ 0 or an
//! `Expires` in the past; `Max-Age` wins over `Expires`; expired cookies are dropped
//! before each request; `Path` is stored and matched (§5.1.4); `Secure` cookies are sent
//! only when the transport is secure. Limits on the number of cookies and their total
//! size evict the oldest cookie first. Cookies are sent in the order they were first
//! set.
//!
//! Not supported, on purpose (one connection talks to one origin): `Domain` (ignored,
//! every cookie is host-only), the default path of §5.1.4 (a cookie without `Path`
//! applies to every path), `HttpOnly` and `SameSite` (no scripts, no sites here),
//! public-suffix checks, `__Host-`/`__Secure-` prefixes, nameless cookies, and the
//! longest-path-first ordering of §5.4.

use super::date::parse_http_date;
use super::{is_token_byte, trim_ows};

/// Session cookies never expire on their own.
const SESSION: u64 = u64::MAX;

/// One cookie in the jar, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie<'a> {
    /// Name (an HTTP token).
    pub name: &'a [u8],
    /// Value, exactly as the server sent it.
    pub value: &'a [u8],
    /// Path the cookie applies to (`/` when the server gave none).
    pub path: &'a [u8],
    /// Sent only over a secure transport.
    pub secure: bool,
    /// Unix second at which it expires; `None` for a session cookie.
    pub expires_unix_s: Option<u64>,
}

/// What [`CookieJar::set_cookie`] did with a `Set-Cookie` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CookieOutcome {
    /// A new cookie was stored.
    Stored,
    /// A cookie with the same name and path got the new value.
    Replaced,
    /// A cookie with the same name and path was deleted (expiry in the past).
    Deleted,
    /// Nothing to do: an already expired cookie the jar did not hold.
    NotHeld,
    /// Ignored: no `=`, an empty or non-token name, a control character in the value,
    /// or larger than the jar's byte limit.
    Ignored,
}

/// Where one cookie's bytes are in the jar's arena: name, value and path, back to back.
#[derive(Clone, Copy, Debug)]
struct Entry {
    off: u32,
    name_len: u16,
    value_len: u16,
    path_len: u16,
    secure: bool,
    expires_s: u64,
}

impl Entry {
    fn len(&self) -> usize {
        usize::from(self.name_len) + usize::from(self.value_len) + usize::from(self.path_len)
    }
}

/// The cookies of one connection: one byte arena and a small index, so replacing a
/// cookie with a value of the same size (a refreshed token) writes in place, and steady
/// state allocates nothing.
#[derive(Clone, Debug)]
pub struct CookieJar {
    data: Vec<u8>,
    entries: Vec<Entry>,
    max_cookies: u16,
    max_bytes: u32,
}

impl Default for CookieJar {
    /// 32 cookies, 8 KiB of names, values and paths.
    fn default() -> Self {
        Self::new(32, 8 << 10)
    }
}

impl CookieJar {
    /// An empty jar holding at most `max_cookies` cookies and `max_bytes` bytes of names,
    /// values and paths (each cookie also at most 65535 bytes of each).
    pub fn new(max_cookies: u16, max_bytes: u32) -> Self {
        Self { data: Vec::new(), entries: Vec::new(), max_cookies, max_bytes }
    }

    /// Number of cookies held (expired ones included until the next request drops them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the jar is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every cookie (capacity is kept).
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    /// Heap bytes held, for memory accounting.
    pub fn buffer_capacity(&self) -> usize {
        self.data.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// The cookies, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Cookie<'_>> {
        self.entries.iter().map(|e| self.cookie(e))
    }

    /// The value of the first cookie named `name` (case-sensitive, as cookie names are).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|c| c.name == name.as_bytes()).map(|c| c.value)
    }

    /// Stores a session cookie for every path, as if the server had sent
    /// `Set-Cookie: name=value` (to seed a session obtained elsewhere).
    pub fn insert(&mut self, name: &str, value: &str) -> CookieOutcome {
        self.store(name.as_bytes(), value.as_bytes(), b"/", false, SESSION)
    }

    /// Applies one `Set-Cookie` header value received at `now_unix_s`.
    pub fn set_cookie(&mut self, header: &[u8], now_unix_s: u64) -> CookieOutcome {
        let mut parts = header.split(|&b| b == b';');
        let pair = parts.next().unwrap_or_default();
        let Some(eq) = pair.iter().position(|&b| b == b'=') else { return CookieOutcome::Ignored };
        let (name, value) = (trim_ows(&pair[..eq]), trim_ows(&pair[eq + 1..]));
        let mut path: &[u8] = b"/";
        let mut secure = false;
        let mut max_age: Option<u64> = None;
        let mut expires: Option<u64> = None;
        for attr in parts {
            let (key, val) = match attr.iter().position(|&b| b == b'=') {
                Some(i) => (trim_ows(&attr[..i]), trim_ows(&attr[i + 1..])),
                None => (trim_ows(attr), &b""[..]),
            };
            if key.eq_ignore_ascii_case(b"max-age") {
                // §5.2.2: an optional '-' then digits; anything else ignores the attribute.
                let (negative, digits) = match val.strip_prefix(b"-") {
                    Some(d) => (true, d),
                    None => (false, val),
                };
                if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                    max_age = Some(if negative || digits.iter().all(|&b| b == b'0') {
                        0
                    } else {
                        let secs = digits
                            .iter()
                            .try_fold(0u64, |acc, &b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')));
                        now_unix_s.saturating_add(secs.unwrap_or(u64::MAX))
                    });
                }
            } else if key.eq_ignore_ascii_case(b"expires") {
                if let Some(at) = parse_http_date(val) {
                    expires = Some(at);
                }
            } else if key.eq_ignore_ascii_case(b"path") {
                path = if val.first() == Some(&b'/') { val } else { b"/" };
            } else if key.eq_ignore_ascii_case(b"secure") {
                secure = true;
            }
        }
        let expires_s = max_age.or(expires).unwrap_or(SESSION);
        if expires_s <= now_unix_s {
            return match self.find(name, path) {
                Some(i) => {
                    self.remove(i);
                    CookieOutcome::Deleted
                }
                None => CookieOutcome::NotHeld,
            };
        }
        self.store(name, value, path, secure, expires_s)
    }

    fn store(&mut self, name: &[u8], value: &[u8], path: &[u8], secure: bool, expires_s: u64) -> CookieOutcome {
        let valid = !name.is_empty()
            && name.iter().copied().all(is_token_byte)
            && value.iter().all(|&b| b >= 0x20 && b != 0x7f && b != b';')
            && path.iter().all(|&b| b > 0x20 && b != 0x7f && b != b';');
        let (Ok(name_len), Ok(value_len), Ok(path_len)) =
            (u16::try_from(name.len()), u16::try_from(value.len()), u16::try_from(path.len()))
        else {
            return CookieOutcome::Ignored;
        };
        let len = name.len() + value.len() + path.len();
        if !valid || len > self.max_bytes as usize || self.max_cookies == 0 {
            return CookieOutcome::Ignored;
        }
        let mut outcome = CookieOutcome::Stored;
        if let Some(i) = self.find(name, path) {
            let e = self.entries[i];
            if e.value_len == value_len {
                // Same size (a refreshed token): overwrite in place, keep the order.
                let start = e.off as usize + usize::from(e.name_len);
                self.data[start..start + value.len()].copy_from_slice(value);
                self.entries[i] = Entry { secure, expires_s, ..e };
                return CookieOutcome::Replaced;
            }
            self.remove(i);
            outcome = CookieOutcome::Replaced;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= usize::from(self.max_cookies) || self.data.len() + len > self.max_bytes as usize)
        {
            self.remove(0);
        }
        let off = self.data.len() as u32;
        self.data.extend_from_slice(name);
        self.data.extend_from_slice(value);
        self.data.extend_from_slice(path);
        self.entries.push(Entry { off, name_len, value_len, path_len, secure, expires_s });
        outcome
    }

    /// Drops the cookies whose expiry is at or before `now_unix_s`.
    pub fn remove_expired(&mut self, now_unix_s: u64) {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].expires_s <= now_unix_s {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Appends `Cookie: a=1; b=2\r\n` with the cookies that apply to `path` (the request
    /// target; the query is ignored) at `now_unix_s`, or nothing when none applies.
    pub fn write_header(&self, path: &str, now_unix_s: u64, secure_transport: bool, out: &mut Vec<u8>) {
        let path = path.as_bytes();
        let path = &path[..path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(path.len())];
        let mut first = true;
        for c in self.iter() {
            if c.expires_unix_s.is_some_and(|at| at <= now_unix_s)
                || (c.secure && !secure_transport)
                || !path_matches(path, c.path)
            {
                continue;
            }
            out.extend_from_slice(if first { b"Cookie: " } else { b"; " });
            first = false;
            out.extend_from_slice(c.name);
            out.push(b'=');
            out.extend_from_slice(c.value);
        }
        if !first {
            out.extend_from_slice(b"\r\n");
        }
    }

    fn cookie(&self, e: &Entry) -> Cookie<'_> {
        let off = e.off as usize;
        let name_end = off + usize::from(e.name_len);
        let value_end = name_end + usize::from(e.value_len);
        Cookie {
            name: &self.data[off..name_end],
            value: &self.data[name_end..value_end],
            path: &self.data[value_end..off + e.len()],
            secure: e.secure,
            expires_unix_s: (e.expires_s != SESSION).then_some(e.expires_s),
        }
    }

    fn find(&self, name: &[u8], path: &[u8]) -> Option<usize> {
        self.entries.iter().position(|e| {
            let c = self.cookie(e);
            c.name == name && c.path == path
        })
    }

    fn remove(&mut self, i: usize) {
        let e = self.entries.remove(i);
        let (off, len) = (e.off as usize, e.len());
        self.data.drain(off..off + len);
        for later in &mut self.entries {
            if later.off as usize > off {
                later.off -= len as u32;
            }
        }
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(request_path: &[u8], cookie_path: &[u8]) -> bool {
    match request_path.strip_prefix(cookie_path) {
        Some(rest) => rest.is_empty() || cookie_path.ends_with(b"/") || rest.starts_with(b"/"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(jar: &CookieJar, path: &str, now: u64, secure: bool) -> String {
        let mut out = Vec::new();
        jar.write_header(path, now, secure, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn set_replace_delete() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.set_cookie(b"sid=abc; Path=/; HttpOnly", 100), CookieOutcome::Stored);
        assert_eq!(jar.set_cookie(b"pos = 17 ", 100), CookieOutcome::Stored);
        assert_eq!(header(&jar, "/status?x=1", 100, false), "Cookie: sid=abc; pos=17\r\n");
        assert_eq!(jar.set_cookie(b"sid=xyz", 100), CookieOutcome::Replaced, "same size: in place");
        assert_eq!(jar.set_cookie(b"pos=1234567", 100), CookieOutcome::Replaced, "new size: moved");
        assert_eq!(header(&jar, "/", 100, false), "Cookie: sid=xyz; pos=1234567\r\n");
        assert_eq!(jar.set_cookie(b"sid=gone; Max-Age=0", 100), CookieOutcome::Deleted);
        assert_eq!(jar.set_cookie(b"pos=; expires=Thu, 01 Jan 1970 00:00:00 GMT", 100), CookieOutcome::Deleted);
        assert_eq!(jar.set_cookie(b"never=held; Max-Age=-1", 100), CookieOutcome::NotHeld);
        assert!(jar.is_empty());
        assert_eq!(header(&jar, "/", 100, false), "");
    }

    #[test]
    fn expiry_max_age_wins_and_expired_cookies_are_not_sent() {
        let mut jar = CookieJar::default();
        // Max-Age wins over an Expires in the past, whatever the order.
        jar.set_cookie(b"a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=10", 1000);
        jar.set_cookie(b"b=2; Expires=Thu, 01 Jan 1970 00:00:10 GMT", 0);
        jar.set_cookie(b"c=3; Max-Age=oops", 1000);
        let a = jar.iter().find(|c| c.name == b"a").unwrap();
        assert_eq!(a.expires_unix_s, Some(1010));
        assert_eq!(jar.iter().find(|c| c.name == b"c").unwrap().expires_unix_s, None, "bad Max-Age ignored");
        assert_eq!(header(&jar, "/", 1005, false), "Cookie: a=1; c=3\r\n", "b expired at 10");
        assert_eq!(header(&jar, "/", 1010, false), "Cookie: c=3\r\n");
        jar.remove_expired(1010);
        assert_eq!(jar.len(), 1);
    }

    #[test]
    fn path_and_secure() {
        let mut jar = CookieJar::default();
        jar.set_cookie(b"q=1; Path=/queue", 0);
        jar.set_cookie(b"s=2; Secure", 0);
        jar.set_cookie(b"r=3; Path=relative", 0);
        assert_eq!(jar.iter().find(|c| c.name == b"r").unwrap().path, b"/");
        assert_eq!(header(&jar, "/queue/status", 0, false), "Cookie: q=1; r=3\r\n");
        assert_eq!(header(&jar, "/queue", 0, true), "Cookie: q=1; s=2; r=3\r\n");
        assert_eq!(header(&jar, "/queued", 0, false), "Cookie: r=3\r\n");
        // Same name, other path: a second cookie.
        assert_eq!(jar.set_cookie(b"q=9", 0), CookieOutcome::Stored);
        assert_eq!(jar.len(), 4);
    }

    #[test]
    fn hostile_values_are_ignored_and_limits_evict_the_oldest() {
        let mut jar = CookieJar::new(2, 16);
        for bad in [&b"novalue"[..], b"=v", b"a b=1", b"a=\x01", b"a=\x7f", b"", b";", b"x=0123456789abcdef"] {
            assert_eq!(jar.set_cookie(bad, 0), CookieOutcome::Ignored, "{bad:?}");
        }
        jar.set_cookie(b"a=1", 0);
        jar.set_cookie(b"b=2", 0);
        jar.set_cookie(b"c=3", 0);
        assert_eq!(jar.iter().map(|c| c.name.to_vec()).collect::<Vec<_>>(), [b"b", b"c"]);
        jar.set_cookie(b"d=012345678901", 0); // 1 + 12 + 1 bytes: evicts until it fits
        assert_eq!(jar.iter().map(|c| c.name.to_vec()).collect::<Vec<_>>(), [b"d"]);
        assert_eq!(jar.get("d"), Some(&b"012345678901"[..]));
        assert_eq!(CookieJar::new(0, 100).set_cookie(b"a=1", 0), CookieOutcome::Ignored);
    }

    #[test]
    fn steady_replacement_does_not_grow() {
        let mut jar = CookieJar::default();
        jar.set_cookie(b"token=0000; Max-Age=60", 0);
        jar.set_cookie(b"other=1", 0);
        let cap = jar.buffer_capacity();
        for i in 0..1000u32 {
            let v = format!("token={:04}; Max-Age=60", i % 10_000);
            assert_eq!(jar.set_cookie(v.as_bytes(), u64::from(i)), CookieOutcome::Replaced);
        }
        assert_eq!(jar.buffer_capacity(), cap);
        assert_eq!(jar.get("token"), Some(&b"0999"[..]));
    }

    #[test]
    fn path_match_rules() {
        assert!(path_matches(b"/", b"/"));
        assert!(path_matches(b"/a/b", b"/a"));
        assert!(path_matches(b"/a/b", b"/a/"));
        assert!(!path_matches(b"/ab", b"/a"));
        assert!(!path_matches(b"/", b"/a"));
    }
}

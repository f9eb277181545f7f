//! Signed, expiring handshake tokens (enabled by `--auth-secret`).
//!
//! A token is `PAYLOAD.SIGNATURE`: PAYLOAD is the base64url (no padding) of the JSON
//! object `{"user":"…","unit":"…","exp":SECONDS}` (`exp` in seconds since the Unix
//! epoch), and SIGNATURE the base64url (no padding) of HMAC-SHA256 over the PAYLOAD
//! text with the secret as key. Anyone holding the secret mints tokens with
//! [`mint`] or in a few lines of any language.
//!
//! A client presents it as `Authorization: Bearer TOKEN`, the query parameter
//! `token=TOKEN`, or the cookie `token=TOKEN` (looked for in that order). Verifying
//! is constant-time in the signature (ring's `hmac::verify`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub user: String,
    pub unit: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token is refused (each a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token is required (Authorization: Bearer, ?token= or the token cookie)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is wrong")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// A token for `claims`, signed with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of `token` if it is signed with `secret` and not expired at `now_s`.
pub fn verify(secret: &[u8], token: &str, now_s: u64) -> Result<Claims, TokenError> {
    let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), payload.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now_s {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The token a request carries: `Authorization: Bearer`, else `token=` in the query,
/// else the `token` cookie.
pub fn find_token<'a>(
    authorization: Option<&'a str>,
    query: Option<&'a str>,
    cookie: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(t) = authorization.and_then(|a| a.trim().strip_prefix("Bearer ")) {
        return Some(t.trim());
    }
    let pair = |list: &'a str, sep: char| {
        list.split(sep).map(str::trim).find_map(|p| p.strip_prefix("token=")).filter(|t| !t.is_empty())
    };
    query.and_then(|q| pair(q, '&')).or_else(|| cookie.and_then(|c| pair(c, ';')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims { user: "ana".into(), unit: "7".into(), exp }
    }

    #[test]
    fn tokens_verify_and_refuse() {
        let t = mint(b"s3cret", &claims(2000));
        assert_eq!(verify(b"s3cret", &t, 1000), Ok(claims(2000)));
        assert_eq!(verify(b"other", &t, 1000), Err(TokenError::BadSignature));
        assert_eq!(verify(b"s3cret", &t, 2000), Err(TokenError::Expired));
        assert_eq!(verify(b"s3cret", "nodot", 0), Err(TokenError::Malformed));
        assert_eq!(verify(b"s3cret", "a.!!", 0), Err(TokenError::Malformed));
        // A payload changed after signing (unit 7 → 8) fails the signature.
        let forged = mint(b"s3cret", &Claims { unit: "8".into(), ..claims(2000) });
        let spliced = format!("{}.{}", forged.split_once('.').unwrap().0, t.split_once('.').unwrap().1);
        assert_eq!(verify(b"s3cret", &spliced, 0), Err(TokenError::BadSignature));
        // Signed but not claims: malformed.
        let payload = URL_SAFE_NO_PAD.encode(b"[1]");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), payload.as_bytes());
        let odd = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(verify(b"k", &odd, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn tokens_are_found_in_header_query_or_cookie() {
        assert_eq!(find_token(Some("Bearer abc"), Some("token=q"), None), Some("abc"));
        assert_eq!(find_token(None, Some("user=a&token=q&unit=1"), Some("token=c")), Some("q"));
        assert_eq!(find_token(None, Some("user=a"), Some("theme=dark; token=c")), Some("c"));
        assert_eq!(find_token(Some("Basic x"), Some("token="), None), None);
    }
}

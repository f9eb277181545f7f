//! Per-connection handshake tokens, minted when the run starts: connection i's token
//! carries the scenario's user and unit claims with `{i}` replaced by i, and expires
//! `ttl` after the start. Two shapes:
//! - `reference`: the reference target's `PAYLOAD.SIGNATURE`
//!   (`loadgen_target::auth::mint`, docs/target.md);
//! - `jwt`: an HS256 JSON Web Token, `{"alg":"HS256","typ":"JWT"}` and
//!   `{"sub":USER,"unit":UNIT,"exp":SECONDS}`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use loadgen_scenario::{TokenFormat, TokenPlan};
use ring::hmac;

/// The tokens of connections `0..connections`, expiring `plan.ttl` after `now_s`.
pub fn mint_all(plan: &TokenPlan, connections: u32, now_s: u64) -> Vec<String> {
    let exp = now_s.saturating_add(plan.ttl.as_secs());
    (0..connections).map(|i| mint(plan, u64::from(i), exp)).collect()
}

/// Connection `i`'s token, expiring at `exp` (Unix seconds).
pub fn mint(plan: &TokenPlan, i: u64, exp: u64) -> String {
    let user = plan.user.replace("{i}", &i.to_string());
    let unit = plan.unit.replace("{i}", &i.to_string());
    match plan.format {
        TokenFormat::Reference => {
            loadgen_target::auth::mint(plan.secret.as_bytes(), &loadgen_target::auth::Claims { user, unit, exp })
        }
        TokenFormat::Jwt => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let claims = serde_json::json!({ "sub": user, "unit": unit, "exp": exp });
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            let signing = format!("{header}.{payload}");
            let key = hmac::Key::new(hmac::HMAC_SHA256, plan.secret.as_bytes());
            let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&key, signing.as_bytes()).as_ref());
            format!("{signing}.{signature}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plan(format: TokenFormat) -> TokenPlan {
        TokenPlan {
            secret: "s3cret".into(),
            user: "u{i}".into(),
            unit: "7".into(),
            ttl: Duration::from_secs(60),
            format,
        }
    }

    #[test]
    fn reference_tokens_verify_with_the_targets_own_code() {
        let tokens = mint_all(&plan(TokenFormat::Reference), 3, 1_000);
        assert_eq!(tokens.len(), 3);
        let claims = loadgen_target::auth::verify(b"s3cret", &tokens[2], 1_030).expect("valid");
        assert_eq!((claims.user.as_str(), claims.unit.as_str(), claims.exp), ("u2", "7", 1_060));
        assert!(loadgen_target::auth::verify(b"other", &tokens[2], 1_030).is_err(), "wrong secret");
        assert!(loadgen_target::auth::verify(b"s3cret", &tokens[2], 1_061).is_err(), "expired");
    }

    #[test]
    fn jwt_tokens_are_hs256_with_sub_unit_and_exp() {
        let t = mint(&plan(TokenFormat::Jwt), 5, 99);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims, serde_json::json!({"sub": "u5", "unit": "7", "exp": 99}));
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        hmac::verify(&key, format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).expect("signature verifies");
    }
}

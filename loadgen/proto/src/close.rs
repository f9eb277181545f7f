//! Close status codes (RFC 6455 §7.4 and the IANA registry) and close-frame payloads.

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// Endpoint going away (server shutdown, page navigation).
pub const GOING_AWAY: u16 = 1001;
/// Protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Unacceptable data type.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Reserved: no status code was present (never sent on the wire).
pub const NO_STATUS: u16 = 1005;
/// Reserved: connection closed without a close frame (never sent on the wire).
pub const ABNORMAL: u16 = 1006;
/// Payload data inconsistent with the message type (invalid UTF-8).
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation (rate limits, auth revoked).
pub const POLICY_VIOLATION: u16 = 1008;
/// Message too big.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Client expected an extension the server did not negotiate.
pub const MANDATORY_EXTENSION: u16 = 1010;
/// Server hit an unexpected condition.
pub const INTERNAL_ERROR: u16 = 1011;
/// Service restart.
pub const SERVICE_RESTART: u16 = 1012;
/// Try again later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// Bad gateway.
pub const BAD_GATEWAY: u16 = 1014;

/// Longest close reason that fits a control frame (125 − 2 bytes of code).
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame on the wire.
pub fn is_valid_wire_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Human name of a registered code, for reports.
pub fn code_name(code: u16) -> &'static str {
    match code {
        NORMAL => "normal",
        GOING_AWAY => "going_away",
        PROTOCOL_ERROR => "protocol_error",
        UNSUPPORTED_DATA => "unsupported_data",
        NO_STATUS => "no_status",
        ABNORMAL => "abnormal",
        INVALID_PAYLOAD => "invalid_payload",
        POLICY_VIOLATION => "policy_violation",
        MESSAGE_TOO_BIG => "message_too_big",
        MANDATORY_EXTENSION => "mandatory_extension",
        INTERNAL_ERROR => "internal_error",
        SERVICE_RESTART => "service_restart",
        TRY_AGAIN_LATER => "try_again_later",
        BAD_GATEWAY => "bad_gateway",
        3000..=3999 => "registered",
        4000..=4999 => "private",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_code_validity_follows_the_registry() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert!(is_valid_wire_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            assert!(!is_valid_wire_code(bad), "{bad}");
        }
    }
}

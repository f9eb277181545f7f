//! The requests of the run's connections, one per (cohort, target): the path and query
//! (a cohort's [`Cohort::path`] or the target's) and the headers (the run's, merged
//! with the cohort's: a cohort header replaces every run header of its name, ASCII
//! case-insensitive), and the WebSocket upgrade request built from them. A request
//! with placeholders (`{i}`, `{token}`: [`super::template`]) is expanded per
//! connection attempt (WebSocket) or into one reused buffer per poll (HTTP); one
//! without is shared by every connection of its cohort and target, with no
//! per-connection allocation. Also the checks of what the requests and the cohorts'
//! handshake modes need, before the run starts.

use loadgen_proto::HandshakeRequest;

use super::template;
use super::worker::MAX_HEADERS;
use super::{Cohort, HandshakeMode, Protocol, RunConfig, RunError};

/// The request of one (cohort, target).
#[derive(Clone, Debug)]
pub(super) struct Request {
    /// Path and query, placeholders unexpanded.
    pub path: String,
    /// The run's headers merged with the cohort's, placeholders unexpanded.
    pub headers: Vec<(String, String)>,
    /// The upgrade request (WebSocket), with the run's permessage-deflate offer.
    pub upgrade: HandshakeRequest,
    /// Placeholders to expand per connection.
    pub templated: bool,
}

impl RunConfig {
    /// The cohort whose settings program `program` runs with (`None`: the flags'
    /// programs, which use the run's request and a normal handshake).
    fn cohort(&self, program: usize) -> Option<&Cohort> {
        self.cohorts.get(program)
    }

    /// How connections of program (cohort) `program` upgrade.
    pub(super) fn handshake_mode(&self, program: u8) -> HandshakeMode {
        self.cohort(usize::from(program)).map_or(HandshakeMode::Normal, |c| c.handshake)
    }

    /// The requests of the run's `programs` programs, by `program * targets + target`,
    /// checked: placeholders they can fill, header counts HTTP polls can carry, handshake
    /// modes the protocol has.
    pub(super) fn requests(&self, programs: usize) -> Result<Vec<Request>, RunError> {
        if let Some(tokens) = &self.tokens {
            if tokens.is_empty() {
                return Err(RunError::Setup("the run's token list is empty; give at least one token".into()));
            }
            if let Some(k) = tokens.iter().position(|t| t.bytes().any(|b| b.is_ascii_control())) {
                return Err(RunError::Setup(format!(
                    "token {k} has a control character (CR, LF ...); tokens go into request lines and headers as they are"
                )));
            }
        }
        let mut out = Vec::with_capacity(programs * self.targets.len());
        for program in 0..programs {
            let cohort = self.cohort(program);
            let group = cohort.map_or_else(String::new, |c| format!(" of group \"{}\"", c.name));
            match cohort.map(|c| c.handshake) {
                Some(HandshakeMode::Slow { interval }) if interval.is_zero() => {
                    return Err(RunError::Setup(format!(
                        "the slow handshake{group} needs an interval longer than zero between bytes"
                    )));
                }
                Some(mode) if mode.is_attack() && self.protocol != Protocol::WebSocket => {
                    return Err(RunError::Setup(format!(
                        "stalled and slow handshakes{group} are WebSocket upgrades; drop them for a raw-TCP or HTTP run"
                    )));
                }
                _ => {}
            }
            let headers = merge_headers(&self.headers, cohort.map_or(&[][..], |c| &c.headers));
            if self.protocol == Protocol::Http1 && headers.len() > MAX_HEADERS {
                return Err(RunError::Setup(format!(
                    "{} request headers{group}; an HTTP poll carries at most {MAX_HEADERS}",
                    headers.len()
                )));
            }
            for target in &self.targets {
                let path = cohort.and_then(|c| c.path.clone()).unwrap_or_else(|| target.path.clone());
                let texts = || std::iter::once(path.as_str()).chain(headers.iter().map(|(_, v)| v.as_str()));
                if self.tokens.is_none() && texts().any(template::uses_token) {
                    return Err(RunError::Setup(format!(
                        "the request{group} uses {{token}} but the run has no tokens; give the run its tokens (RunConfig::tokens) or drop {{token}}"
                    )));
                }
                let templated = texts().any(template::is_template);
                let mut upgrade = HandshakeRequest::new(target.host.clone(), path.clone());
                upgrade.deflate = self.deflate.clone();
                upgrade.headers = headers.clone();
                upgrade.subprotocols.clone_from(&self.subprotocols);
                if let Some(bad) = self.subprotocols.iter().find(|p| p.is_empty() || !p.bytes().all(is_token_byte)) {
                    return Err(RunError::Setup(format!(
                        "subprotocol {bad:?} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~, like \"notify.v1\")"
                    )));
                }
                out.push(Request { path, headers: headers.clone(), upgrade, templated });
            }
        }
        Ok(out)
    }
}

/// A byte of an HTTP token (RFC 9110 §5.6.2): what a subprotocol name is made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The run's headers without those a cohort header names (ASCII case-insensitive),
/// then the cohort's.
fn merge_headers(run: &[(String, String)], cohort: &[(String, String)]) -> Vec<(String, String)> {
    run.iter()
        .filter(|(name, _)| !cohort.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .chain(cohort)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).into(), (*v).into())).collect()
    }

    #[test]
    fn a_cohort_header_replaces_the_runs_of_the_same_name_and_adds_the_others() {
        let run = h(&[("Authorization", "Bearer run"), ("Origin", "https://ok"), ("cookie", "a=1"), ("Cookie", "b=2")]);
        let cohort = h(&[("origin", "https://evil"), ("COOKIE", "c=3"), ("X-Extra", "{i}")]);
        assert_eq!(
            merge_headers(&run, &cohort),
            h(&[("Authorization", "Bearer run"), ("origin", "https://evil"), ("COOKIE", "c=3"), ("X-Extra", "{i}")])
        );
        assert_eq!(merge_headers(&run, &[]), run);
    }
}

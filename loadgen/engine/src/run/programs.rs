//! The run's options compiled to driver programs: what each connection of the run
//! does once open ([`crate::driver::Program`]).
//!
//! With [`RunConfig::cohorts`] (scenarios: several user groups, each with its own
//! program) connection `g` of the run runs the program of the group whose range of
//! connection numbers holds `g`. Without, the flags make one or two cohorts:
//! program 0 runs the on-open exchange, `Ready`, pings and the traffic; when only the
//! first `echo_connections` of the run carry messages, program 1 (the others) is the
//! same without the traffic. An on-open step that waits for a reply waits at most the
//! reply timeout (`wait_timeout`), so a target that never answers it is visible.

use std::time::Duration;

use crate::driver::{Program, Step, Traffic as DriverTraffic};

use super::{MessageRate, Protocol, RunConfig, RunError, Traffic};

/// Most groups in a run (a connection's cohort is a byte).
pub const MAX_COHORTS: usize = 255;

/// A group of the run's connections that runs one program, with its own request and
/// handshake behaviour. `..Default::default()` leaves the request as the run's and
/// the handshake normal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cohort {
    /// The group's name (reports, errors).
    pub name: String,
    /// What its connections do.
    pub program: Program,
    /// How many of the run's connections it has.
    pub connections: u32,
    /// Replaces the path and query of every target for this group's connections (the
    /// upgrade request's target, or each HTTP poll's), e.g. `/ws?user=intruder{i}`;
    /// `{i}` and `{token}` expand per connection ([`super::template`]). `None`: the
    /// target's own.
    pub path: Option<String>,
    /// Headers added to the run's [`RunConfig::headers`] for this group's connections; a
    /// header named like one of the run's (ASCII case-insensitive) replaces it (every
    /// run header of that name). `{i}` and `{token}` expand per connection.
    pub headers: Vec<(String, String)>,
    /// How its connections do the WebSocket upgrade (attackers: `Stall`, `Slow`).
    pub handshake: HandshakeMode,
}

/// How a cohort's connections do the WebSocket upgrade. Attack modes hold an upgrade
/// open on purpose: each waits for the server to close the connection, or for the
/// run's handshake timeout (`errors.handshake_timeout`). A server that closes (FIN or
/// reset) before its 101 is counted as `errors.handshake_closed_by_server`, timed
/// from the connection's intended start as `latency_us.handshake_closed`; both end
/// the attempt as failed (`connections.failed`). A server that answers is served as
/// usual (a refusal by status in `connections.refused`; a 101 opens the connection,
/// whose program then runs). WebSocket only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandshakeMode {
    /// Send the upgrade request at once.
    #[default]
    Normal,
    /// Connect (and finish TLS on wss://), never send the upgrade request: a half-open
    /// upgrade.
    Stall,
    /// Send the upgrade request one byte per `interval` (slowloris).
    Slow {
        /// Time between bytes (above zero).
        interval: Duration,
    },
}

impl HandshakeMode {
    /// An attack mode (`Stall` or `Slow`).
    pub fn is_attack(self) -> bool {
        self != Self::Normal
    }
}

impl RunConfig {
    /// The programs the run's connections run (by cohort), checked.
    pub fn programs(&self) -> Result<Vec<Program>, RunError> {
        if !self.cohorts.is_empty() {
            if self.cohorts.len() > MAX_COHORTS {
                return Err(RunError::Setup(format!(
                    "{} connection groups; at most {MAX_COHORTS} fit a run",
                    self.cohorts.len()
                )));
            }
            let total: u64 = self.cohorts.iter().map(|c| u64::from(c.connections)).sum();
            if total != u64::from(self.connections) {
                return Err(RunError::Setup(format!(
                    "the groups have {total} connections in all but the run opens {}; make them add up",
                    self.connections
                )));
            }
        }
        let programs = if !self.cohorts.is_empty() {
            self.cohorts.iter().map(|c| c.program.clone()).collect()
        } else if self.echo_connections.is_some() {
            vec![self.flag_program(true), self.flag_program(false)]
        } else {
            vec![self.flag_program(true)]
        };
        for p in &programs {
            p.validate().map_err(|e| RunError::Setup(format!("invalid connection program: {e}")))?;
            if self.protocol != Protocol::WebSocket
                && p.steps.iter().any(|s| {
                    matches!(
                        s,
                        Step::SendText(_)
                            | Step::WaitFor { .. }
                            | Step::Ping { .. }
                            | Step::SendViolation(_)
                            | Step::SendSized { .. }
                    )
                })
            {
                return Err(RunError::Setup(
                    "texts, waits, pings, violations and sized messages are WebSocket features; drop them for a raw-TCP or HTTP run".into(),
                ));
            }
        }
        Ok(programs)
    }

    /// The cohort (program index) of the run's connection number `global`.
    pub fn program_of(&self, global: u64) -> u8 {
        if !self.cohorts.is_empty() {
            let mut end = 0u64;
            for (k, c) in self.cohorts.iter().enumerate() {
                end += u64::from(c.connections);
                if global < end {
                    return k as u8;
                }
            }
            return (self.cohorts.len() - 1) as u8;
        }
        match self.echo_connections {
            Some(n) if global >= u64::from(n) => 1,
            _ => 0,
        }
    }

    /// Today's flags as a program; `with_traffic`: the cohort that carries messages.
    fn flag_program(&self, with_traffic: bool) -> Program {
        let mut steps = Vec::new();
        for step in &self.on_open {
            steps.push(Step::SendText(step.send.clone()));
            if let Some(pattern) = &step.expect {
                steps.push(Step::WaitFor { pattern: pattern.clone(), timeout: Some(self.reply_timeout) });
            }
        }
        steps.push(Step::Ready);
        if let Some(interval) = self.ping_interval {
            steps.push(Step::Ping { interval, timeout: None });
        }
        if let (true, Traffic::Echo { rate, .. }) = (with_traffic, self.traffic) {
            steps.push(Step::Traffic(match rate {
                MessageRate::ClosedLoop => DriverTraffic::ClosedLoop {
                    think: self.think_time,
                    // HTTP responses have the client's own deadline.
                    reply_timeout: (self.protocol != Protocol::Http1).then_some(self.reply_timeout),
                },
                MessageRate::PerConnection(r) => {
                    DriverTraffic::Paced { interval: std::time::Duration::from_nanos((1e9 / r) as u64) }
                }
                MessageRate::Total(_) => DriverTraffic::Pool,
            }));
        }
        Program { steps, reconnect: self.reconnect }
    }
}

//! The run's options compiled to driver programs: what each connection of the run
//! does once open ([`crate::driver::Program`]).
//!
//! Without an explicit [`RunConfig::program`], the flags make one or two cohorts:
//! program 0 runs the on-open exchange, `Ready`, pings and the traffic; when only the
//! first `echo_connections` of the run carry messages, program 1 (the others) is the
//! same without the traffic. An on-open step that waits for a reply waits at most the
//! reply timeout (`wait_timeout`), so a target that never answers it is visible.

use crate::driver::{Program, Step, Traffic as DriverTraffic};

use super::{MessageRate, Protocol, RunConfig, RunError, Traffic};

impl RunConfig {
    /// The programs the run's connections run (by cohort), checked.
    pub fn programs(&self) -> Result<Vec<Program>, RunError> {
        let programs = match &self.program {
            Some(p) => vec![p.clone()],
            None if self.echo_connections.is_some() => vec![self.flag_program(true), self.flag_program(false)],
            None => vec![self.flag_program(true)],
        };
        for p in &programs {
            p.validate().map_err(|e| RunError::Setup(format!("invalid connection program: {e}")))?;
            if self.protocol != Protocol::WebSocket
                && p.steps.iter().any(|s| matches!(s, Step::SendText(_) | Step::WaitFor { .. } | Step::Ping { .. }))
            {
                return Err(RunError::Setup(
                    "texts, waits and pings are WebSocket features; drop them for a raw-TCP or HTTP run".into(),
                ));
            }
        }
        Ok(programs)
    }

    /// The cohort (program index) of the run's connection number `global`.
    pub fn program_of(&self, global: u64) -> u8 {
        match (&self.program, self.echo_connections) {
            (None, Some(n)) if global >= u64::from(n) => 1,
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
            steps.push(Step::Ping { interval });
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

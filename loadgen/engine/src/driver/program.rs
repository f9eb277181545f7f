//! A connection's program: the steps it runs once open, as data.
//!
//! Today's run flags compile to a program (`run::RunConfig::programs`); scenario files
//! will compile to programs too, so a new behaviour is a new [`Step`] and a few lines
//! of the [`super::Driver`], never a change to the io_uring loop. A program is shared
//! by every connection of its cohort (the worker holds it once); what a connection
//! keeps of it is its position and a few deadlines in its [`super::Driver`].
//!
//! Steps run in order. Most complete at once (send a text, start pings, start traffic,
//! stop reading); `WaitFor` and `Sleep` hold the program until a message or a time
//! comes. Behaviours a step starts (pings, traffic, a paused reader) go on while later
//! steps run, until a step stops them, the connection ends or the run ends. A program
//! that runs out of steps holds the connection with whatever behaviours are on.

use std::time::Duration;

/// One step of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send a text message (an on-open exchange: subscribe, authenticate, join).
    SendText(String),
    /// Wait for a text message containing `pattern`; after `timeout` (if any) the
    /// program fails (`wait_timeout`) and loadgen closes the connection.
    WaitFor {
        /// Substring to look for.
        pattern: String,
        /// Give up after this long.
        timeout: Option<Duration>,
    },
    /// The connection is ready: timed as `ready` from its intended start when steps
    /// came before, and the end of a reconnect's time to recover.
    Ready,
    /// Ping this often from now on and time each pong (`ping_rtt`).
    Ping {
        /// Interval between pings.
        interval: Duration,
        /// A ping still unanswered this long after it was sent ends the connection:
        /// counted (`connections.pong_timeouts`) and dropped with cause `pong_timeout`,
        /// so a reconnect policy applies. A pong answers its own ping and every older
        /// one (a server may answer only the latest of several, RFC 6455 §5.5.3).
        /// `None`: pongs are timed, never awaited.
        timeout: Option<Duration>,
    },
    /// Start sending messages.
    Traffic(Traffic),
    /// Stop sending messages (what is in flight is still accounted).
    StopTraffic,
    /// Do nothing for this long.
    Sleep(Duration),
    /// Stop reading from the socket (a slow or stalled consumer): the kernel's receive
    /// buffer fills and the server's sends back up.
    StopReading,
    /// Read again.
    ResumeReading,
    /// Close the connection with this code (loadgen's own close: never a drop).
    Close {
        /// WebSocket close code.
        code: u16,
    },
    /// Write a deliberate protocol violation on the connection (the bytes of
    /// `loadgen_proto::Violation::write`), then go on reading, so the server's answer
    /// is observed: a close frame lands in `connections.close_codes` (and the drop in
    /// `dropped_by_cause.server_close`), a bare TCP close in `dropped_by_cause.eof`.
    SendViolation(loadgen_proto::Violation),
    /// Send one valid text message of `len` bytes (ASCII filler, one uncompressed
    /// frame), to test a server's size limit. The program holds only the length: the
    /// frame is written straight into the connection's output.
    SendSized {
        /// Payload bytes (at most [`MAX_SIZED_LEN`]).
        len: usize,
    },
}

/// Largest [`Step::SendSized`] message (1 GiB).
pub const MAX_SIZED_LEN: usize = 1 << 30;

/// How a connection sends messages once a [`Step::Traffic`] starts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// One message in flight: the next when the reply came (after `think`), or when the
    /// reply is overdue (`reply_timeout`, counted by the worker as a reply timeout).
    ClosedLoop {
        /// Wait after a reply before the next message.
        think: Duration,
        /// A reply later than this lets the loop go on (`None`: wait for it; HTTP,
        /// whose client has its own response deadline).
        reply_timeout: Option<Duration>,
    },
    /// A message every `interval`, each timed from its own intended time.
    Paced {
        /// Interval between messages.
        interval: Duration,
    },
    /// The connection joins the pool the run's open-model message schedule draws from.
    Pool,
}

/// How dropped connections come back: attempt `n` after a delay under the ceiling
/// `min(max, initial × 2^n)` (exponential backoff), spread by `jitter`, at most `limit`
/// attempts per drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Attempts per drop before giving up (`None`: no limit).
    pub limit: Option<u32>,
    /// How the delay is drawn under the ceiling.
    pub jitter: Jitter,
}

/// How a reconnect delay is drawn under its ceiling `c` (the names of the AWS
/// architecture blog's "Exponential Backoff And Jitter").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform over `[0, c]`: the herd spread widest.
    #[default]
    Full,
    /// `c/2` plus uniform over `[0, c/2]`.
    Equal,
    /// Exactly `c`: every client dropped together comes back together (a client
    /// library without jitter: the thundering herd).
    None,
}

impl ReconnectPolicy {
    /// Delay before attempt `n` (0: the first after the drop) under the ceiling
    /// `min(max, initial × 2^n)`, drawn from `random` as `jitter` says.
    pub fn delay_ns(&self, n: u32, random: u64) -> u64 {
        let initial = self.initial.as_nanos() as u64;
        let ceiling = initial.saturating_mul(1u64 << n.min(40)).min(self.max.as_nanos() as u64).max(1);
        match self.jitter {
            Jitter::Full => random % (ceiling + 1),
            Jitter::Equal => ceiling / 2 + random % (ceiling - ceiling / 2 + 1),
            Jitter::None => ceiling,
        }
    }
}

/// A program: its steps, and how a connection running it comes back when dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// `None`: a dropped connection stays closed.
    pub reconnect: Option<ReconnectPolicy>,
}

/// Why a program cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// More steps than a connection can count.
    #[error("a program has {0} steps; at most 65,535 are supported")]
    TooLong(usize),
    /// A zero interval would fire without end.
    #[error("step {step}: the interval must be longer than zero")]
    ZeroInterval {
        /// Index of the step.
        step: usize,
    },
    /// A close code a client may not send (RFC 6455 §7.4).
    #[error(
        "step {step}: close code {code} may not be sent; use 1000, 1001, 3000–4999 or another code of RFC 6455 §7.4.1"
    )]
    CloseCode {
        /// Index of the step.
        step: usize,
        /// The code.
        code: u16,
    },
    /// A zero pong timeout would fire at once.
    #[error("step {step}: the pong timeout must be longer than zero")]
    ZeroTimeout {
        /// Index of the step.
        step: usize,
    },
    /// A sized message beyond [`MAX_SIZED_LEN`].
    #[error("step {step}: a sized message of {len} bytes; at most 1 GiB (1,073,741,824 bytes) is supported")]
    TooLarge {
        /// Index of the step.
        step: usize,
        /// Its length.
        len: usize,
    },
    /// `WaitFor` with an empty pattern matches everything.
    #[error("step {step}: the pattern to wait for is empty")]
    EmptyPattern {
        /// Index of the step.
        step: usize,
    },
    /// Traffic before any `Ready`: a connection sends its probes once ready, so these
    /// would never go out.
    #[error("step {step}: traffic starts before the connection is ready; put a ready step before it")]
    TrafficBeforeReady {
        /// Index of the step.
        step: usize,
    },
}

impl Program {
    /// Checks what the driver relies on: a length it can count, intervals and pong
    /// timeouts above zero, close codes a client may send, patterns that say
    /// something, sized messages that fit in memory.
    pub fn validate(&self) -> Result<(), ProgramError> {
        if self.steps.len() >= usize::from(u16::MAX) {
            return Err(ProgramError::TooLong(self.steps.len()));
        }
        for (step, s) in self.steps.iter().enumerate() {
            match s {
                Step::Ping { interval, .. } | Step::Traffic(Traffic::Paced { interval }) if interval.is_zero() => {
                    return Err(ProgramError::ZeroInterval { step });
                }
                Step::Ping { timeout: Some(t), .. } if t.is_zero() => {
                    return Err(ProgramError::ZeroTimeout { step });
                }
                Step::SendSized { len } if *len > MAX_SIZED_LEN => {
                    return Err(ProgramError::TooLarge { step, len: *len });
                }
                Step::Close { code } if !close_code_allowed(*code) => {
                    return Err(ProgramError::CloseCode { step, code: *code });
                }
                Step::WaitFor { pattern, .. } if pattern.is_empty() => {
                    return Err(ProgramError::EmptyPattern { step });
                }
                Step::Traffic(_) if !self.steps[..step].contains(&Step::Ready) => {
                    return Err(ProgramError::TrafficBeforeReady { step });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the program ever marks its connection ready.
    pub fn has_ready(&self) -> bool {
        self.steps.contains(&Step::Ready)
    }
}

/// Close codes an endpoint may send (RFC 6455 §7.4.1 and §7.4.2).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

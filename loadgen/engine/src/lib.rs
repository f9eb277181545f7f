//! `loadgen-engine`: the load engine.
//!
//! Load has one representation here: a [`schedule::Schedule`] of intended start times
//! (nanoseconds from the start of the run), consumed by one worker loop per core.
//! Latency is always measured from the intended time, never from when the generator
//! got round to acting, so a stalled target or a late generator shows up in the
//! numbers instead of hiding (no coordinated omission).
//!
//! This crate has no clap types and does no formatting of reports.

mod bufpool;
pub mod clock;
pub mod driver;
pub mod payload;
pub mod payload_json;
pub mod payload_marker;
pub mod payload_shape;
pub mod payload_text;
pub mod preflight;
pub mod report;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod server_id;
pub mod stats;
pub mod timer_wheel;
pub mod uring;

//! Named, timed phases: `==> phase` / `<== phase: OK in 1.2s`, stopping at the
//! first failure, then a table of phase times and one final verdict line.

use std::time::{Duration, Instant};

use anyhow::Result;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Skipped,
}

/// A sequence of phases for one xtask command.
pub struct Phases {
    command: String,
    started: Instant,
    done: Vec<(String, Outcome, Duration)>,
    failed: Option<String>,
}

impl Phases {
    /// Starts the clock for `command` (e.g. `cargo xtask test`).
    pub fn new(command: &str) -> Phases {
        Phases { command: command.to_string(), started: Instant::now(), done: Vec::new(), failed: None }
    }

    /// Runs phase `name` unless an earlier one failed (then it is recorded as
    /// skipped). Returns whether it ran and passed.
    pub fn run(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        if self.failed.is_some() {
            self.done.push((name.to_string(), Outcome::Skipped, Duration::ZERO));
            return false;
        }
        println!("==> {name}");
        let t = Instant::now();
        let result = f();
        let took = t.elapsed();
        match result {
            Ok(()) => {
                println!("<== {name}: OK in {:.1}s", took.as_secs_f64());
                self.done.push((name.to_string(), Outcome::Ok, took));
                true
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                println!("<== {name}: FAILED in {:.1}s", took.as_secs_f64());
                self.done.push((name.to_string(), Outcome::Failed, took));
                self.failed = Some(name.to_string());
                false
            }
        }
    }

    /// Prints the table of phase times and the verdict line; false if a phase
    /// failed.
    pub fn finish(self) -> bool {
        let width = self.done.iter().map(|(n, ..)| n.len()).max().unwrap_or(5).max(5);
        println!();
        println!("{:<width$}  {:<7}  {:>8}", "phase", "result", "time");
        for (name, outcome, took) in &self.done {
            let (word, time) = match outcome {
                Outcome::Ok => ("OK", format!("{:.1}s", took.as_secs_f64())),
                Outcome::Failed => ("FAILED", format!("{:.1}s", took.as_secs_f64())),
                Outcome::Skipped => ("skipped", "-".to_string()),
            };
            println!("{name:<width$}  {word:<7}  {time:>8}");
        }
        let total = self.started.elapsed().as_secs_f64();
        println!("{:<width$}  {:<7}  {:>8}", "total", "", format!("{total:.1}s"));
        match self.failed {
            None => {
                println!("{}: OK ({} phases) in {total:.1}s", self.command, self.done.len());
                true
            }
            Some(phase) => {
                println!("{}: FAILED in phase {phase} after {total:.1}s", self.command);
                false
            }
        }
    }
}

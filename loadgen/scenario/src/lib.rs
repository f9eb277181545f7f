//! Scenario files for loadgen: a run described in TOML (target, load, connection
//! profile, reconnect policy, user groups with their steps, checks), read into typed
//! structs ([`model`]: unknown keys refused), overridden with `--set key=value`,
//! validated and compiled into a [`Plan`]: the engine's connection programs by group
//! (`loadgen_engine::run::Cohort`) and the parsed [`check::Check`]s.
//!
//! Errors name the file, the line and column when the TOML pinpoints it (syntax, a
//! wrong type, an unknown key) or the key path otherwise (`groups[1].connections`),
//! what was expected and how to fix it, on one line.
//!
//! A [`Scenario`] built in memory (`loadgen run`'s flags) is compiled the same way
//! ([`compile()`]) and written back as TOML ([`to_toml`]).
//!
//! What it does not do: I/O of any kind (the caller reads the file and runs the plan),
//! build the engine's `RunConfig` (the CLI maps a plan and its own flags onto it), or
//! start the embedded target.

pub mod check;
mod compile;
pub mod include;
pub mod judge;
pub mod metric;
pub mod model;
mod phases;
mod set;
pub mod timeline;
mod write;

pub use compile::{EMBEDDED_MODES, Embedded, Plan, TargetSpec, TokenFormat, TokenPlan};
pub use model::Scenario;
pub use phases::PHASE_SECTIONS;
pub use timeline::{Action, Event, InjectVia, MARKER_FIELD};

/// A scenario that cannot be used, with where and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{origin}{}: {message}", at.map_or(String::new(), |(l, c)| format!(":{l}:{c}")))]
pub struct ScenarioError {
    /// The file (or `--set`).
    pub origin: String,
    /// Line and column (from 1), when known.
    pub at: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ScenarioError {
    fn new(origin: &str, at: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Self { origin: origin.to_string(), at, message: message.into() }
    }
}

/// Line and column (from 1) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The first line of a toml error (it repeats the source below).
fn toml_message(e: &toml::de::Error) -> String {
    e.message().lines().next().unwrap_or("invalid TOML").trim().to_string()
}

/// Reads scenario `text` (from `origin`, a file name for errors), applies the `sets`
/// (`dotted.key=value`: a TOML value, or a bare word read as a string) and compiles it.
pub fn load(text: &str, origin: &str, sets: &[String]) -> Result<Plan, ScenarioError> {
    let scenario = read(text, origin, sets)?;
    compile::compile(&scenario).map_err(|e| ScenarioError::new(origin, None, e))
}

/// Validates and compiles a scenario built in memory (`origin` names it in errors).
pub fn compile(scenario: &Scenario, origin: &str) -> Result<Plan, ScenarioError> {
    compile::compile(scenario).map_err(|e| ScenarioError::new(origin, None, e))
}

/// `scenario` as a TOML file that [`read`] reads back into the same scenario.
pub fn to_toml(scenario: &Scenario) -> Result<String, ScenarioError> {
    write::to_toml(scenario).map_err(|e| ScenarioError::new(&scenario.name, None, e.to_string()))
}

/// [`load`] for a file that may include others (`include = [...]`), read with `read`.
pub fn load_with(text: &str, origin: &str, sets: &[String], read: include::Reader<'_>) -> Result<Plan, ScenarioError> {
    let scenario = read_with(text, origin, sets, read)?;
    compile::compile(&scenario).map_err(|e| ScenarioError::new(origin, None, e))
}

/// Reads `text` into a [`Scenario`] without validating it as a whole; includes are
/// refused (they need [`read_with`]).
pub fn read(text: &str, origin: &str, sets: &[String]) -> Result<Scenario, ScenarioError> {
    read_with(text, origin, sets, &|p| Err(format!("cannot read {} here (no file reader)", p.display())))
}

/// [`read`], with includes read by `reader`.
pub fn read_with(
    text: &str,
    origin: &str,
    sets: &[String],
    reader: include::Reader<'_>,
) -> Result<Scenario, ScenarioError> {
    let spanned = |e: toml::de::Error| {
        let at = e.span().map(|s| line_col(text, s.start));
        ScenarioError::new(origin, at, toml_message(&e))
    };
    let includes = toml::from_str::<toml::Table>(text).map_err(spanned)?.contains_key("include");
    if sets.is_empty() && !includes {
        return toml::from_str::<Scenario>(text).map_err(spanned);
    }
    let mut table = include::resolve(text, origin, reader)?;
    for s in sets {
        set::apply(&mut table, s).map_err(|e| ScenarioError::new("--set", None, format!("{s}: {e}")))?;
    }
    toml::Value::Table(table).try_into::<Scenario>().map_err(|e| {
        let after = if includes { "after includes and --set" } else { "after --set" };
        ScenarioError::new(origin, None, format!("{} ({after})", toml_message(&e)))
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_messages;

#[cfg(test)]
mod keys_tests;

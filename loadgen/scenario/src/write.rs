//! A [`Scenario`] written as a TOML file in the documented style: sections as tables,
//! each group's `steps` one inline table a line (`{ do = "ready" }`), so a scenario
//! built in memory (`loadgen run --print-scenario`) reads like a hand-written one.
//! What `read` reads back is the same scenario. No I/O.

use serde::Serialize;

use crate::model::{CatalogueSpec, CheckSpec, EventSpec, MessagesSpec, Scenario};

/// What follows the groups, in the file's usual order.
#[derive(Serialize)]
struct Tail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a MessagesSpec>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    timeline: &'a [EventSpec],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    checks: &'a [CheckSpec],
    #[serde(skip_serializing_if = "Option::is_none")]
    catalogue: Option<&'a CatalogueSpec>,
}

/// `scenario` as TOML.
pub(crate) fn to_toml(scenario: &Scenario) -> Result<String, toml::ser::Error> {
    let head = Scenario {
        groups: Vec::new(),
        checks: Vec::new(),
        timeline: Vec::new(),
        catalogue: None,
        messages: None,
        ..scenario.clone()
    };
    let mut out = toml::to_string(&head)?;
    for group in &scenario.groups {
        let toml::Value::Table(mut table) = toml::Value::try_from(group)? else {
            unreachable!("a group serializes as a table")
        };
        out.push_str("\n[[groups]]\n");
        let steps = table.remove("steps");
        if let Some(name) = table.remove("name") {
            out.push_str(&format!("name = {name}\n"));
        }
        for (key, value) in &table {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push_str("steps = [\n");
        for step in steps.as_ref().and_then(toml::Value::as_array).into_iter().flatten() {
            out.push_str(&format!("  {step},\n"));
        }
        out.push_str("]\n");
    }
    let tail = Tail {
        messages: scenario.messages.as_ref(),
        timeline: &scenario.timeline,
        checks: &scenario.checks,
        catalogue: scenario.catalogue.as_ref(),
    };
    let tail = toml::to_string(&tail)?;
    if !tail.is_empty() {
        out.push('\n');
        out.push_str(&tail);
    }
    Ok(out)
}

//! `--set dotted.key=value` overrides applied to a scenario's TOML table before it is
//! read: `load.hold=10s`, `groups.0.connections=50`, `target.faults=["drop-fanout=20"]`.
//! The value is TOML (`10`, `true`, `"text"`, `[1, 2]`); anything that does not parse
//! as TOML is a string (`--set load.hold=10s`). A numeric segment indexes an array;
//! missing tables are created, a missing array element is an error.

use toml::{Table, Value};

/// Applies one `key=value`.
pub(crate) fn apply(table: &mut Table, assignment: &str) -> Result<(), String> {
    let (key, raw) = assignment.split_once('=').ok_or("expected key=value, like load.hold=10s")?;
    let (key, raw) = (key.trim(), raw.trim());
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("\"{key}\" is not a dotted key (like load.connections)"));
    }
    let value = match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut root = Value::Table(std::mem::take(table));
    let result = assign(&mut root, &parts, value, key);
    if let Value::Table(t) = root {
        *table = t;
    }
    result
}

/// Sets `parts` (a dotted key split) under `root` to `value`.
fn assign(root: &mut Value, parts: &[&str], value: Value, key: &str) -> Result<(), String> {
    let (last, path) = parts.split_last().ok_or("an empty key")?;
    let mut here = root;
    for part in path {
        here = step(here, part)?;
    }
    match here {
        Value::Table(t) => {
            t.insert((*last).to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("\"{last}\" is not an index of an array"))?;
            let n = a.len();
            let slot = a.get_mut(i).ok_or_else(|| format!("index {i} is past the end ({n} elements)"))?;
            *slot = value;
        }
        _ => return Err(format!("\"{key}\" goes through a value that is not a table")),
    }
    Ok(())
}

fn step<'a>(here: &'a mut Value, part: &str) -> Result<&'a mut Value, String> {
    match here {
        Value::Table(t) => {
            if !t.contains_key(part) {
                t.insert(part.to_string(), Value::Table(Table::new()));
            }
            t.get_mut(part).ok_or_else(|| format!("no key \"{part}\""))
        }
        Value::Array(a) => {
            let i: usize = part.parse().map_err(|_| format!("\"{part}\" is not an index of an array"))?;
            let n = a.len();
            a.get_mut(i).ok_or_else(|| format!("index {i} is past the end ({n} elements)"))
        }
        _ => Err(format!("\"{part}\" goes through a value that is not a table")),
    }
}

//! Shared pieces: `include = ["common/target.toml", ...]` at the top of a scenario file
//! merges other files beneath it, each path relative to the file that names it. The
//! including file wins key by key (tables merge deeply); the arrays of tables
//! `groups`, `checks` and `timeline` are joined, the included ones first. Included
//! files may include others, 8 levels at most, never one already on the way (a cycle).
//!
//! The reading itself is the caller's (a closure from path to text): this crate does
//! no I/O.

use std::path::{Path, PathBuf};

use crate::ScenarioError;

/// Reads a file's text by path; the error is a sentence.
pub type Reader<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

const MAX_DEPTH: usize = 8;
/// Arrays of tables that add up instead of replacing each other.
const JOINED: [&str; 3] = ["groups", "checks", "timeline"];

/// The table of `text` (from `origin`) with its includes merged in.
pub(crate) fn resolve(text: &str, origin: &str, read: Reader<'_>) -> Result<toml::Table, ScenarioError> {
    resolve_at(text, Path::new(origin), read, &mut vec![PathBuf::from(origin)])
}

fn resolve_at(
    text: &str,
    origin: &Path,
    read: Reader<'_>,
    chain: &mut Vec<PathBuf>,
) -> Result<toml::Table, ScenarioError> {
    let name = origin.display().to_string();
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| crate::line_col(text, s.start));
        ScenarioError::new(&name, at, crate::toml_message(&e))
    })?;
    let Some(list) = table.remove("include") else { return Ok(table) };
    let paths: Vec<String> = match list {
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                _ => {
                    Err(ScenarioError::new(&name, None, "include: a list of file names (include = [\"common.toml\"])"))
                }
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ScenarioError::new(&name, None, "include: a list of file names (include = [\"common.toml\"])"));
        }
    };
    let dir = origin.parent().unwrap_or(Path::new(""));
    let mut base = toml::Table::new();
    for p in paths {
        let path = dir.join(&p);
        if chain.len() >= MAX_DEPTH {
            return Err(ScenarioError::new(&name, None, format!("include \"{p}\": more than {MAX_DEPTH} levels deep")));
        }
        if chain.contains(&path) {
            return Err(ScenarioError::new(
                &name,
                None,
                format!("include \"{p}\": a cycle (it is already being read)"),
            ));
        }
        let text = read(&path).map_err(|e| ScenarioError::new(&name, None, format!("include \"{p}\": {e}")))?;
        chain.push(path.clone());
        let included = resolve_at(&text, &path, read, chain)?;
        chain.pop();
        merge(&mut base, included);
    }
    merge(&mut base, table);
    Ok(base)
}

/// Merges `over` onto `base`: `over` wins, tables merge, the joined arrays add up.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (Some(toml::Value::Array(b)), toml::Value::Array(o)) if JOINED.contains(&key.as_str()) => b.extend(o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        list.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect()
    }

    #[test]
    fn includes_merge_beneath_the_file_and_join_groups_and_checks() {
        let fs = files(&[
            (
                "dir/common/target.toml",
                "[target]\nurl = \"embedded\"\nworkers = 2\n[[checks]]\nexpr = \"messages.lost == 0\"\n",
            ),
            (
                "dir/common/base.toml",
                "include = [\"target.toml\"]\n[load]\nconnections = 10\nconnect_rate = 5\nhold = \"1s\"\n",
            ),
        ]);
        let read = |p: &Path| fs.get(p).cloned().ok_or_else(|| format!("no such file {}", p.display()));
        let text = "include = [\"common/base.toml\"]\nname = \"x\"\n[target]\nworkers = 3\n[[checks]]\nexpr = \"connections.failed == 0\"\n";
        let t = resolve(text, "dir/s.toml", &read).unwrap();
        assert_eq!(t["target"]["url"].as_str(), Some("embedded"));
        assert_eq!(t["target"]["workers"].as_integer(), Some(3), "the including file wins");
        assert_eq!(t["load"]["connections"].as_integer(), Some(10));
        let checks: Vec<&str> = t["checks"].as_array().unwrap().iter().map(|c| c["expr"].as_str().unwrap()).collect();
        assert_eq!(checks, ["messages.lost == 0", "connections.failed == 0"], "joined, included first");
    }

    #[test]
    fn missing_files_cycles_and_bad_lists_are_refused() {
        let fs = files(&[("a.toml", "include = [\"b.toml\"]\n"), ("b.toml", "include = [\"a.toml\"]\n")]);
        let read = |p: &Path| fs.get(p).cloned().ok_or_else(|| "no such file".to_string());
        let e = resolve("include = [\"a.toml\"]", "s.toml", &read).unwrap_err();
        assert!(e.to_string().contains("a cycle"), "{e}");
        let e = resolve("include = [\"nope.toml\"]", "s.toml", &read).unwrap_err();
        assert_eq!(e.to_string(), "s.toml: include \"nope.toml\": no such file");
        let e = resolve("include = \"a.toml\"", "s.toml", &read).unwrap_err();
        assert!(e.to_string().contains("a list of file names"), "{e}");
        let fs = files(&[("bad.toml", "[load\n")]);
        let read = |p: &Path| fs.get(p).cloned().ok_or_else(|| "no such file".to_string());
        let e = resolve("include = [\"bad.toml\"]", "s.toml", &read).unwrap_err();
        assert!(e.to_string().starts_with("bad.toml:1:"), "errors point into the included file: {e}");
    }
}

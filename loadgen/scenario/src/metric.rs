//! Metric paths of checks, read against the report's JSON Schema
//! (`loadgen_engine::report::REPORT_SCHEMA`): a path must name a number the report can
//! hold (`messages.lost`, `connections.close_codes.1008`, `latency_us.delivery.p99`),
//! so a typo is refused when the scenario is read, not judged "not measured" after a
//! run. The schema also says which absent numbers are zero: a count the report leaves
//! out when it is zero (an integer with `minimum` 1, in a map the report leaves out
//! when empty: close codes, refusals, errors, drop causes, reconnects). Any other
//! absent number was not measured.
//!
//! What it does not do: judge checks (`check`), or read files.

use std::sync::LazyLock;

use serde_json::Value;

static SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(loadgen_engine::report::REPORT_SCHEMA).unwrap_or(Value::Null));

/// A metric path resolved against the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricPath {
    segments: Vec<String>,
    /// `absent_is_zero[i]`: when segment i is the first one missing from a report, the
    /// value is 0 (a count left out when zero) rather than not measured.
    absent_is_zero: Vec<bool>,
}

impl MetricPath {
    /// Resolves `path`; the error names the first segment the report cannot hold.
    pub fn resolve(path: &str) -> Result<Self, String> {
        let root: &Value = &SCHEMA;
        if root.is_null() {
            return Err("the report schema is unreadable (a build problem)".into());
        }
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        let mut nodes = Vec::with_capacity(segments.len());
        // Entries of a map (a close code, a status) exist only when counted.
        let mut map_entry = Vec::with_capacity(segments.len());
        let mut node = root;
        for (k, seg) in segments.iter().enumerate() {
            let so_far = segments[..=k].join(".");
            let named = node.get("properties").and_then(|p| p.get(seg));
            map_entry.push(named.is_none());
            let child = named.or_else(|| {
                node.get("additionalProperties").filter(|a| a.is_object()).filter(|_| name_fits(node, seg))
            });
            let Some(child) = child else {
                let fields = field_names(node);
                return Err(format!(
                    "{so_far}: report.json has no such field{} (docs/metrics.md lists them)",
                    if fields.is_empty() {
                        String::new()
                    } else {
                        format!("; {} has {fields}", segments[..k].join("."))
                    }
                ));
            };
            node = deref(root, child);
            nodes.push(node);
        }
        let leaf = nodes.last().copied().unwrap_or(root);
        if !matches!(leaf.get("type").and_then(Value::as_str), Some("integer" | "number")) {
            let fields = field_names(leaf);
            return Err(format!(
                "{path} is not a number{}",
                if fields.is_empty() { String::new() } else { format!("; name one of its fields: {fields}") }
            ));
        }
        let leaf_zero = leaf.get("minimum").and_then(Value::as_f64).is_some_and(|m| m >= 1.0);
        // A count its object requires is zero when that whole object is absent
        // (`connections.refused.429.retry_after_count` without any 429).
        let required_count = nodes.len() >= 2
            && leaf.get("type").and_then(Value::as_str) == Some("integer")
            && nodes[nodes.len() - 2]
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|k| k.as_str() == segments.last().map(String::as_str)));
        // Missing from segment i on is zero when every object from i down is left out
        // when empty (or is a map's entry), and the leaf when zero.
        let mut absent_is_zero = vec![false; nodes.len()];
        let mut zero = true;
        for i in (0..nodes.len()).rev() {
            if i + 1 < nodes.len() {
                zero &= map_entry[i] || nodes[i].get("minProperties").and_then(Value::as_u64).is_some_and(|m| m >= 1);
                absent_is_zero[i] = zero && (leaf_zero || required_count);
            } else {
                absent_is_zero[i] = leaf_zero;
            }
        }
        Ok(Self { segments, absent_is_zero })
    }

    /// The value in `report`, or why it is not a measurement: not measured, or a
    /// percentile of too few samples (a p99 needs 100, a p99.9 1,000, a p90 10, a p50
    /// 2: fewer, and the "percentile" is one of a handful of values).
    pub fn judge(&self, report: &Value, path: &str) -> Result<f64, String> {
        let v = self.read(report).ok_or_else(|| format!("{path} was not measured"))?;
        let needed = match self.segments.last().map(String::as_str) {
            Some("p50") => 2,
            Some("p90") => 10,
            Some("p99") => 100,
            Some("p999") => 1_000,
            _ => return Ok(v),
        };
        let parent = &self.segments[..self.segments.len() - 1];
        let count =
            parent.iter().try_fold(report, |v, k| v.get(k)).and_then(|p| p.get("count")).and_then(Value::as_u64);
        match count {
            Some(n) if n < needed => {
                Err(format!("{path} comes from {n} samples; a percentile like it needs at least {needed}"))
            }
            _ => Ok(v),
        }
    }

    /// The value in `report`: `None` when not measured.
    pub fn read(&self, report: &Value) -> Option<f64> {
        let mut v = report;
        for (i, seg) in self.segments.iter().enumerate() {
            match v.get(seg) {
                Some(Value::Null) | None => return self.absent_is_zero[i].then_some(0.0),
                Some(child) => v = child,
            }
        }
        v.as_f64()
    }
}

/// Follows a `$ref` (a JSON pointer into the schema, like `#/$defs/count` or
/// `#/properties/connections`).
fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => root.pointer(pointer).map_or(node, |target| deref(root, target)),
        None => node,
    }
}

/// Whether `seg` may be a key of the map `node` (its `propertyNames` pattern, which
/// the schema writes as a class of characters and a count).
fn name_fits(node: &Value, seg: &str) -> bool {
    match node.get("propertyNames").and_then(|p| p.get("pattern")).and_then(Value::as_str) {
        Some("^[0-9]{4}$") => seg.len() == 4 && seg.bytes().all(|b| b.is_ascii_digit()),
        Some("^[0-9]{3}$") => seg.len() == 3 && seg.bytes().all(|b| b.is_ascii_digit()),
        Some(_) | None => !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
    }
}

fn field_names(node: &Value) -> String {
    let mut names: Vec<&str> = node
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if node.get("additionalProperties").is_some_and(Value::is_object) {
        names.push("(any key)");
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_are_checked_against_the_schema() {
        for ok in [
            "messages.lost",
            "connections.close_codes.1008",
            "connections.refused.401.count",
            "latency_us.delivery.p99",
            "errors.handshake_timeout",
            "connections.dropped_by_cause.reset",
        ] {
            MetricPath::resolve(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("messages.lsot", "messages.lsot: report.json has no such field; messages has"),
            ("latency_us.delivery", "is not a number; name one of its fields: count, max, p50"),
            ("connections.close_codes.abc", "no such field"),
            ("nothing", "nothing: report.json has no such field"),
        ] {
            let e = MetricPath::resolve(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn counts_left_out_when_zero_read_zero_and_unmeasured_ones_read_nothing() {
        let report = json!({
            "connections": { "attempted": 10, "failed": 0, "close_codes": { "1000": 3 } },
            "latency_us": { "handshake": { "count": 10, "p99": 900 } },
        });
        let read = |p: &str| MetricPath::resolve(p).unwrap().read(&report);
        assert_eq!(read("connections.close_codes.1000"), Some(3.0));
        assert_eq!(read("connections.close_codes.1009"), Some(0.0), "a close code never seen");
        assert_eq!(read("connections.refused.401.count"), Some(0.0), "no refusals at all");
        assert_eq!(read("errors.handshake_timeout"), Some(0.0));
        assert_eq!(read("connections.reconnected"), Some(0.0));
        assert_eq!(read("connections.refused.429.retry_after_min_s"), None, "a minimum of nothing is not 0");
        assert_eq!(read("connections.refused.429.retry_after_count"), Some(0.0), "no 429: none had a Retry-After");
        assert_eq!(read("latency_us.delivery.p99"), None, "no delivery was timed");
        assert_eq!(read("messages.lost"), None, "no message section: nothing was measured");
        assert_eq!(read("latency_us.handshake.p99"), Some(900.0));
    }
}

//! Checks: `left OP right` over the metrics of a report, where each side is arithmetic
//! (`+ - * /`, parentheses) over numbers and metric paths. A path is the dotted key of
//! a number in report.json (`messages.lost`, `latency_us.message_rtt.p99`,
//! `connections.failed`). A duration literal (`250ms`, `2s`, `1500us`) is
//! microseconds, the unit of the report's `latency_us`. Comparisons: `< <= > >= ==
//! !=`.
//!
//! A metric the report does not hold (absent or `null`: not measured) makes the check
//! `NoData`, never a pass: a number in a verdict is true or absent. So does a
//! percentile of too few samples (a p99 of 40) and a division by zero. What it does not do: read files, or know which metrics exist (the
//! report's schema does).

use std::time::Duration;

use serde_json::Value;

/// A parsed check.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Its name.
    pub name: String,
    /// The text it was parsed from.
    pub expr: String,
    /// The phase it judges (the report's `phases[]` of that name); `None`: the run.
    pub phase: Option<String>,
    /// Judged live, each second, from this second of the run on (a phase's: from its
    /// start plus the delay); a failure stops the run. `None`: judged at the end only.
    pub abort_from: Option<Duration>,
    /// The target's defence it proves (its finding says held or missing).
    pub defence: Option<String>,
    left: Expr,
    op: Cmp,
    right: Expr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Number(f64),
    Metric(String, crate::metric::MetricPath),
    Binary(Box<Expr>, char, Box<Expr>),
}

/// What a check found.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It held; the left side's value.
    Pass(f64),
    /// It did not; the left side's value.
    Fail(f64),
    /// A metric it needs was not measured (named), or a division by zero.
    NoData(String),
}

impl Check {
    /// Parses `expr`; the error names the problem and where (a column, from 1).
    pub fn parse(name: Option<&str>, expr: &str) -> Result<Self, String> {
        let mut p = Parser { s: expr.as_bytes(), at: 0 };
        let left = p.sum()?;
        let op = p.cmp()?;
        let right = p.sum()?;
        p.skip_ws();
        if p.at < p.s.len() {
            return Err(format!("unexpected \"{}\" at column {}", &expr[p.at..], p.at + 1));
        }
        Ok(Self {
            name: name.unwrap_or(expr).to_string(),
            expr: expr.to_string(),
            phase: None,
            abort_from: None,
            defence: None,
            left,
            op,
            right,
        })
    }

    /// Judges the check against a report.
    pub fn evaluate(&self, report: &Value) -> Outcome {
        let (l, r) = match (eval(&self.left, report), eval(&self.right, report)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => return Outcome::NoData(e),
        };
        let held = match self.op {
            Cmp::Lt => l < r,
            Cmp::Le => l <= r,
            Cmp::Gt => l > r,
            Cmp::Ge => l >= r,
            Cmp::Eq => l == r,
            Cmp::Ne => l != r,
        };
        if held { Outcome::Pass(l) } else { Outcome::Fail(l) }
    }

    /// The metric paths it reads.
    pub fn metrics(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Metric(m, _) => out.push(m),
                Expr::Binary(a, _, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Number(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.left, &mut out);
        walk(&self.right, &mut out);
        out
    }
}

fn eval(e: &Expr, report: &Value) -> Result<f64, String> {
    match e {
        Expr::Number(n) => Ok(*n),
        Expr::Metric(path, m) => m.judge(report, path),
        Expr::Binary(a, op, b) => {
            let (a, b) = (eval(a, report)?, eval(b, report)?);
            match op {
                '+' => Ok(a + b),
                '-' => Ok(a - b),
                '*' => Ok(a * b),
                _ if b == 0.0 => Err("division by zero".into()),
                _ => Ok(a / b),
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn cmp(&mut self) -> Result<Cmp, String> {
        let col = self.at + 1;
        let two = self.s.get(self.at..self.at + 2);
        let (op, len) = match (self.peek(), two) {
            (_, Some(b"<=")) => (Cmp::Le, 2),
            (_, Some(b">=")) => (Cmp::Ge, 2),
            (_, Some(b"==")) => (Cmp::Eq, 2),
            (_, Some(b"!=")) => (Cmp::Ne, 2),
            (Some(b'<'), _) => (Cmp::Lt, 1),
            (Some(b'>'), _) => (Cmp::Gt, 1),
            _ => return Err(format!("expected a comparison (< <= > >= == !=) at column {col}")),
        };
        self.at += len;
        Ok(op)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            e = Expr::Binary(Box::new(e), op as char, Box::new(self.term()?));
        }
        Ok(e)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.atom()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.at += 1;
            e = Expr::Binary(Box::new(e), op as char, Box::new(self.atom()?));
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let col = self.at + 1;
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                let e = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err(format!("a \"(\" at column {col} is not closed"));
                }
                self.at += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.') {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
                if let Ok(n) = text.parse::<f64>() {
                    return Ok(Expr::Number(n));
                }
                let d = crate::model::parse_duration(text).map_err(|e| format!("{e} (column {col})"))?;
                Ok(Expr::Number(d.as_secs_f64() * 1e6))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.') {
                    self.at += 1;
                }
                let path = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
                if path.ends_with('.') || path.contains("..") {
                    return Err(format!("\"{path}\" at column {col} is not a metric path (like messages.lost)"));
                }
                let resolved = crate::metric::MetricPath::resolve(path).map_err(|e| format!("{e} (column {col})"))?;
                Ok(Expr::Metric(path.to_string(), resolved))
            }
            Some(_) => Err(format!("expected a number, a metric or \"(\" at column {col}")),
            None => Err(format!("the expression ends at column {col}: a number or a metric is missing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report() -> Value {
        json!({
            "messages": { "lost": 0, "sent": 1000, "late": 3 },
            "connections": { "attempted": 2000, "failed": 1 },
            "latency_us": { "delivery": { "p99": 180_000 }, "recover": null },
        })
    }

    fn judge(expr: &str) -> Outcome {
        Check::parse(None, expr).unwrap_or_else(|e| panic!("{expr}: {e}")).evaluate(&report())
    }

    #[test]
    fn comparisons_arithmetic_and_durations() {
        assert_eq!(judge("messages.lost == 0"), Outcome::Pass(0.0));
        assert_eq!(judge("messages.late == 0"), Outcome::Fail(3.0));
        assert_eq!(judge("latency_us.delivery.p99 < 250ms"), Outcome::Pass(180_000.0));
        assert_eq!(judge("latency_us.delivery.p99 < 0.1s"), Outcome::Fail(180_000.0));
        assert_eq!(judge("connections.failed / connections.attempted < 0.001"), Outcome::Pass(0.0005));
        assert_eq!(judge("(messages.sent - messages.late) * 2 >= 1994"), Outcome::Pass(1994.0));
        assert_eq!(judge("messages.late != 3"), Outcome::Fail(3.0));
        assert_eq!(judge("1 + 2 * 3 == 7"), Outcome::Pass(7.0), "precedence");
    }

    #[test]
    fn an_unmeasured_metric_is_no_data_never_a_pass() {
        assert_eq!(
            judge("latency_us.recover.p99 < 1s"),
            Outcome::NoData("latency_us.recover.p99 was not measured".into())
        );
        assert!(Check::parse(None, "messages.nothing == 0").unwrap_err().contains("no such field"), "a typo");
        assert_eq!(judge("messages.lost / messages.lost == 1"), Outcome::NoData("division by zero".into()));
        let few = json!({ "latency_us": { "delivery": { "count": 40, "p50": 1, "p99": 9 } } });
        let check = Check::parse(None, "latency_us.delivery.p99 < 250ms").unwrap();
        assert_eq!(
            check.evaluate(&few),
            Outcome::NoData(
                "latency_us.delivery.p99 comes from 40 samples; a percentile like it needs at least 100".into()
            )
        );
        assert_eq!(Check::parse(None, "latency_us.delivery.p50 < 1s").unwrap().evaluate(&few), Outcome::Pass(1.0));
        let c = Check::parse(Some("ratio"), "connections.failed / connections.attempted < 0.01").unwrap();
        assert_eq!((c.name.as_str(), c.metrics()), ("ratio", vec!["connections.failed", "connections.attempted"]));
    }

    #[test]
    fn bad_expressions_say_what_and_where() {
        for (expr, problem) in [
            ("messages.lost", "expected a comparison"),
            ("messages.lost = 0", "expected a comparison"),
            ("messages.lost == ", "a number or a metric is missing"),
            ("(messages.lost == 0", "not closed"),
            ("messages.lost == 0 0", "unexpected"),
            ("latency_us.delivery.p99 < 250parsecs", "not a unit of time"),
            ("messages. == 0", "not a metric path"),
            ("== 0", "expected a number"),
        ] {
            let e = Check::parse(None, expr).expect_err(expr);
            assert!(e.contains(problem), "{expr}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}

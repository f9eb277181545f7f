//! The HTML form of a comparison: one self-contained page (inline CSS; no script, no
//! network, no external font or image) with the runs, the thresholds, the regressions
//! first, the table by section with colour-coded statuses, and the notes. Every string
//! that comes from a report (labels, metric and check names, verdict words, notes) is
//! escaped. It formats rows; it judges nothing.

use std::fmt::Write as _;

use super::text::{change, confidence, figure, identity, result_line, thresholds_line};
use super::{Comparison, Row, Section, Status};

/// HTML escaping, shared with the run report.
pub(super) use crate::html::escape;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1d1d1f;background:#fff}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;margin-top:.5em}th,td{padding:.25em .7em;text-align:left;border-bottom:1px solid #e3e3e3}\
.n{text-align:right;font-variant-numeric:tabular-nums}tr.sec td{background:#f4f4f6;font-weight:600}\
.regressed{background:#fde2e1;color:#8a1212;font-weight:600}.improved{background:#e0f5e4;color:#135f26}\
.within_noise,.same{color:#555}.worse{color:#9a5b00}.better{color:#2f6b3a}.changed{color:#3a4fa0}\
.only_old,.only_new{color:#777;font-style:italic}\
.banner{padding:.6em 1em;border-radius:4px;font-weight:600}.bad{background:#fde2e1;color:#8a1212}\
.good{background:#e0f5e4;color:#135f26}ul{padding-left:1.2em}code{font-size:.95em}";

/// The CSS class of a status.
fn class(s: Status) -> &'static str {
    s.key()
}

pub(super) fn render(c: &Comparison) -> String {
    let mut h = String::new();
    let title = format!("loadgen compare: {} → {}", c.old.label, c.new.label);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        h,
        "<p>OLD: <code>{}</code><br>NEW: <code>{}</code></p>\n<p>{}</p>",
        escape(&identity(&c.old)),
        escape(&identity(&c.new)),
        escape(&thresholds_line(c))
    );
    let banner = if c.regressed() { "bad" } else { "good" };
    let _ = writeln!(h, "<p class=\"banner {banner}\">{}</p>", escape(&result_line(c)));
    let regressions: Vec<&Row> = c.regressions().collect();
    if !regressions.is_empty() {
        let _ = writeln!(h, "<h2>Regressions ({})</h2>\n<ul>", regressions.len());
        for r in regressions {
            let _ = writeln!(h, "<li>{}</li>", escape(&r.why));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(
        "<h2>Comparison</h2>\n<table>\n<thead><tr><th>metric</th><th class=\"n\">OLD</th><th class=\"n\">NEW</th><th class=\"n\">change</th>\
         <th>95% CI (OLD → NEW)</th><th>status</th></tr></thead>\n<tbody>\n",
    );
    let mut section = None;
    for r in &c.rows {
        if section != Some(r.section) {
            let _ = writeln!(h, "<tr class=\"sec\"><td colspan=\"6\">{}</td></tr>", escape(r.section.title()));
            section = Some(r.section);
        }
        let _ = writeln!(
            h,
            "<tr title=\"{}\"><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td class=\"{}\">{}</td></tr>",
            escape(&r.why),
            escape(&r.metric),
            escape(&figure(r.old.as_ref(), r.old_per_million)),
            escape(&figure(r.new.as_ref(), r.new_per_million)),
            escape(&change(r)),
            escape(&confidence(r)),
            class(r.status),
            escape(&r.status_text())
        );
    }
    if c.rows.iter().all(|r| r.section != Section::Errors) {
        let _ = writeln!(
            h,
            "<tr class=\"sec\"><td colspan=\"6\">{}</td></tr>\n<tr><td colspan=\"6\">none in either run</td></tr>",
            escape(Section::Errors.title())
        );
    }
    h.push_str("</tbody></table>\n");
    if !c.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &c.notes {
            let _ = writeln!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

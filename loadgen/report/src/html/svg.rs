//! Inline SVG charts, drawn in Rust so the page needs no script or library: a [`Plot`]
//! on two axes (axis.rs) with lines and their hoverable points, stacked or grouped
//! bars, phase bands, shaded seconds, event markers and a legend, turned into one
//! `<svg class="chart">` element.
//!
//! It draws what it is given; which series a chart holds and where they come from is
//! charts.rs's business. Every text is escaped here.

use std::fmt::Write;

use super::axis::Axis;
use super::text::esc;

/// Width of every chart's view box; the page scales it to the column.
pub const WIDTH: f64 = 960.0;
/// Height of the plotting area.
const PLOT_HEIGHT: f64 = 200.0;
/// Left margin (y tick labels and the axis title).
const LEFT: f64 = 84.0;
/// Right margin.
const RIGHT: f64 = 24.0;
/// Height of one row above the plot (event labels, each row of phases).
const ROW: f64 = 17.0;
/// At most this many points of a line get their own hover circle.
const MAX_POINT_MARKS: usize = 400;

/// The series colours, in order of use.
pub const PALETTE: [&str; 8] = ["#2563eb", "#ea580c", "#059669", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];
/// Colour of timeline event markers.
const MARKER: &str = "#b91c1c";
/// Fills of phase bands, in turn.
const PHASE_FILLS: [&str; 4] = ["#6366f1", "#0ea5e9", "#10b981", "#f59e0b"];

/// One point of a line: position, its tooltip, and extra attributes (already escaped).
#[derive(Clone, Debug)]
pub struct Point {
    /// x, in the x axis's values.
    pub x: f64,
    /// y, in the y axis's values.
    pub y: f64,
    /// Tooltip text.
    pub tip: String,
    /// Extra attributes of its circle, e.g. ` data-q="0.99"`, escaped by the caller.
    pub attrs: String,
}

/// A line; `None` entries break it (a second without samples is a gap, not a zero).
#[derive(Clone, Debug)]
pub struct Line {
    /// Its legend label.
    pub label: String,
    /// Its colour.
    pub colour: &'static str,
    /// Drawn dashed.
    pub dashed: bool,
    /// The points, in x order.
    pub points: Vec<Option<Point>>,
}

/// One stacked bar: from `x0` to `x1`, its parts bottom up (value, colour, tooltip).
#[derive(Clone, Debug)]
pub struct Bar {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// The parts, bottom up.
    pub parts: Vec<(f64, &'static str, String)>,
}

/// A span of the x axis: a named phase, or a shaded (saturated) second.
#[derive(Clone, Debug)]
pub struct Band {
    /// Start.
    pub x0: f64,
    /// End.
    pub x1: f64,
    /// Its label (phases).
    pub label: String,
    /// Tooltip text.
    pub tip: String,
}

/// A vertical marker: a timeline event.
#[derive(Clone, Debug)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Short label (the action).
    pub label: String,
    /// Tooltip text.
    pub tip: String,
}

/// Everything one chart shows.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The accessible name of the chart.
    pub aria: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// Lines, drawn in order.
    pub lines: Vec<Line>,
    /// Bars: each one's parts stacked, or side by side when `grouped`.
    pub bars: Vec<Bar>,
    /// Draw each bar's parts side by side rather than stacked.
    pub grouped: bool,
    /// Legend entries of the bars' parts (label, colour).
    pub bar_legend: Vec<(String, &'static str)>,
    /// Named phases: bands labelled above the plot.
    pub phases: Vec<Band>,
    /// Shaded spans (saturated seconds).
    pub shaded: Vec<Band>,
    /// Timeline events.
    pub markers: Vec<Marker>,
}

impl Plot {
    /// An empty plot on these axes.
    pub fn new(aria: &str, x: Axis, y: Axis) -> Plot {
        Plot {
            aria: aria.into(),
            x,
            y,
            lines: Vec::new(),
            bars: Vec::new(),
            grouped: false,
            bar_legend: Vec::new(),
            phases: Vec::new(),
            shaded: Vec::new(),
            markers: Vec::new(),
        }
    }
}

/// Rows for `bands` so that none overlaps another in its row: (row of each band, rows).
fn pack_rows(bands: &[Band]) -> (Vec<usize>, usize) {
    let mut ends: Vec<f64> = Vec::new();
    let mut rows = Vec::with_capacity(bands.len());
    for b in bands {
        let row = ends.iter().position(|&end| end <= b.x0 + 1e-9).unwrap_or(ends.len());
        if row == ends.len() {
            ends.push(b.x1);
        } else {
            ends[row] = b.x1;
        }
        rows.push(row);
    }
    (rows, ends.len())
}

/// Rough width of `text` at the chart's 12 px font.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.6
}

/// The legend entries: (label, colour, swatch kind).
fn legend_entries(plot: &Plot) -> Vec<(String, &'static str, &'static str)> {
    let mut out: Vec<(String, &'static str, &'static str)> = Vec::new();
    for l in &plot.lines {
        out.push((l.label.clone(), l.colour, if l.dashed { "dash" } else { "line" }));
    }
    for (label, colour) in &plot.bar_legend {
        out.push((label.clone(), colour, "box"));
    }
    if !plot.shaded.is_empty() {
        out.push(("saturated second".into(), "#f59e0b", "shade"));
    }
    if !plot.markers.is_empty() {
        out.push(("timeline event".into(), MARKER, "marker"));
    }
    out
}

/// The chart as one `<svg class="chart" role="img">` element.
pub fn draw(plot: &Plot) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let (phase_rows, n_phase_rows) = pack_rows(&plot.phases);
    let marker_row = if plot.markers.is_empty() { 0.0 } else { ROW };
    let top = 10.0
        + marker_row
        + n_phase_rows as f64 * ROW
        + if n_phase_rows + (marker_row > 0.0) as usize > 0 { 4.0 } else { 0.0 };
    let bottom = top + PLOT_HEIGHT;
    let legend = legend_entries(plot);
    // Lay the legend out in rows.
    let mut legend_pos: Vec<(f64, usize)> = Vec::with_capacity(legend.len());
    let (mut lx, mut lrow) = (LEFT, 0usize);
    for (label, _, _) in &legend {
        let w = 30.0 + text_width(label) + 18.0;
        if lx + w > WIDTH - RIGHT && lx > LEFT {
            lx = LEFT;
            lrow += 1;
        }
        legend_pos.push((lx, lrow));
        lx += w;
    }
    let legend_rows = if legend.is_empty() { 0 } else { lrow + 1 };
    let height = bottom + 44.0 + legend_rows as f64 * 20.0 + 4.0;
    let px = |v: f64| LEFT + plot.x.frac(v) * plot_w;
    let py = |v: f64| bottom - plot.y.frac(v) * PLOT_HEIGHT;

    let mut s = String::with_capacity(8192);
    let _ = write!(
        s,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{aria}\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
         preserveAspectRatio=\"xMidYMid meet\"><title>{aria}</title>",
        aria = esc(&plot.aria)
    );
    let _ =
        write!(s, "<rect class=\"plot-bg\" x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_w}\" height=\"{PLOT_HEIGHT}\"/>");
    // Phase bands: a faint tint over the plot and a labelled strip above it.
    for (i, (band, row)) in plot.phases.iter().zip(&phase_rows).enumerate() {
        let fill = PHASE_FILLS[i % PHASE_FILLS.len()];
        let (x0, x1) = (px(band.x0), px(band.x1));
        let w = (x1 - x0).max(1.0);
        let y = 10.0 + marker_row + *row as f64 * ROW;
        let _ = write!(
            s,
            "<g class=\"phase\"><title>{tip}</title>\
             <rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{PLOT_HEIGHT}\" fill=\"{fill}\" fill-opacity=\"0.06\"/>\
             <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"3\" fill=\"{fill}\" fill-opacity=\"0.16\" stroke=\"{fill}\" stroke-opacity=\"0.5\"/>",
            tip = esc(&band.tip),
            h = ROW - 3.0
        );
        let label = fit_label(&band.label, w - 8.0);
        if !label.is_empty() {
            let _ = write!(
                s,
                "<text class=\"phase-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x0 + 4.0,
                y + 10.5,
                esc(&label)
            );
        }
        s.push_str("</g>");
    }
    for band in &plot.shaded {
        let (x0, x1) = (px(band.x0), px(band.x1));
        let _ = write!(
            s,
            "<rect class=\"saturated\" x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PLOT_HEIGHT}\"><title>{}</title></rect>",
            (x1 - x0).max(1.0),
            esc(&band.tip)
        );
    }
    // Grid and y ticks.
    for t in &plot.y.ticks {
        let y = py(t.at);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick y-tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + plot_w,
            LEFT - 8.0,
            y + 4.0,
            esc(&t.label)
        );
    }
    for t in &plot.x.ticks {
        let x = px(t.at);
        let _ = write!(
            s,
            "<line class=\"x-tick-mark\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick x-tick\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            bottom + 5.0,
            bottom + 18.0,
            esc(&t.label)
        );
    }
    draw_bars(&mut s, plot, &px, &py);
    draw_lines(&mut s, plot, &px, &py);
    draw_markers(&mut s, plot, &px, top, bottom);
    // Axes and titles.
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{top:.1}\" y2=\"{bottom:.1}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{bottom:.1}\" y2=\"{bottom:.1}\"/>\
         <text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\
         <text class=\"axis-title\" transform=\"translate(16 {:.1}) rotate(-90)\">{}</text>",
        LEFT + plot_w,
        LEFT + plot_w / 2.0,
        bottom + 36.0,
        esc(&plot.x.title),
        top + PLOT_HEIGHT / 2.0,
        esc(&plot.y.title)
    );
    for ((label, colour, kind), (x, row)) in legend.iter().zip(&legend_pos) {
        let y = bottom + 56.0 + *row as f64 * 20.0;
        let swatch = match *kind {
            "line" => format!(
                "<line x1=\"{x}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"/>",
                x + 22.0
            ),
            "dash" => format!(
                "<line x1=\"{x}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\" stroke-dasharray=\"5 3\"/>",
                x + 22.0
            ),
            "marker" => format!(
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"marker-line\"/>",
                x + 11.0,
                x + 11.0,
                y - 7.0,
                y + 7.0
            ),
            "shade" => format!("<rect x=\"{x}\" y=\"{:.1}\" width=\"22\" height=\"12\" class=\"saturated\"/>", y - 6.0),
            _ => {
                format!("<rect x=\"{x}\" y=\"{:.1}\" width=\"22\" height=\"12\" rx=\"2\" fill=\"{colour}\"/>", y - 6.0)
            }
        };
        let _ = write!(
            s,
            "<g class=\"legend\">{swatch}<text class=\"legend-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            x + 30.0,
            y + 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// `label`, shortened with an ellipsis to fit `width` px, or empty when nothing fits.
fn fit_label(label: &str, width: f64) -> String {
    if text_width(label) <= width {
        return label.into();
    }
    let fits = (width / 6.6).floor() as usize;
    if fits < 2 {
        return String::new();
    }
    let mut short: String = label.chars().take(fits - 1).collect();
    short.push('…');
    short
}

fn draw_bars(s: &mut String, plot: &Plot, px: &dyn Fn(f64) -> f64, py: &dyn Fn(f64) -> f64) {
    for bar in &plot.bars {
        let (x0, x1) = (px(bar.x0), px(bar.x1));
        let w = ((x1 - x0) * 0.72).max(1.0);
        let x = x0 + (x1 - x0 - w) / 2.0;
        let slot = if plot.grouped { w / bar.parts.len().max(1) as f64 } else { w };
        let mut base = 0.0;
        for (i, (value, colour, tip)) in bar.parts.iter().enumerate() {
            if *value <= 0.0 {
                continue;
            }
            let (left, from) = if plot.grouped { (x + slot * i as f64, 0.0) } else { (x, base) };
            // At least 2 px high, so that a count of 1 among hundreds still shows.
            let y_bottom = py(from);
            let height = (y_bottom - py(from + value)).max(2.0);
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{left:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{}</title></rect>",
                y_bottom - height,
                (slot - if plot.grouped { 1.0 } else { 0.0 }).max(1.0),
                esc(tip)
            );
            base += value;
        }
    }
}

fn draw_lines(s: &mut String, plot: &Plot, px: &dyn Fn(f64) -> f64, py: &dyn Fn(f64) -> f64) {
    for line in &plot.lines {
        let dash = if line.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = write!(s, "<g class=\"series\"><title>{}</title>", esc(&line.label));
        for segment in line.points.split(Option::is_none) {
            let coords: Vec<String> =
                segment.iter().flatten().map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y))).collect();
            if coords.len() > 1 {
                let _ = write!(s, "<polyline points=\"{}\" stroke=\"{}\"{dash}/>", coords.join(" "), line.colour);
            }
        }
        let points: Vec<&Point> = line.points.iter().flatten().collect();
        if points.len() <= MAX_POINT_MARKS {
            for p in points {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"{}><title>{}</title></circle>",
                    px(p.x),
                    py(p.y),
                    line.colour,
                    p.attrs,
                    esc(&p.tip)
                );
            }
        }
        s.push_str("</g>");
    }
}

fn draw_markers(s: &mut String, plot: &Plot, px: &dyn Fn(f64) -> f64, top: f64, bottom: f64) {
    let mut label_end = f64::NEG_INFINITY;
    for m in &plot.markers {
        let x = px(m.x);
        let _ = write!(
            s,
            "<g class=\"marker\"><title>{}</title><line class=\"marker-line\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{bottom:.1}\"/>",
            esc(&m.tip),
            top - 2.0
        );
        let width = text_width(&m.label);
        let start = (x - width / 2.0).clamp(LEFT, WIDTH - RIGHT - width);
        if start > label_end + 6.0 {
            let _ = write!(
                s,
                "<text class=\"marker-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                start,
                10.0 + 11.0,
                esc(&m.label)
            );
            label_end = start + width;
        }
        s.push_str("</g>");
    }
}

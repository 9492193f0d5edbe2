//! Plots as hand-written SVG text (DESIGN section 10): training curves, the
//! partition curve with the chosen split marked, privacy-utility trade-offs.
//!
//! SVG is plain text, so there is no font or rendering library to build and
//! the output opens in any browser and embeds inline in `report.md`/HTML.
//! Non-finite values (and any beyond +-1e300) are skipped, a line breaking at
//! them; a single point or a
//! zero range is padded so the axes still have a span. Axis ticks use the
//! "nice numbers" rule (steps of 1, 2 or 5 times a power of ten; Heckbert,
//! Graphics Gems, 1990).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// Size of the plotting area in pixels (axes frame), and the margins around.
const PLOT_W: f64 = 560.0;
const PLOT_H: f64 = 360.0;
const LEFT: f64 = 75.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const RIGHT: f64 = 20.0;

/// Series colours (matplotlib's "tab10").
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Writing an SVG file failed.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: cannot write file: {cause}")]
pub struct PlotError {
    /// Destination file.
    pub path: PathBuf,
    /// The I/O error (in the message, so not chained as a source: the
    /// command line would print it twice).
    pub cause: std::io::Error,
}

/// One named line of `(x, y)` points, drawn in the given order with markers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Name shown in the legend.
    pub name: String,
    /// The points; non-finite ones are skipped and break the line.
    pub points: Vec<(f64, f64)>,
}

/// A dashed vertical line across the plot at `x`, with a label (e.g. the
/// chosen split).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VMarker {
    /// Position on the x axis.
    pub x: f64,
    /// Text written beside the line.
    pub label: String,
}

/// A line plot: several series, a legend, optional vertical markers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical marker lines.
    pub markers: Vec<VMarker>,
}

/// One point of a scatter plot with its own label (e.g. a run's name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledPoint {
    /// x value.
    pub x: f64,
    /// y value.
    pub y: f64,
    /// Text written beside the point.
    pub label: String,
    /// Horizontal error bar `(lo, hi)` in x units (e.g. a 95% interval), if any.
    pub x_err: Option<(f64, f64)>,
    /// Vertical error bar `(lo, hi)` in y units, if any.
    pub y_err: Option<(f64, f64)>,
}

/// A vertical error bar on a line plot's series at `x`, from `lo` to `hi`
/// (e.g. a 95% interval over repeats), drawn in the series' colour with caps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorBar {
    /// Index of the series in [`LinePlot::series`].
    pub series: usize,
    /// Position on the x axis.
    pub x: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// A scatter plot of labelled points (e.g. target accuracy vs. attack PSNR).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScatterPlot {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The points; non-finite ones are skipped.
    pub points: Vec<LabelledPoint>,
}

/// Writes `svg` to `path` atomically.
pub fn save_svg(path: &Path, svg: &str) -> Result<(), PlotError> {
    write_atomic(path, svg.as_bytes()).map_err(|cause| PlotError {
        path: path.to_path_buf(),
        cause,
    })
}

/// Escapes the five XML special characters for text and attribute values.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a line plot as a standalone SVG document.
pub fn line_plot(plot: &LinePlot) -> String {
    line_plot_with_bars(plot, &[])
}

/// Renders a line plot with vertical error bars (bars with a non-finite end
/// or an unknown series are skipped; without bars this is [`line_plot`]).
pub fn line_plot_with_bars(plot: &LinePlot, bars: &[ErrorBar]) -> String {
    let finite = |p: &(f64, f64)| plottable(p.0) && plottable(p.1);
    let bars: Vec<&ErrorBar> = bars
        .iter()
        .filter(|b| {
            b.series < plot.series.len() && plottable(b.x) && plottable(b.lo) && plottable(b.hi)
        })
        .collect();
    let pts = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| finite(p)));
    let xs = pts
        .clone()
        .map(|p| p.0)
        .chain(plot.markers.iter().map(|m| m.x).filter(|&x| plottable(x)));
    let ys = pts
        .clone()
        .map(|p| p.1)
        .chain(bars.iter().flat_map(|b| [b.lo, b.hi]));
    let has_data = pts.clone().next().is_some();
    let legend_w = plot
        .series
        .iter()
        .map(|s| s.name.chars().count() as f64 * 7.0 + 45.0)
        .fold(0.0, f64::max);
    let frame = Frame::new(xs, ys, legend_w);
    let mut svg = frame.open(&plot.title, &plot.x_label, &plot.y_label, has_data);
    for m in plot.markers.iter().filter(|m| plottable(m.x)) {
        let x = frame.px(m.x);
        let _ = write!(
            svg,
            r##"<line x1="{x:.2}" y1="{TOP:.2}" x2="{x:.2}" y2="{:.2}" stroke="#444" stroke-dasharray="5,4"/><text x="{:.2}" y="{:.2}" fill="#444">{}</text>"##,
            TOP + PLOT_H,
            x + 4.0,
            TOP + 14.0,
            escape_xml(&m.label)
        );
    }
    for (i, s) in plot.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        svg.push_str("<g>");
        // Break the line into runs of consecutive finite points.
        for run in s.points.split(|p| !finite(p)) {
            if run.len() > 1 {
                let coords: Vec<String> = run
                    .iter()
                    .map(|&(x, y)| format!("{:.2},{:.2}", frame.px(x), frame.py(y)))
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                    coords.join(" ")
                );
            }
        }
        for b in bars.iter().filter(|b| b.series == i) {
            error_bar(
                &mut svg,
                frame.px(b.x),
                frame.py(b.lo),
                frame.py(b.hi),
                color,
                true,
            );
        }
        for &(x, y) in s.points.iter().filter(|p| finite(p)) {
            let _ = write!(
                svg,
                r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{color}"><title>{}: ({}, {})</title></circle>"#,
                frame.px(x),
                frame.py(y),
                escape_xml(&s.name),
                x,
                y
            );
        }
        let (lx, ly) = (LEFT + PLOT_W + 15.0, TOP + 10.0 + 20.0 * i as f64);
        let _ = write!(
            svg,
            r#"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{color}" stroke-width="2"/><circle cx="{:.2}" cy="{ly:.2}" r="3" fill="{color}"/><text x="{:.2}" y="{:.2}">{}</text>"#,
            lx + 24.0,
            lx + 12.0,
            lx + 30.0,
            ly + 4.0,
            escape_xml(&s.name)
        );
        svg.push_str("</g>");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders a scatter plot of labelled points as a standalone SVG document.
pub fn scatter_plot(plot: &ScatterPlot) -> String {
    let pts: Vec<&LabelledPoint> = plot
        .points
        .iter()
        .filter(|p| plottable(p.x) && plottable(p.y))
        .collect();
    // An error bar counts only when both its ends can be drawn.
    let bar = |e: Option<(f64, f64)>| e.filter(|&(lo, hi)| plottable(lo) && plottable(hi));
    let xs = pts.iter().flat_map(|p| {
        std::iter::once(p.x).chain(bar(p.x_err).into_iter().flat_map(|(a, b)| [a, b]))
    });
    let ys = pts.iter().flat_map(|p| {
        std::iter::once(p.y).chain(bar(p.y_err).into_iter().flat_map(|(a, b)| [a, b]))
    });
    let frame = Frame::new(xs, ys, 0.0);
    let mut svg = frame.open(&plot.title, &plot.x_label, &plot.y_label, !pts.is_empty());
    for p in pts {
        let (x, y) = (frame.px(p.x), frame.py(p.y));
        if let Some((lo, hi)) = bar(p.x_err) {
            error_bar(&mut svg, y, frame.px(lo), frame.px(hi), PALETTE[0], false);
        }
        if let Some((lo, hi)) = bar(p.y_err) {
            error_bar(&mut svg, x, frame.py(lo), frame.py(hi), PALETTE[0], true);
        }
        // Labels on the right half go left of their point to stay inside.
        let (dx, anchor) = if x > LEFT + 0.75 * PLOT_W {
            (-6.0, "end")
        } else {
            (6.0, "start")
        };
        let label = escape_xml(&p.label);
        let _ = write!(
            svg,
            r##"<circle cx="{x:.2}" cy="{y:.2}" r="4" fill="{}"><title>{label}: ({}, {})</title></circle><text x="{:.2}" y="{:.2}" text-anchor="{anchor}" fill="#333">{label}</text>"##,
            PALETTE[0],
            p.x,
            p.y,
            x + dx,
            y - 6.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// An error bar in pixels from `a` to `b` with 4-pixel caps: vertical at
/// `x = at` when `vertical`, else horizontal at `y = at`.
fn error_bar(svg: &mut String, at: f64, a: f64, b: f64, color: &str, vertical: bool) {
    let line = |svg: &mut String, x1: f64, y1: f64, x2: f64, y2: f64| {
        let _ = write!(
            svg,
            r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}" stroke="{color}" stroke-width="1.5"/>"#
        );
    };
    match vertical {
        true => {
            line(svg, at, a, at, b);
            line(svg, at - 4.0, a, at + 4.0, a);
            line(svg, at - 4.0, b, at + 4.0, b);
        }
        false => {
            line(svg, a, at, b, at);
            line(svg, a, at - 4.0, a, at + 4.0);
            line(svg, b, at - 4.0, b, at + 4.0);
        }
    }
}

/// Axis ranges and the data-to-pixel mapping shared by both plot kinds.
struct Frame {
    x: Axis,
    y: Axis,
    width: f64,
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64>, ys: impl Iterator<Item = f64>, legend_w: f64) -> Self {
        Frame {
            x: Axis::nice(xs),
            y: Axis::nice(ys),
            width: LEFT + PLOT_W + RIGHT + legend_w,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.lo) / (self.x.hi - self.x.lo) * PLOT_W
    }

    fn py(&self, y: f64) -> f64 {
        TOP + PLOT_H - (y - self.y.lo) / (self.y.hi - self.y.lo) * PLOT_H
    }

    /// The `<svg>` opening, background, title, grid, ticks, frame and labels.
    fn open(&self, title: &str, x_label: &str, y_label: &str, has_data: bool) -> String {
        let (w, h) = (self.width, TOP + PLOT_H + BOTTOM);
        let mut s = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="12"><rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="#fff"/><text x="{:.2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"##,
            LEFT + PLOT_W / 2.0,
            escape_xml(title)
        );
        let bottom = TOP + PLOT_H;
        for &t in &self.x.ticks {
            let x = self.px(t);
            let _ = write!(
                s,
                r##"<line x1="{x:.2}" y1="{TOP:.2}" x2="{x:.2}" y2="{bottom:.2}" stroke="#e5e5e5"/><text x="{x:.2}" y="{:.2}" text-anchor="middle">{}</text>"##,
                bottom + 16.0,
                self.x.label(t)
            );
        }
        for &t in &self.y.ticks {
            let y = self.py(t);
            let _ = write!(
                s,
                r##"<line x1="{LEFT:.2}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#e5e5e5"/><text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"##,
                LEFT + PLOT_W,
                LEFT - 6.0,
                y + 4.0,
                self.y.label(t)
            );
        }
        let (ylx, yly) = (18.0, TOP + PLOT_H / 2.0);
        let _ = write!(
            s,
            r#"<rect x="{LEFT:.2}" y="{TOP:.2}" width="{PLOT_W:.2}" height="{PLOT_H:.2}" fill="none" stroke="black"/><text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text><text x="{ylx:.2}" y="{yly:.2}" text-anchor="middle" transform="rotate(-90 {ylx:.2} {yly:.2})">{}</text>"#,
            LEFT + PLOT_W / 2.0,
            bottom + 40.0,
            escape_xml(x_label),
            escape_xml(y_label)
        );
        if !has_data {
            let _ = write!(
                s,
                r##"<text x="{:.2}" y="{:.2}" text-anchor="middle" fill="#888">no data</text>"##,
                LEFT + PLOT_W / 2.0,
                TOP + PLOT_H / 2.0
            );
        }
        s
    }
}

/// One axis: its span (rounded out to whole ticks) and the tick values.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    ticks: Vec<f64>,
}

impl Axis {
    /// A padded, tick-aligned axis covering the finite `values` ([0, 1] if none).
    fn nice(values: impl Iterator<Item = f64>) -> Self {
        let (mut lo, mut hi) = values
            .filter(|&v| plottable(v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo <= 1e-9 * lo.abs().max(hi.abs()) {
            // A single value (or a vanishing range): pad so the axis has a span.
            let pad = match lo.abs().max(hi.abs()) {
                0.0 => 1.0,
                m => 0.1 * m,
            };
            (lo, hi) = (lo - pad, hi + pad);
        } else {
            // A 5% margin keeps markers off the frame.
            let margin = 0.05 * (hi - lo);
            (lo, hi) = (lo - margin, hi + margin);
        }
        let step = nice_step((hi - lo) / 5.0);
        let (t0, t1) = ((lo / step).ceil(), (hi / step).floor());
        let ticks = if t1 >= t0 && t1 - t0 <= 50.0 {
            (0..=(t1 - t0) as usize)
                .map(|k| (t0 + k as f64) * step)
                .collect()
        } else {
            vec![lo, hi]
        };
        Axis {
            lo,
            hi,
            step,
            ticks,
        }
    }

    /// Tick text with as many decimals as the step needs.
    fn label(&self, v: f64) -> String {
        if v.abs() < self.step * 1e-9 {
            return "0".into();
        }
        if self.step < 1e-4 || v.abs() >= 1e6 {
            return format!("{v:.2e}");
        }
        let decimals = (-self.step.log10()).ceil().max(0.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// Whether a value can be drawn: finite and within +-1e300 (so spans and
/// margins stay finite).
fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= 1e300
}

/// The "nice" number (1, 2 or 5 times a power of ten) closest to `x` > 0.
fn nice_step(x: f64) -> f64 {
    let exp = x.log10().floor();
    let base = 10f64.powf(exp);
    let f = x / base;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every opened tag is closed in order; returns the problem.
    fn check_balanced(svg: &str) -> Result<usize, String> {
        let mut stack: Vec<&str> = Vec::new();
        let mut count = 0;
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').ok_or("unclosed '<'")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.contains('<') {
                return Err(format!("'<' inside tag: {tag}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(top) if top == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().ok_or("empty tag")?);
            }
            count += 1;
        }
        if rest.contains('>') {
            return Err("stray '>' in text".into());
        }
        match stack.is_empty() {
            true => Ok(count),
            false => Err(format!("unclosed tags: {stack:?}")),
        }
    }

    /// Every number in a coordinate attribute, parsed.
    fn coordinates(svg: &str) -> Vec<f64> {
        let mut out = Vec::new();
        for attr in [
            "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "points",
        ] {
            let key = format!(" {attr}=\"");
            for (at, _) in svg.match_indices(&key) {
                let value = &svg[at + key.len()..];
                let value = &value[..value.find('"').unwrap()];
                for num in value.split([' ', ',']).filter(|t| !t.is_empty()) {
                    out.push(num.parse::<f64>().unwrap_or(f64::NAN));
                }
            }
        }
        out
    }

    fn demo_line_plot() -> LinePlot {
        LinePlot {
            title: "Partition curve".into(),
            x_label: "split".into(),
            y_label: "R_c^2".into(),
            series: vec![
                Series {
                    name: "train".into(),
                    points: vec![(1.0, 0.9), (2.0, 0.7), (3.0, f64::NAN), (4.0, 0.2)],
                },
                Series {
                    name: "test".into(),
                    points: vec![(1.0, 0.95), (2.0, f64::INFINITY), (4.0, 0.25)],
                },
            ],
            markers: vec![VMarker {
                x: 3.0,
                label: "chosen split".into(),
            }],
        }
    }

    #[test]
    fn line_plot_is_well_formed_and_names_every_series() {
        let svg = line_plot(&demo_line_plot());
        assert!(check_balanced(&svg).unwrap() > 20);
        for name in ["train", "test", "chosen split", "Partition curve", "R_c^2"] {
            assert!(svg.contains(name), "missing {name}");
        }
        let coords = coordinates(&svg);
        assert!(coords.len() > 30);
        assert!(coords.iter().all(|c| c.is_finite()), "{coords:?}");
        // The NaN in "train" splits its line into two runs, one a single point.
        assert_eq!(svg.matches("<polyline").count(), 1);
        // Markers: 3 + 2 finite data points, plus one legend marker per series.
        assert_eq!(svg.matches("<circle").count(), 5 + 2);
    }

    #[test]
    fn balance_checker_catches_broken_markup() {
        assert!(check_balanced("<svg><g></svg>").is_err());
        assert!(check_balanced("<svg><text>a<b</text></svg>").is_err());
        assert!(check_balanced("<svg><g/><text>ok</text></svg>").is_ok());
    }

    #[test]
    fn text_is_escaped() {
        let mut plot = demo_line_plot();
        plot.title = "a<b & \"c\" > 'd'".into();
        plot.series[0].name = "<script>".into();
        let svg = line_plot(&plot);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;"));
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        check_balanced(&svg).unwrap();
    }

    #[test]
    fn single_point_and_empty_plots_get_a_padded_range() {
        let one = ScatterPlot {
            title: "one".into(),
            points: vec![LabelledPoint {
                x: 0.0,
                y: 5.0,
                label: "run-a".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let svg = scatter_plot(&one);
        check_balanced(&svg).unwrap();
        assert!(svg.contains("run-a"));
        assert!(coordinates(&svg).iter().all(|c| c.is_finite()));
        let empty = scatter_plot(&ScatterPlot {
            points: vec![LabelledPoint {
                x: f64::NAN,
                y: 1.0,
                label: "lost".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        check_balanced(&empty).unwrap();
        assert!(empty.contains("no data") && !empty.contains("lost"));
        assert!(coordinates(&empty).iter().all(|c| c.is_finite()));
    }

    #[test]
    fn scatter_plot_labels_every_point() {
        let points: Vec<LabelledPoint> = (0..4)
            .map(|i| LabelledPoint {
                x: 0.9 + 0.02 * f64::from(i),
                y: 10.0 + f64::from(i * i),
                label: format!("run{i}"),
                ..Default::default()
            })
            .collect();
        let svg = scatter_plot(&ScatterPlot {
            title: "trade-off".into(),
            x_label: "target accuracy".into(),
            y_label: "PSNR (dB)".into(),
            points,
        });
        check_balanced(&svg).unwrap();
        for i in 0..4 {
            assert!(svg.contains(&format!(">run{i}</text>")));
        }
        assert!(coordinates(&svg).iter().all(|c| c.is_finite()));
    }

    #[test]
    fn error_bars_are_drawn_inside_the_axes_and_absent_ones_change_nothing() {
        let plain = demo_line_plot();
        assert_eq!(line_plot(&plain), line_plot_with_bars(&plain, &[]));
        let bars = [
            ErrorBar {
                series: 0,
                x: 1.0,
                lo: 0.5,
                hi: 1.4,
            },
            // Unknown series and non-finite ends are skipped.
            ErrorBar {
                series: 9,
                x: 1.0,
                lo: 0.0,
                hi: 1.0,
            },
            ErrorBar {
                series: 1,
                x: 4.0,
                lo: f64::NAN,
                hi: 1.0,
            },
        ];
        let svg = line_plot_with_bars(&plain, &bars);
        check_balanced(&svg).unwrap();
        // One bar: a stem and two caps.
        assert_eq!(svg.matches(r#"stroke-width="1.5""#).count(), 3);
        assert!(coordinates(&svg).iter().all(|c| c.is_finite()));
        // The y axis grew to hold the bar's upper end (1.4, above every point).
        let axis = Axis::nice([0.2, 0.95, 0.5, 1.4].into_iter());
        assert!(axis.hi >= 1.4);

        let point = |x_err, y_err| LabelledPoint {
            x: 1.0,
            y: 2.0,
            label: "run".into(),
            x_err,
            y_err,
        };
        let scatter = |p: LabelledPoint| {
            scatter_plot(&ScatterPlot {
                points: vec![p, point(None, None)],
                ..Default::default()
            })
        };
        let none = scatter(point(None, None));
        let both = scatter(point(Some((0.5, 1.5)), Some((1.0, 3.0))));
        check_balanced(&both).unwrap();
        assert_eq!(both.matches(r#"stroke-width="1.5""#).count(), 6);
        assert_eq!(none.matches(r#"stroke-width="1.5""#).count(), 0);
        let bad = scatter(point(Some((f64::NAN, 1.0)), None));
        assert_eq!(bad, none);
    }

    #[test]
    fn axis_ticks_are_nice_and_cover_the_data() {
        // [0, 1] plus a 5% margin each side; step 1.1 / 5 -> 0.2.
        let a = Axis::nice([0.0, 1.0].into_iter());
        assert_eq!(a.step, 0.2);
        assert!((a.lo + 0.05).abs() < 1e-12 && (a.hi - 1.05).abs() < 1e-12);
        let labels: Vec<String> = a.ticks.iter().map(|&t| a.label(t)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let big = Axis::nice([-1e308, 1e308, 5.0].into_iter());
        assert!(big.lo.is_finite() && big.hi.is_finite() && big.lo < 5.0 && big.hi > 5.0);
        let flat = Axis::nice([3.0, 3.0].into_iter());
        assert!(flat.lo < 3.0 && flat.hi > 3.0);
        assert_eq!(nice_step(0.7), 0.5);
        assert_eq!(nice_step(230.0), 200.0);
    }

    #[test]
    fn save_svg_writes_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let svg = line_plot(&demo_line_plot());
        save_svg(&path, &svg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), svg);
    }
}

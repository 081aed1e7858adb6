//! Figures as data, written as SVG with `plotters`.
//!
//! A chapter describes its figure — panels, axes, series — as plain values; [`Figure::write_svg`]
//! draws it. Text (titles, tick labels, legends) is left to the SVG viewer's fonts, so no
//! font file is needed when the figure is made.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced decades; values ≤ 0 are left out of the plot.
    Log,
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// Markers only.
    Points,
    /// A solid line with a marker at every point.
    LinePoints,
}

/// Where a panel's legend sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legend {
    /// The corner that covers the fewest data points.
    Auto,
    /// Top right corner.
    UpperRight,
    /// Top left corner.
    UpperLeft,
    /// Bottom right corner.
    LowerRight,
    /// Bottom left corner.
    LowerLeft,
    /// No legend.
    Hidden,
}

/// One named line or set of points.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// The points `(x, y)`, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub style: Style,
    /// An index into the palette; series with the same colour belong together.
    pub color: usize,
}

impl Series {
    /// A solid line in palette colour `color`.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Series {
            label: label.into(),
            points,
            style: Style::Line,
            color,
        }
    }

    /// The same series drawn in another style.
    pub fn styled(mut self, style: Style) -> Self {
        self.style = style;
        self
    }
}

/// One set of axes with its series.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Title above the axes.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Horizontal scale.
    pub x_scale: Scale,
    /// Vertical scale.
    pub y_scale: Scale,
    /// The data.
    pub series: Vec<Series>,
    /// Legend placement.
    pub legend: Legend,
    /// Text placed at data coordinates `(x, y)` (centred there).
    pub notes: Vec<(f64, f64, String)>,
    /// Whether to draw axes, ticks and grid (off for diagrams).
    pub axes: bool,
    /// Extra room above the data, as a fraction of the vertical range (for a legend).
    pub headroom: f64,
}

impl Panel {
    /// A panel with linear axes, a legend in the emptiest corner and no series yet.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            legend: Legend::Auto,
            notes: Vec::new(),
            axes: true,
            headroom: 0.0,
        }
    }

    /// Leaves `fraction` of the vertical range free above the data, where the legend goes.
    pub fn headroom(mut self, fraction: f64) -> Self {
        self.headroom = fraction.max(0.0);
        self
    }

    /// Adds a text note centred at `(x, y)`.
    pub fn note(mut self, x: f64, y: f64, text: impl Into<String>) -> Self {
        self.notes.push((x, y, text.into()));
        self
    }

    /// Draws no axes, ticks or grid: for diagrams.
    pub fn without_axes(mut self) -> Self {
        self.axes = false;
        self
    }

    /// Uses a logarithmic vertical axis.
    pub fn log_y(mut self) -> Self {
        self.y_scale = Scale::Log;
        self
    }

    /// Uses a logarithmic horizontal axis.
    pub fn log_x(mut self) -> Self {
        self.x_scale = Scale::Log;
        self
    }

    /// Moves the legend.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The points of a series as drawn: logarithmic coordinates become log₁₀ of the value,
    /// and points a scale cannot show (non-finite, or ≤ 0 on a log axis) are left out.
    fn plotted(&self, series: &Series) -> Vec<(f64, f64)> {
        series
            .points
            .iter()
            .filter_map(|&(x, y)| Some((to_axis(x, self.x_scale)?, to_axis(y, self.y_scale)?)))
            .collect()
    }

    /// The padded range of the plotted coordinates along one axis (`coord` picks it).
    fn range(&self, scale: Scale, coord: impl Fn(&(f64, f64)) -> f64) -> Range<f64> {
        let notes = self
            .notes
            .iter()
            .filter_map(|(x, y, _)| Some((to_axis(*x, self.x_scale)?, to_axis(*y, self.y_scale)?)));
        let (lo, hi) = self
            .series
            .iter()
            .flat_map(|s| self.plotted(s))
            .chain(notes)
            .map(|p| coord(&p))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            // Nothing to show: a unit range keeps the axes drawable.
            return -1.0..1.0;
        }
        match scale {
            // Whole decades when the data span several, a small margin otherwise.
            Scale::Log if hi - lo >= 2.0 => {
                let pad = 0.03 * (hi - lo);
                (lo - pad).floor()..(hi + pad).ceil()
            }
            _ => {
                let pad = if hi > lo { 0.04 * (hi - lo) } else { 0.5 };
                (lo - pad)..(hi + pad)
            }
        }
    }

    /// The corner whose quarter of the plot holds the fewest points.
    fn emptiest_corner(&self, x: &Range<f64>, y: &Range<f64>) -> Legend {
        let corners = [
            (Legend::UpperRight, true, true),
            (Legend::UpperLeft, false, true),
            (Legend::LowerRight, true, false),
            (Legend::LowerLeft, false, false),
        ];
        let fx = |v: f64| (v - x.start) / (x.end - x.start);
        let fy = |v: f64| (v - y.start) / (y.end - y.start);
        let crowd = |right: bool, upper: bool| {
            self.series
                .iter()
                .flat_map(|s| self.plotted(s))
                .filter(|&(px, py)| {
                    let (u, v) = (fx(px), fy(py));
                    let in_x = if right { u > 0.55 } else { u < 0.45 };
                    let in_y = if upper { v > 0.6 } else { v < 0.4 };
                    in_x && in_y
                })
                .count()
        };
        corners
            .iter()
            .min_by_key(|(_, right, upper)| crowd(*right, *upper))
            .map_or(Legend::UpperRight, |c| c.0)
    }
}

/// A value's coordinate on an axis of `scale`, if the axis can show it.
fn to_axis(v: f64, scale: Scale) -> Option<f64> {
    match scale {
        Scale::Linear => v.is_finite().then_some(v),
        Scale::Log => (v.is_finite() && v > 0.0).then(|| v.log10()),
    }
}

/// A figure: one or more panels in a grid, written to `<file>.svg`.
#[derive(Clone, Debug)]
pub struct Figure {
    /// File name without extension.
    pub file: String,
    /// A one-line caption (used as the figure's title in the text and in Markdown).
    pub caption: String,
    /// Panels per row.
    pub columns: usize,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
}

/// Width and height of one panel, in pixels.
const PANEL_SIZE: (u32, u32) = (560, 400);

/// The Tableau 10 palette: distinct colours that survive printing in grey.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A tick label on a linear axis: plain numbers in the middle range, powers of ten outside.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A tick label on a log axis, whose coordinate is `log10(value)`: `1e-8`, `0.01`, `100`,
/// or a rounded value between decades.
fn log_tick_label(e: f64) -> String {
    if (e - e.round()).abs() < 1e-9 {
        let k = e.round() as i32;
        match k {
            -2..=4 => tick_label(10f64.powi(k)),
            _ => format!("1e{k}"),
        }
    } else {
        // Two significant digits: 10^3.2 = 1584.9 is labelled 1600.
        let v = 10f64.powf(e);
        let magnitude = v.log10().floor() as i32;
        let rounded = (v / 10f64.powi(magnitude - 1)).round() * 10f64.powi(magnitude - 1);
        if (1e-3..1e5).contains(&v) {
            let digits = (1 - magnitude).max(0) as usize;
            format!("{rounded:.digits$}")
        } else {
            format!("{v:.1e}")
        }
    }
}

impl Figure {
    /// A figure of a single panel.
    pub fn single(file: impl Into<String>, caption: impl Into<String>, panel: Panel) -> Self {
        Figure {
            file: file.into(),
            caption: caption.into(),
            columns: 1,
            panels: vec![panel],
        }
    }

    /// A figure of several panels, `columns` per row.
    pub fn grid(
        file: impl Into<String>,
        caption: impl Into<String>,
        columns: usize,
        panels: Vec<Panel>,
    ) -> Self {
        Figure {
            file: file.into(),
            caption: caption.into(),
            columns: columns.max(1),
            panels,
        }
    }

    /// The SVG file name.
    pub fn file_name(&self) -> String {
        format!("{}.svg", self.file)
    }

    /// Draws the figure into `dir/<file>.svg` and returns the path.
    pub fn write_svg(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let svg = self.to_svg().map_err(std::io::Error::other)?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(self.file_name());
        std::fs::write(&path, svg)?;
        Ok(path)
    }

    /// The figure as an SVG document.
    pub fn to_svg(&self) -> Result<String, String> {
        let columns = self.columns.min(self.panels.len()).max(1);
        let rows = self.panels.len().div_ceil(columns).max(1);
        let size = (PANEL_SIZE.0 * columns as u32, PANEL_SIZE.1 * rows as u32);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let areas = root.split_evenly((rows, columns));
            for (panel, area) in self.panels.iter().zip(areas.iter()) {
                draw_panel(area, panel).map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws one panel. Both axes are linear in the plotted coordinates; a log axis plots
/// log₁₀ of the values and labels its ticks with the values themselves.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> DrawResult {
    let x = panel.range(panel.x_scale, |p| p.0);
    let y = panel.range(panel.y_scale, |p| p.1);
    let y = y.start..y.end + panel.headroom * (y.end - y.start);
    let (x_area, y_area) = if panel.axes { (42, 62) } else { (0, 0) };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let label_of = |scale: Scale| -> fn(&f64) -> String {
        match scale {
            Scale::Linear => |v| tick_label(*v),
            Scale::Log => |v| log_tick_label(*v),
        }
    };
    let (x_fmt, y_fmt) = (label_of(panel.x_scale), label_of(panel.y_scale));
    if panel.axes {
        chart
            .configure_mesh()
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()?;
    }
    let note_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for (nx, ny, text) in &panel.notes {
        if let (Some(px), Some(py)) = (to_axis(*nx, panel.x_scale), to_axis(*ny, panel.y_scale)) {
            chart.draw_series(std::iter::once(Text::new(
                text.clone(),
                (px, py),
                note_style.clone(),
            )))?;
        }
    }
    for series in &panel.series {
        let color = PALETTE[series.color % PALETTE.len()];
        let points = panel.plotted(series);
        let stroke = color.stroke_width(2);
        let anno = match series.style {
            Style::Line => chart.draw_series(LineSeries::new(points, stroke))?,
            Style::Dashed => chart.draw_series(DashedLineSeries::new(points, 8, 5, stroke))?,
            Style::Points => chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?,
            Style::LinePoints => {
                chart.draw_series(LineSeries::new(points.clone(), stroke))?;
                chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )?
            }
        };
        if series.label.is_empty() {
            continue;
        }
        let style = series.style;
        anno.label(series.label.as_str())
            .legend(move |(lx, ly)| match style {
                Style::Points => Circle::new((lx + 10, ly), 3, color.filled()).into_dyn(),
                Style::Dashed => plotters::element::DashedPathElement::new(
                    vec![(lx, ly), (lx + 20, ly)],
                    6,
                    3,
                    stroke,
                )
                .into_dyn(),
                _ => PathElement::new(vec![(lx, ly), (lx + 20, ly)], stroke).into_dyn(),
            });
    }
    let legend = match panel.legend {
        Legend::Auto => panel.emptiest_corner(&x, &y),
        other => other,
    };
    let position = match legend {
        Legend::UpperRight | Legend::Auto => SeriesLabelPosition::UpperRight,
        Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
        Legend::LowerRight => SeriesLabelPosition::LowerRight,
        Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
        Legend::Hidden => return Ok(()),
    };
    if panel.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(position)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Figure {
        let decay: Vec<(f64, f64)> = (1..=50)
            .map(|i| (i as f64, 10f64.powf(-0.3 * i as f64)))
            .collect();
        let flat: Vec<(f64, f64)> = (1..=50)
            .map(|i| (i as f64, 0.5 + 0.01 * i as f64))
            .collect();
        Figure::grid(
            "sample",
            "a sample figure",
            2,
            vec![
                Panel::new("gradient norm per layer", "layer", "‖∂L/∂θ‖")
                    .log_y()
                    .with(Series::line("plain", decay, 0))
                    .with(Series::line("residual", flat.clone(), 1).styled(Style::Dashed)),
                Panel::new("linear axes", "step", "loss")
                    .legend(Legend::LowerLeft)
                    .with(Series::line("points", flat, 2).styled(Style::LinePoints)),
            ],
        )
    }

    #[test]
    fn svg_holds_titles_axis_labels_and_legends_as_text() {
        let svg = sample().to_svg().unwrap();
        for text in [
            "gradient norm per layer",
            "layer",
            "plain",
            "residual",
            "loss",
            "points",
        ] {
            assert!(
                svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<")),
                "`{text}` missing from the SVG"
            );
        }
        assert!(svg.contains("<text"));
        // The log axis is labelled in powers of ten.
        assert!(svg.contains("1e-"));
        if let Ok(dir) = std::env::var("WENGERT_PLOT_SAMPLE_DIR") {
            sample().write_svg(Path::new(&dir)).unwrap();
        }
    }

    #[test]
    fn log_ranges_snap_to_decades_and_skip_non_positive_values() {
        let p = Panel::new("", "", "").log_y().with(Series::line(
            "",
            vec![(0.0, 0.0), (1.0, 3e-5), (2.0, 2e2)],
            0,
        ));
        let r = p.range(Scale::Log, |p| p.1);
        assert_eq!((r.start, r.end), (-5.0, 3.0));
        assert_eq!(log_tick_label(-5.0), "1e-5");
        assert_eq!(log_tick_label(2.0), "100");
        assert_eq!(log_tick_label(-2.0), "0.01");
        assert_eq!(log_tick_label(3.2), "1600");
        assert_eq!(log_tick_label(-0.5), "0.32");
        // The point at y = 0 cannot be drawn on the log axis, so x spans 1..2 (padded).
        let lin = p.range(Scale::Linear, |p| p.0);
        assert!(lin.start > 0.5 && lin.start < 1.0 && lin.end > 2.0);
    }
}

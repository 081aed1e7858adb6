//! Figures as data, written as SVG with `plotters`.
//!
//! A chapter describes its figure — panels, axes, series, and for diagrams boxes and arrows
//! — as plain values; [`Figure::write_svg`] draws it. Legends sit in a column to the right
//! of each panel's axes, so they never cover data. Text (titles, tick labels, legends) is
//! left to the SVG viewer's fonts, so no font file is needed when the figure is made.

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
    /// Evenly spaced powers of two, labelled 1, 2, 4, 8, …; values ≤ 0 are left out.
    Log2,
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
    /// Small markers only (scatter plots of many points).
    Dots,
    /// A solid line with a marker at every point.
    LinePoints,
    /// A dashed line with a marker at every point.
    DashedPoints,
}

/// Whether a panel has a legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legend {
    /// In a column to the right of the axes (the default; it never covers data).
    Right,
    /// No legend (e.g. when the panel beside it already explains the colours).
    Hidden,
}

/// One named line or set of points.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry (empty: not in the legend).
    pub label: String,
    /// The points `(x, y)`, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub style: Style,
    /// An index into the palette; series with the same colour belong together.
    pub color: usize,
    /// A vertical error bar `(low, high)` per point, if any.
    pub errors: Option<Vec<(f64, f64)>>,
}

impl Series {
    /// A solid line in palette colour `color`.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Series {
            label: label.into(),
            points,
            style: Style::Line,
            color,
            errors: None,
        }
    }

    /// The same series drawn in another style.
    pub fn styled(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// The same series with a vertical bar from `low` to `high` at each point.
    pub fn with_errors(mut self, errors: Vec<(f64, f64)>) -> Self {
        self.errors = Some(errors);
        self
    }
}

/// A shape of a diagram, in data coordinates.
#[derive(Clone, Debug)]
pub enum Shape {
    /// A box with a label centred in it, filled with a light palette colour.
    Box {
        /// Lower-left corner.
        from: (f64, f64),
        /// Upper-right corner.
        to: (f64, f64),
        /// The text inside.
        label: String,
        /// Palette index of the fill.
        color: usize,
    },
    /// A polyline with an arrowhead at its last point.
    Arrow {
        /// The points, first to last.
        points: Vec<(f64, f64)>,
        /// Palette index.
        color: usize,
        /// Dashed rather than solid.
        dashed: bool,
    },
    /// A circle of `radius` pixels with a label inside (a sum node: "+").
    Node {
        /// Centre.
        at: (f64, f64),
        /// Radius in pixels.
        radius: i32,
        /// The text inside.
        label: String,
    },
}

/// Values on a regular grid, drawn as coloured cells under the data: the probability of
/// class 1 of a two-class classifier, from light blue (0) through white (½) to light
/// orange (1).
#[derive(Clone, Debug)]
pub struct Field {
    /// The horizontal extent.
    pub x: (f64, f64),
    /// The vertical extent.
    pub y: (f64, f64),
    /// Cells per row.
    pub cols: usize,
    /// Rows of cells.
    pub rows: usize,
    /// `rows · cols` values in `[0, 1]`, row by row from the bottom.
    pub values: Vec<f64>,
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
    /// Boxes and arrows (diagrams).
    pub shapes: Vec<Shape>,
    /// A coloured grid under the data (decision boundaries).
    pub field: Option<Field>,
    /// Whether to draw axes, ticks and grid (off for diagrams).
    pub axes: bool,
    /// A fixed vertical range in data units, instead of the data's.
    pub y_limits: Option<(f64, f64)>,
    /// A fixed horizontal range in data units, instead of the data's.
    pub x_limits: Option<(f64, f64)>,
    /// Font size of the notes.
    pub note_size: u32,
}

impl Panel {
    /// A panel with linear axes, a legend on the right and no series yet.
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
            legend: Legend::Right,
            notes: Vec::new(),
            shapes: Vec::new(),
            field: None,
            axes: true,
            y_limits: None,
            x_limits: None,
            note_size: 13,
        }
    }

    /// A panel for a diagram: no axes, no legend, larger text.
    pub fn diagram(title: impl Into<String>) -> Self {
        Panel {
            axes: false,
            legend: Legend::Hidden,
            note_size: 15,
            ..Panel::new(title, "", "")
        }
    }

    /// Adds a text note centred at `(x, y)`.
    pub fn note(mut self, x: f64, y: f64, text: impl Into<String>) -> Self {
        self.notes.push((x, y, text.into()));
        self
    }

    /// Adds a shape.
    pub fn shape(mut self, shape: Shape) -> Self {
        self.shapes.push(shape);
        self
    }

    /// Draws a coloured field under the data.
    pub fn with_field(mut self, field: Field) -> Self {
        self.field = Some(field);
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

    /// Uses a base-2 logarithmic horizontal axis (depths 2, 4, 8, …).
    pub fn log2_x(mut self) -> Self {
        self.x_scale = Scale::Log2;
        self
    }

    /// Fixes the vertical range (data units).
    pub fn y_limits(mut self, lo: f64, hi: f64) -> Self {
        self.y_limits = Some((lo, hi));
        self
    }

    /// Fixes the horizontal range (data units).
    pub fn x_limits(mut self, lo: f64, hi: f64) -> Self {
        self.x_limits = Some((lo, hi));
        self
    }

    /// Moves or hides the legend.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The points of a series as drawn: logarithmic coordinates become the logarithm of
    /// the value, and points a scale cannot show (non-finite, or ≤ 0 on a log axis) are
    /// left out.
    fn plotted(&self, series: &Series) -> Vec<(f64, f64)> {
        series
            .points
            .iter()
            .filter_map(|&(x, y)| Some((to_axis(x, self.x_scale)?, to_axis(y, self.y_scale)?)))
            .collect()
    }

    /// Every point the panel draws, in axis coordinates (data, error bars, notes, shapes,
    /// the field's corners).
    fn extent_points(&self) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for s in &self.series {
            pts.extend(self.plotted(s));
        }
        let mut raw: Vec<(f64, f64)> = self.notes.iter().map(|(x, y, _)| (*x, *y)).collect();
        for shape in &self.shapes {
            match shape {
                Shape::Box { from, to, .. } => raw.extend([*from, *to]),
                Shape::Arrow { points, .. } => raw.extend(points.iter().copied()),
                Shape::Node { at, .. } => raw.push(*at),
            }
        }
        if let Some(f) = &self.field {
            raw.extend([(f.x.0, f.y.0), (f.x.1, f.y.1)]);
        }
        for s in &self.series {
            if let Some(errors) = &s.errors {
                for (&(x, _), &(lo, hi)) in s.points.iter().zip(errors) {
                    raw.extend([(x, lo), (x, hi)]);
                }
            }
        }
        pts.extend(
            raw.into_iter()
                .filter_map(|(x, y)| Some((to_axis(x, self.x_scale)?, to_axis(y, self.y_scale)?))),
        );
        pts
    }

    /// The padded range of the plotted coordinates along one axis (`coord` picks it).
    fn range(
        &self,
        limits: Option<(f64, f64)>,
        scale: Scale,
        coord: fn(&(f64, f64)) -> f64,
    ) -> Range<f64> {
        if let Some((lo, hi)) = limits
            && let (Some(lo), Some(hi)) = (to_axis(lo, scale), to_axis(hi, scale))
        {
            return lo..hi;
        }
        let (lo, hi) = self
            .extent_points()
            .iter()
            .map(coord)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            // Nothing to show: a unit range keeps the axes drawable.
            return -1.0..1.0;
        }
        // A small margin, and no more: the axis spans the data, not whole decades.
        let pad = if hi > lo { 0.04 * (hi - lo) } else { 0.5 };
        (lo - pad)..(hi + pad)
    }

    fn labelled(&self) -> Vec<&Series> {
        self.series.iter().filter(|s| !s.label.is_empty()).collect()
    }

    /// The width in pixels of the legend column (0 without one).
    fn legend_width(&self) -> u32 {
        if self.legend == Legend::Hidden {
            return 0;
        }
        let longest = self
            .labelled()
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0);
        if longest == 0 {
            0
        } else {
            (longest as u32 * 7 + 48).min(300)
        }
    }
}

/// A value's coordinate on an axis of `scale`, if the axis can show it.
fn to_axis(v: f64, scale: Scale) -> Option<f64> {
    match scale {
        Scale::Linear => v.is_finite().then_some(v),
        Scale::Log => (v.is_finite() && v > 0.0).then(|| v.log10()),
        Scale::Log2 => (v.is_finite() && v > 0.0).then(|| v.log2()),
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
    /// Whether all panels share one vertical range (for panels meant to be compared).
    pub shared_y: bool,
}

/// A panel's place in a figure: left, top, width, height in pixels.
type PixelRect = (i32, i32, u32, u32);

/// Width and height of one panel's axes area, in pixels (the legend column comes on top).
const PANEL_SIZE: (u32, u32) = (520, 400);

/// The Tableau 10 palette: distinct colours that survive printing in grey.
pub const PALETTE: [RGBColor; 10] = [
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

/// A tick label on a base-2 axis, whose coordinate is `log2(value)`: powers of two only.
fn log2_tick_label(e: f64) -> String {
    if (e - e.round()).abs() < 1e-9 {
        tick_label(2f64.powi(e.round() as i32))
    } else {
        String::new()
    }
}

impl Figure {
    /// A figure of a single panel.
    pub fn single(file: impl Into<String>, caption: impl Into<String>, panel: Panel) -> Self {
        Self::grid(file, caption, 1, vec![panel])
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
            shared_y: false,
        }
    }

    /// All panels on one vertical range, so that heights compare across panels.
    pub fn share_y(mut self) -> Self {
        self.shared_y = true;
        self
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

    /// The vertical range shared by all panels, if the figure shares one.
    fn shared_range(&self) -> Option<Range<f64>> {
        if !self.shared_y {
            return None;
        }
        let ranges: Vec<Range<f64>> = self
            .panels
            .iter()
            .map(|p| p.range(p.y_limits, p.y_scale, |q| q.1))
            .collect();
        let lo = ranges.iter().map(|r| r.start).fold(f64::INFINITY, f64::min);
        let hi = ranges
            .iter()
            .map(|r| r.end)
            .fold(f64::NEG_INFINITY, f64::max);
        (lo < hi).then_some(lo..hi)
    }

    /// The pixel rectangle `(x, y, width, height)` of each panel: rows of equal height,
    /// each panel as wide as its axes plus its own legend column.
    fn layout(&self) -> (Vec<PixelRect>, (u32, u32)) {
        let columns = self.columns.min(self.panels.len()).max(1);
        let mut rects = Vec::new();
        let mut width = 0;
        for (r, row) in self.panels.chunks(columns).enumerate() {
            let mut x = 0u32;
            for panel in row {
                let w = PANEL_SIZE.0 + panel.legend_width();
                rects.push((x as i32, (r as u32 * PANEL_SIZE.1) as i32, w, PANEL_SIZE.1));
                x += w;
            }
            width = width.max(x);
        }
        let rows = self.panels.len().div_ceil(columns).max(1) as u32;
        (rects, (width.max(PANEL_SIZE.0), rows * PANEL_SIZE.1))
    }

    /// The figure as an SVG document.
    pub fn to_svg(&self) -> Result<String, String> {
        let (rects, size) = self.layout();
        let shared = self.shared_range();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            for (panel, &(x, y, w, h)) in self.panels.iter().zip(&rects) {
                let area = root.clone().shrink((x, y), (w, h));
                draw_panel(&area, panel, panel.legend_width(), shared.clone())
                    .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A palette colour mixed with white: `strength` 0 is white, 1 the colour itself.
fn light(color: RGBColor, strength: f64) -> RGBColor {
    let mix = |c: u8| (255.0 - strength * (255.0 - c as f64)).round() as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// The field's colour at probability `p`: blue below ½, orange above, pale near ½.
fn field_color(p: f64) -> RGBColor {
    let p = if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let strength = 0.12 + 0.4 * (2.0 * p - 1.0).abs();
    light(if p < 0.5 { PALETTE[0] } else { PALETTE[1] }, strength)
}

/// Draws one panel: its axes on the left part of `area`, its legend in a column of
/// `legend_width` pixels on the right. Both axes are linear in the plotted coordinates; a
/// log axis plots the logarithm of the values and labels its ticks with the values.
fn draw_panel(
    area: &Area<'_>,
    panel: &Panel,
    legend_width: u32,
    shared: Option<Range<f64>>,
) -> DrawResult {
    let width = area.dim_in_pixel().0;
    let (plot_area, legend_area) = area.split_horizontally(width.saturating_sub(legend_width));
    let x = panel.range(panel.x_limits, panel.x_scale, |p| p.0);
    let y = match (&shared, panel.y_limits) {
        (Some(r), None) => r.clone(),
        _ => panel.range(panel.y_limits, panel.y_scale, |p| p.1),
    };
    let (x_area, y_area) = if panel.axes { (42, 62) } else { (0, 0) };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let label_of = |scale: Scale| -> fn(&f64) -> String {
        match scale {
            Scale::Linear => |v| tick_label(*v),
            Scale::Log => |v| log_tick_label(*v),
            Scale::Log2 => |v| log2_tick_label(*v),
        }
    };
    let (x_fmt, y_fmt) = (label_of(panel.x_scale), label_of(panel.y_scale));
    if let Some(f) = &panel.field {
        let (dx, dy) = (
            (f.x.1 - f.x.0) / f.cols.max(1) as f64,
            (f.y.1 - f.y.0) / f.rows.max(1) as f64,
        );
        chart.draw_series((0..f.rows).flat_map(|r| {
            (0..f.cols).map(move |c| {
                let (x0, y0) = (f.x.0 + c as f64 * dx, f.y.0 + r as f64 * dy);
                let p = f.values.get(r * f.cols + c).copied().unwrap_or(0.5);
                Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], field_color(p).filled())
            })
        }))?;
    }
    if panel.axes {
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08));
        if panel.x_scale == Scale::Log2 {
            mesh.x_labels(((x.end - x.start).ceil() as usize + 1).max(2));
        }
        mesh.draw()?;
    }
    for shape in &panel.shapes {
        draw_shape(&mut chart, panel, shape)?;
    }
    for series in &panel.series {
        let color = PALETTE[series.color % PALETTE.len()];
        let points = panel.plotted(series);
        let stroke = color.stroke_width(2);
        let marker = |p: (f64, f64), r: i32| Circle::new(p, r, color.filled());
        match series.style {
            Style::Line => {
                chart.draw_series(LineSeries::new(points, stroke))?;
            }
            Style::Dashed => {
                chart.draw_series(DashedLineSeries::new(points, 8, 5, stroke))?;
            }
            Style::Points => {
                chart.draw_series(points.into_iter().map(|p| marker(p, 3)))?;
            }
            Style::Dots => {
                chart.draw_series(points.into_iter().map(|p| marker(p, 2)))?;
            }
            Style::LinePoints => {
                chart.draw_series(LineSeries::new(points.clone(), stroke))?;
                chart.draw_series(points.into_iter().map(|p| marker(p, 3)))?;
            }
            Style::DashedPoints => {
                chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, stroke))?;
                chart.draw_series(points.into_iter().map(|p| marker(p, 3)))?;
            }
        }
        if let Some(errors) = &series.errors {
            let bars = series
                .points
                .iter()
                .zip(errors)
                .filter_map(|(&(px, _), &(lo, hi))| {
                    let px = to_axis(px, panel.x_scale)?;
                    let lo = to_axis(lo, panel.y_scale)?;
                    let hi = to_axis(hi, panel.y_scale)?;
                    Some(PathElement::new(
                        vec![(px, lo), (px, hi)],
                        color.stroke_width(1),
                    ))
                });
            chart.draw_series(bars)?;
        }
    }
    let note_style = TextStyle::from(("sans-serif", panel.note_size).into_font())
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (nx, ny, text) in &panel.notes {
        if let (Some(px), Some(py)) = (to_axis(*nx, panel.x_scale), to_axis(*ny, panel.y_scale)) {
            chart.draw_series(std::iter::once(Text::new(
                text.clone(),
                (px, py),
                note_style.clone(),
            )))?;
        }
    }
    if legend_width > 0 && panel.legend == Legend::Right {
        draw_legend(&legend_area, panel)?;
    }
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_shape(chart: &mut Chart<'_, '_>, panel: &Panel, shape: &Shape) -> DrawResult {
    let at = |p: (f64, f64)| {
        (
            to_axis(p.0, panel.x_scale).unwrap_or(0.0),
            to_axis(p.1, panel.y_scale).unwrap_or(0.0),
        )
    };
    let text = TextStyle::from(("sans-serif", panel.note_size).into_font())
        .pos(Pos::new(HPos::Center, VPos::Center));
    match shape {
        Shape::Box {
            from,
            to,
            label,
            color,
        } => {
            let (a, b) = (at(*from), at(*to));
            let c = PALETTE[color % PALETTE.len()];
            chart.draw_series(std::iter::once(Rectangle::new(
                [a, b],
                light(c, 0.3).filled(),
            )))?;
            chart.draw_series(std::iter::once(Rectangle::new([a, b], c.stroke_width(2))))?;
            let centre = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
            chart.draw_series(std::iter::once(Text::new(label.clone(), centre, text)))?;
        }
        Shape::Arrow {
            points,
            color,
            dashed,
        } => {
            let c = PALETTE[color % PALETTE.len()];
            let pts: Vec<(f64, f64)> = points.iter().map(|&p| at(p)).collect();
            if *dashed {
                chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 4, c.stroke_width(2)))?;
            } else {
                chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
            }
            if let [.., tail, tip] = pts[..] {
                // The arrowhead is drawn in pixels so that it keeps its shape on any axes.
                let (pt, pp) = (chart.backend_coord(&tail), chart.backend_coord(&tip));
                let (dx, dy) = ((pp.0 - pt.0) as f64, (pp.1 - pt.1) as f64);
                let len = (dx * dx + dy * dy).sqrt().max(1e-9);
                let (ux, uy) = (dx / len, dy / len);
                let corner = |side: f64| {
                    (
                        (pp.0 as f64 - 10.0 * ux + side * 5.0 * uy).round() as i32,
                        (pp.1 as f64 - 10.0 * uy - side * 5.0 * ux).round() as i32,
                    )
                };
                let head = vec![pp, corner(1.0), corner(-1.0)];
                chart
                    .plotting_area()
                    .strip_coord_spec()
                    .draw(&Polygon::new(
                        head.into_iter()
                            .map(|(x, y)| {
                                let (ox, oy) = chart.plotting_area().get_base_pixel();
                                (x - ox, y - oy)
                            })
                            .collect::<Vec<_>>(),
                        c.filled(),
                    ))?;
            }
        }
        Shape::Node {
            at: centre,
            radius,
            label,
        } => {
            let p = at(*centre);
            chart.draw_series(std::iter::once(Circle::new(p, *radius, WHITE.filled())))?;
            chart.draw_series(std::iter::once(Circle::new(
                p,
                *radius,
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(label.clone(), p, text)))?;
        }
    }
    Ok(())
}

/// The legend: one row per labelled series, a sample of its line or marker, then its label.
fn draw_legend(area: &Area<'_>, panel: &Panel) -> DrawResult {
    let font =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, series) in panel.labelled().iter().enumerate() {
        let y = 50 + 20 * k as i32;
        let color = PALETTE[series.color % PALETTE.len()];
        let stroke = color.stroke_width(2);
        match series.style {
            Style::Points | Style::Dots => {
                area.draw(&Circle::new((16, y), 3, color.filled()))?;
            }
            Style::Dashed | Style::DashedPoints => {
                area.draw(&PathElement::new(vec![(4, y), (11, y)], stroke))?;
                area.draw(&PathElement::new(vec![(17, y), (24, y)], stroke))?;
            }
            Style::Line | Style::LinePoints => {
                area.draw(&PathElement::new(vec![(4, y), (26, y)], stroke))?;
            }
        }
        if matches!(series.style, Style::LinePoints | Style::DashedPoints) {
            area.draw(&Circle::new((15, y), 3, color.filled()))?;
        }
        area.draw(&Text::new(series.label.clone(), (34, y), font.clone()))?;
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
                    .with(
                        Series::line("points", flat, 2)
                            .styled(Style::LinePoints)
                            .with_errors(vec![(0.4, 0.6); 50]),
                    )
                    .shape(Shape::Arrow {
                        points: vec![(1.0, 0.5), (10.0, 0.9)],
                        color: 3,
                        dashed: false,
                    })
                    .shape(Shape::Box {
                        from: (20.0, 0.6),
                        to: (30.0, 0.7),
                        label: "F".into(),
                        color: 4,
                    }),
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
            "F",
        ] {
            assert!(
                svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<")),
                "`{text}` missing from the SVG"
            );
        }
        assert!(svg.contains("<text") && svg.contains("<polygon"));
        // The log axis is labelled in powers of ten.
        assert!(svg.contains("1e-"));
        if let Ok(dir) = std::env::var("WENGERT_PLOT_SAMPLE_DIR") {
            sample().write_svg(Path::new(&dir)).unwrap();
        }
    }

    #[test]
    fn ranges_hug_the_data_and_skip_values_a_scale_cannot_show() {
        let p = Panel::new("", "", "").log_y().with(Series::line(
            "",
            vec![(0.0, 0.0), (1.0, 3e-5), (2.0, 2e2)],
            0,
        ));
        let r = p.range(None, Scale::Log, |p| p.1);
        // log10(3e-5) = −4.52, log10(200) = 2.30: a 4 % margin, no snapping to decades.
        assert!(r.start > -4.9 && r.start < -4.52, "{r:?}");
        assert!(r.end > 2.30 && r.end < 2.6, "{r:?}");
        assert_eq!(log_tick_label(-5.0), "1e-5");
        assert_eq!(log_tick_label(2.0), "100");
        assert_eq!(log_tick_label(-2.0), "0.01");
        assert_eq!(log_tick_label(3.2), "1600");
        assert_eq!(log_tick_label(-0.5), "0.32");
        assert_eq!(log2_tick_label(6.0), "64");
        assert_eq!(log2_tick_label(2.5), "");
        // The point at y = 0 cannot be drawn on the log axis, so x spans 1..2 (padded).
        let lin = p.range(None, Scale::Linear, |p| p.0);
        assert!(lin.start > 0.5 && lin.start < 1.0 && lin.end > 2.0);
        // Shared ranges cover every panel.
        let shared = Figure::grid(
            "",
            "",
            2,
            vec![p.clone(), p.with(Series::line("", vec![(1.0, 1e-9)], 0))],
        )
        .share_y()
        .shared_range()
        .unwrap();
        assert!(shared.start < -9.0);
    }
}

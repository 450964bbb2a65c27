//! PNG pictures people would rather look at than arrays: spectrograms (with time and
//! frequency axes, a title and a colour bar), waveforms and line plots (training curves).
//!
//! Self-contained: an RGB canvas, a 5×7 bitmap font (upper-case ASCII, digits and
//! punctuation; lower case is drawn in capitals) and matplotlib's *magma* and *viridis*
//! colour maps sampled at nine stops. Files are written atomically.

use crate::error::{IoError, Result};
use ndarray::ArrayView2;
use std::path::Path;

/// Colour maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// matplotlib's magma (librosa's default for non-negative data).
    #[default]
    Magma,
    /// matplotlib's viridis.
    Viridis,
    /// Grey scale.
    Gray,
}

const MAGMA: [[u8; 3]; 9] = [
    [0, 0, 4],
    [28, 16, 68],
    [79, 18, 123],
    [129, 37, 129],
    [181, 54, 122],
    [229, 80, 100],
    [251, 135, 97],
    [254, 194, 135],
    [252, 253, 191],
];
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

impl Colormap {
    /// Colour of `v` in [0, 1].
    pub fn color(self, v: f32) -> [u8; 3] {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let stops = match self {
            Colormap::Magma => &MAGMA,
            Colormap::Viridis => &VIRIDIS,
            Colormap::Gray => {
                let g = (v * 255.0).round() as u8;
                return [g, g, g];
            }
        };
        let x = v * 8.0;
        let i = (x.floor() as usize).min(7);
        let f = x - i as f32;
        let (a, b) = (stops[i], stops[i + 1]);
        [0, 1, 2].map(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8)
    }
}

fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '\'' => [0x04, 0x04, 0, 0, 0, 0, 0],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        ' ' => [0; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
    }
}

/// An RGB canvas.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// width in pixels
    pub width: usize,
    /// height in pixels
    pub height: usize,
    px: Vec<u8>,
}

/// Text scale: each font pixel is drawn as a 2×2 block.
const TS: usize = 2;
/// Width of one character cell in pixels.
pub const CHAR_W: usize = 6 * TS;
/// Height of one character cell in pixels.
pub const CHAR_H: usize = 8 * TS;

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(width: usize, height: usize, bg: [u8; 3]) -> Self {
        let mut px = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            px.extend_from_slice(&bg);
        }
        Self { width, height, px }
    }
    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: isize, y: isize, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    /// Fills a rectangle.
    pub fn fill(&mut self, x: isize, y: isize, w: usize, h: usize, c: [u8; 3]) {
        for yy in 0..h as isize {
            for xx in 0..w as isize {
                self.set(x + xx, y + yy, c);
            }
        }
    }
    /// Draws a line (Bresenham).
    pub fn line(&mut self, x0: isize, y0: isize, x1: isize, y1: isize, c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
    /// Draws text with its top-left corner at (x, y).
    pub fn text(&mut self, x: isize, y: isize, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (r, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.fill(
                            x + (k * CHAR_W + col * TS) as isize,
                            y + (r * TS) as isize,
                            TS,
                            TS,
                            c,
                        );
                    }
                }
            }
        }
    }
    /// Draws text centred on x.
    pub fn text_centered(&mut self, x: isize, y: isize, s: &str, c: [u8; 3]) {
        let w = (s.chars().count() * CHAR_W) as isize;
        self.text(x - w / 2, y, s, c);
    }
    /// Draws text right-aligned at x.
    pub fn text_right(&mut self, x: isize, y: isize, s: &str, c: [u8; 3]) {
        let w = (s.chars().count() * CHAR_W) as isize;
        self.text(x - w, y, s, c);
    }
    /// Writes the canvas as an 8-bit RGB PNG, atomically.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let werr = |e: &dyn std::fmt::Display| IoError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        mirkit_core::npy::write_atomic(path, |w| {
            let mut enc = png::Encoder::new(w, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().map_err(std::io::Error::other)?;
            wr.write_image_data(&self.px)
                .map_err(std::io::Error::other)?;
            wr.finish().map_err(std::io::Error::other)
        })
        .map_err(|e| werr(&e))
    }
}

/// "Nice" tick positions (1, 2, 5 × 10^k steps) covering [lo, hi].
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    // not `hi <= lo`: a NaN bound must take this branch too
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(hi > lo) || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut v = Vec::new();
    while t <= hi + step * 1e-9 {
        v.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    v
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 && (v / 1000.0).fract().abs() < 1e-9 {
        format!("{}K", (v / 1000.0) as i64)
    } else if v.fract().abs() < 1e-9 {
        format!("{}", v as i64)
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Options of [`spectrogram_png`].
#[derive(Debug, Clone)]
pub struct SpecPlot {
    /// Title above the image.
    pub title: String,
    /// Seconds per frame (hop / sr), for the time axis.
    pub seconds_per_frame: f64,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Value (e.g. Hz) at the centre of each row, for the vertical ticks; `None` labels
    /// rows by index.
    pub row_values: Option<Vec<f64>>,
    /// Colour map.
    pub colormap: Colormap,
    /// Value range mapped to the colour map; `None`: data min..max.
    pub range: Option<(f32, f32)>,
    /// Unit shown under the colour bar (e.g. "dB").
    pub unit: String,
    /// A text label per row (bottom row first), e.g. tag names of a taggram; drawn instead
    /// of numeric ticks, every row, when given.
    pub row_labels: Option<Vec<String>>,
    /// Plot-area size in pixels (the data are resampled to it).
    pub size: (usize, usize),
    /// A time span `(start, end)` in seconds to mark with a frame over the image (a
    /// thumbnail's segment).
    pub span: Option<(f64, f64)>,
}

impl Default for SpecPlot {
    fn default() -> Self {
        Self {
            title: String::new(),
            seconds_per_frame: 1.0,
            y_label: "BIN".into(),
            row_values: None,
            colormap: Colormap::Magma,
            range: None,
            unit: String::new(),
            row_labels: None,
            size: (900, 360),
            span: None,
        }
    }
}

const BG: [u8; 3] = [255, 255, 255];
const FG: [u8; 3] = [20, 20, 20];

/// Draws a `(rows, frames)` array as an image, row 0 at the bottom, with a time axis in
/// seconds, labelled vertical ticks, a title and a colour bar.
pub fn spectrogram_png(
    path: impl AsRef<Path>,
    data: ArrayView2<f32>,
    opts: &SpecPlot,
) -> Result<()> {
    let (rows, frames) = data.dim();
    if rows == 0 || frames == 0 {
        return Err(crate::error::invalid(
            "data",
            format!("{rows}x{frames}"),
            "nothing to draw",
        ));
    }
    let (pw, ph) = opts.size;
    let label_w = opts
        .row_labels
        .as_ref()
        .map(|l| l.iter().map(|s| s.chars().count()).max().unwrap_or(0) * CHAR_W + 20)
        .unwrap_or(0);
    let (left, top, right, bottom) = (110usize.max(label_w + 10), 50usize, 130usize, 70usize);
    let mut c = Canvas::new(left + pw + right, top + ph + bottom, BG);
    let (lo, hi) = opts.range.unwrap_or_else(|| {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &v in data.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        (lo, hi)
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    for py in 0..ph {
        let r = ((ph - 1 - py) * rows / ph).min(rows - 1);
        for px in 0..pw {
            let t = (px * frames / pw).min(frames - 1);
            let col = opts.colormap.color((data[[r, t]] - lo) / span);
            c.set((left + px) as isize, (top + py) as isize, col);
        }
    }
    // frame
    let (l, t, r, b) = (
        left as isize - 1,
        top as isize - 1,
        (left + pw) as isize,
        (top + ph) as isize,
    );
    c.line(l, t, r, t, FG);
    c.line(l, b, r, b, FG);
    c.line(l, t, l, b, FG);
    c.line(r, t, r, b, FG);
    // time axis
    let dur = frames as f64 * opts.seconds_per_frame;
    for tick in nice_ticks(0.0, dur, 10) {
        let x = left as isize + (tick / dur * pw as f64) as isize;
        c.line(x, b, x, b + 6, FG);
        c.text_centered(x, b + 10, &fmt_tick(tick), FG);
    }
    c.text_centered((left + pw / 2) as isize, b + 36, "TIME (S)", FG);
    // the marked span: a red frame three pixels wide over the plot area
    if let Some((s0, s1)) = opts
        .span
        .filter(|(a, z)| a.is_finite() && z.is_finite() && z > a)
    {
        const MARK: [u8; 3] = [230, 30, 30];
        let x = |t: f64| left as isize + (t.clamp(0.0, dur) / dur * pw as f64) as isize;
        let (x0, x1) = (x(s0), x(s1).max(x(s0) + 3));
        for d in 0..3 {
            c.line(x0 + d, t + d, x0 + d, b - d, MARK);
            c.line(x1 - d, t + d, x1 - d, b - d, MARK);
            c.line(x0, t + d, x1, t + d, MARK);
            c.line(x0, b - d, x1, b - d, MARK);
        }
    }
    // vertical axis
    if let Some(labels) = opts.row_labels.as_ref().filter(|l| l.len() == rows) {
        let step = (CHAR_H as f64 / (ph as f64 / rows as f64)).ceil().max(1.0) as usize;
        for (r, lab) in labels.iter().enumerate().step_by(step) {
            let y = b - ((r as f64 + 0.5) / rows as f64 * ph as f64) as isize;
            c.line(l - 4, y, l, y, FG);
            c.text_right(l - 8, y - 7, lab, FG);
        }
    } else {
        match &opts.row_values {
            Some(vals) if vals.len() == rows => {
                let (vlo, vhi) = (vals[0], vals[rows - 1]);
                // a warped axis (mel) gets 1-2-5 ticks per decade, a linear one evenly spaced ticks
                let mid = vals[rows / 2];
                let warped = vlo > 0.0 && (mid - vlo) < 0.3 * (vhi - vlo);
                let ticks: Vec<f64> = if warped {
                    (-1..6)
                        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
                        .filter(|t| *t >= vlo && *t <= vhi)
                        .collect()
                } else {
                    nice_ticks(vlo, vhi, 6)
                };
                let mut last_y = isize::MAX;
                for tick in ticks {
                    // row whose value is closest to the tick
                    let ri = vals
                        .iter()
                        .enumerate()
                        .min_by(|a, b| (a.1 - tick).abs().total_cmp(&(b.1 - tick).abs()))
                        .map(|x| x.0)
                        .unwrap_or(0);
                    let y = b - ((ri as f64 + 0.5) / rows as f64 * ph as f64) as isize;
                    if (last_y - y).abs() < CHAR_H as isize + 2 {
                        continue; // too close to the previous label
                    }
                    last_y = y;
                    c.line(l - 6, y, l, y, FG);
                    c.text_right(l - 10, y - 7, &fmt_tick(tick), FG);
                }
            }
            _ => {
                for tick in nice_ticks(0.0, (rows - 1) as f64, 6) {
                    let y = b - ((tick + 0.5) / rows as f64 * ph as f64) as isize;
                    c.line(l - 6, y, l, y, FG);
                    c.text_right(l - 10, y - 7, &fmt_tick(tick), FG);
                }
            }
        }
    }
    // y label, written vertically letter by letter
    if opts.row_labels.is_none() {
        for (i, ch) in opts.y_label.chars().enumerate() {
            c.text(8, top as isize + (i * CHAR_H) as isize, &ch.to_string(), FG);
        }
    }
    c.text_centered((left + pw / 2) as isize, 14, &opts.title, FG);
    // colour bar
    let cbx = (left + pw + 30) as isize;
    for py in 0..ph {
        let col = opts
            .colormap
            .color(1.0 - py as f32 / (ph - 1).max(1) as f32);
        c.fill(cbx, top as isize + py as isize, 20, 1, col);
    }
    for tick in nice_ticks(lo as f64, hi as f64, 6) {
        let y = b - ((tick - lo as f64) / span as f64 * ph as f64) as isize;
        c.line(cbx + 20, y, cbx + 25, y, FG);
        c.text(cbx + 28, y - 7, &fmt_tick(tick), FG);
    }
    c.text(cbx - 4, b + 10, &opts.unit, FG);
    c.save_png(path)
}

/// Options of [`line_plot_png`].
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// Horizontal value of index 0 and step per index.
    pub x_start_step: (f64, f64),
    /// Plot-area size.
    pub size: (usize, usize),
}

impl Default for LinePlot {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: "X".into(),
            y_label: String::new(),
            x_start_step: (0.0, 1.0),
            size: (900, 300),
        }
    }
}

const SERIES: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// Draws named series as lines (long series as a min/max envelope per pixel column, so a
/// waveform of millions of samples draws correctly), with axes and a legend.
pub fn line_plot_png(
    path: impl AsRef<Path>,
    series: &[(&str, &[f32])],
    opts: &LinePlot,
) -> Result<()> {
    let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    if n == 0 {
        return Err(crate::error::invalid("series", 0, "nothing to draw"));
    }
    let (pw, ph) = opts.size;
    let (left, top, right, bottom) = (110usize, 50usize, 40usize, 70usize);
    let mut c = Canvas::new(left + pw + right, top + ph + bottom, BG);
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for (_, s) in series {
        for &v in s.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    // not `hi <= lo`: NaN bounds must take this branch too
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(hi > lo) {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let yof = |v: f32| (top + ph) as isize - ((v - lo) / (hi - lo) * ph as f32) as isize;
    let (l, t, r, b) = (
        left as isize - 1,
        top as isize - 1,
        (left + pw) as isize,
        (top + ph) as isize,
    );
    for tick in nice_ticks(lo as f64, hi as f64, 6) {
        let y = yof(tick as f32);
        c.line(l, y, r, y, [225, 225, 225]);
        c.line(l - 6, y, l, y, FG);
        c.text_right(l - 10, y - 7, &fmt_tick(tick), FG);
    }
    let (x0, dx) = opts.x_start_step;
    let x_end = x0 + dx * (n.saturating_sub(1)) as f64;
    for tick in nice_ticks(x0, x_end.max(x0 + dx), 10) {
        let x = left as isize + ((tick - x0) / (x_end - x0).max(dx) * pw as f64) as isize;
        c.line(x, b, x, b + 6, FG);
        c.text_centered(x, b + 10, &fmt_tick(tick), FG);
    }
    for (k, (name, s)) in series.iter().enumerate() {
        let col = SERIES[k % SERIES.len()];
        if s.len() > 2 * pw {
            for px in 0..pw {
                let a = px * s.len() / pw;
                let z = ((px + 1) * s.len() / pw).max(a + 1);
                let (mn, mx) = s[a..z]
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |m, &v| {
                        (m.0.min(v), m.1.max(v))
                    });
                c.line(
                    (left + px) as isize,
                    yof(mn),
                    (left + px) as isize,
                    yof(mx),
                    col,
                );
            }
        } else {
            let xof = |i: usize| {
                left as isize + (i as f64 / (n.max(2) - 1) as f64 * (pw - 1) as f64) as isize
            };
            for i in 1..s.len() {
                if s[i - 1].is_finite() && s[i].is_finite() {
                    c.line(xof(i - 1), yof(s[i - 1]), xof(i), yof(s[i]), col);
                }
            }
            if s.len() == 1 {
                c.fill(xof(0) - 2, yof(s[0]) - 2, 5, 5, col);
            }
        }
        c.fill(r - 200, t + 10 + (k * 20) as isize, 16, 4, col);
        c.text(r - 178, t + 4 + (k * 20) as isize, name, FG);
    }
    c.line(l, t, r, t, FG);
    c.line(l, b, r, b, FG);
    c.line(l, t, l, b, FG);
    c.line(r, t, r, b, FG);
    c.text_centered((left + pw / 2) as isize, b + 36, &opts.x_label, FG);
    for (i, ch) in opts.y_label.chars().enumerate() {
        c.text(8, top as isize + (i * CHAR_H) as isize, &ch.to_string(), FG);
    }
    c.text_centered((left + pw / 2) as isize, 14, &opts.title, FG);
    c.save_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(
            nice_ticks(-80.0, 0.0, 4),
            vec![-80.0, -60.0, -40.0, -20.0, 0.0]
        );
    }
    #[test]
    fn writes_a_png() {
        let d = std::env::temp_dir().join(format!("mirkit-plot-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let a = ndarray::Array2::from_shape_fn((64, 200), |(r, t)| ((r * t) as f32).sin());
        let p = d.join("s.png");
        spectrogram_png(
            &p,
            a.view(),
            &SpecPlot {
                title: "Test".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let s: Vec<f32> = (0..100_000).map(|i| (i as f32 * 0.01).sin()).collect();
        line_plot_png(d.join("l.png"), &[("sine", &s)], &LinePlot::default()).unwrap();
        assert!(spectrogram_png(
            d.join("e.png"),
            ndarray::Array2::<f32>::zeros((0, 3)).view(),
            &SpecPlot::default()
        )
        .is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}

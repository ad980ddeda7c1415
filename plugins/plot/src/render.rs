//! Pictures: the field rasterised here (cells as their shapes, so any grid draws where its
//! cells are), text, axes and the colour bar by plotters with the font compiled in, the
//! coastlines drawn over the field; masked cells stay transparent.

use std::{ops::Range, sync::Once};

use cloudify_cf::{grid::wrap_degrees, longitude};
use cloudify_sdk::Error;
use plotters::{
    backend::BitMapBackend,
    coord::Shift,
    prelude::*,
    style::{register_font, FontStyle},
};

use crate::{
    colormap::{Colormap, Rgb},
    data::{Geometry, Plotted},
    request::{Kind, PlotRequest},
};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const COASTLINES: &str = include_str!("../assets/coastlines-110m.json");
const COAST: Rgb = [40, 40, 40];

fn fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse (tests draw text with it).
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The coastlines as polylines of (lon, lat).
fn coastlines() -> &'static Vec<Vec<(f64, f64)>> {
    static LINES: std::sync::OnceLock<Vec<Vec<(f64, f64)>>> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let flat: Vec<Vec<f64>> = serde_json::from_str(COASTLINES).unwrap_or_default();
        flat.iter().map(|line| line.chunks_exact(2).map(|p| (p[0], p[1])).collect()).collect()
    })
}

fn failed(err: impl std::fmt::Display) -> Error {
    Error::internal(format!("drawing failed: {err}"))
}

/// Tick labels for values from `lo` to `hi`: as many decimals as the spacing of about six
/// ticks needs, scientific notation for very small or large magnitudes.
fn tick_labels(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let magnitude = lo.abs().max(hi.abs());
    let scientific = magnitude != 0.0 && !(1e-3..1e6).contains(&magnitude);
    let digits = |ratio: f64| ratio.log10().ceil().clamp(0.0, 8.0) as usize;
    let (decimals, mantissa) = (digits(6.0 / span), digits(6.0 * magnitude / span).clamp(1, 6));
    move |v: &f64| {
        if scientific {
            format!("{v:.mantissa$e}")
        } else {
            format!("{v:.decimals$}")
        }
    }
}

/// An RGBA picture.
pub(crate) struct Picture {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgba: Vec<u8>,
}

/// The colour scale of a plot: limits and the map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) vmin: f64,
    pub(crate) vmax: f64,
    pub(crate) cmap: Colormap,
    /// Bands of a filled contour plot (0: continuous).
    pub(crate) bands: u32,
    /// Text and line size relative to 100 dots per inch.
    pub(crate) dpi: f64,
}

impl Scale {
    /// The request's limits, else the data's (every frame), centred on 0 for a diverging
    /// map over data that span 0.
    pub(crate) fn of(request: &PlotRequest, plotted: &Plotted) -> Self {
        let finite = plotted.frames.iter().flat_map(|f| f.values.iter().copied()).filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (mut vmin, mut vmax) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
        if request.cmap.diverging && vmin < 0.0 && vmax > 0.0 {
            let m = vmin.abs().max(vmax);
            (vmin, vmax) = (-m, m);
        }
        vmin = request.vmin.unwrap_or(vmin);
        vmax = request.vmax.unwrap_or(vmax);
        if vmax <= vmin {
            vmax = vmin + 1.0;
        }
        let bands = if request.kind == Kind::Contourf { 10 } else { 0 };
        Self { vmin, vmax, cmap: request.cmap, bands, dpi: request.dpi }
    }

    fn fraction(&self, v: f64) -> f64 {
        let t = ((v - self.vmin) / (self.vmax - self.vmin)).clamp(0.0, 1.0);
        if self.bands == 0 {
            t
        } else {
            let bands = f64::from(self.bands);
            ((t * bands).floor().min(bands - 1.0) + 0.5) / bands
        }
    }
}

/// The base text size of a picture: a 28th of its smaller side at 100 dpi.
fn text_size(width: u32, height: u32, dpi: f64) -> f64 {
    (f64::from(height.min(width)) / 28.0 + 6.0) * dpi / 100.0
}

/// West, east, south, north of what is drawn (east may pass 180 for a region across the
/// antimeridian).
fn extent(geometry: &Geometry, window: Option<&[f64; 4]>) -> [f64; 4] {
    if let Some(&[west, east, south, north]) = window {
        return [west, if east < west { east + 360.0 } else { east }, south, north];
    }
    let centres = geometry.centres();
    let lons: Vec<f64> = centres.iter().map(|c| c.0).filter(|v| v.is_finite()).collect();
    let lats: Vec<f64> = centres.iter().map(|c| c.1).filter(|v| v.is_finite()).collect();
    let (south, north) = lats.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let [west, east] = longitude::extent(&lons).unwrap_or([-180.0, 180.0]);
    let east = if east < west { east + 360.0 } else { east };
    // Half a cell beyond the outermost centres (regular grids), whole sphere when nearly so.
    let (dx, dy) = match geometry {
        Geometry::Regular { lat, lon } => (spacing(lon), spacing(lat)),
        _ => (0.0, 0.0),
    };
    let (mut west, mut east) = (west - dx / 2.0, east + dx / 2.0);
    if east - west >= 350.0 {
        (west, east) = (-180.0, 180.0);
    }
    let (south, north) = if north - south >= 170.0 {
        (-90.0, 90.0)
    } else {
        ((south - dy / 2.0).max(-90.0), (north + dy / 2.0).min(90.0))
    };
    if south >= north || west >= east {
        return [-180.0, 180.0, -90.0, 90.0];
    }
    [west, east, south, north]
}

fn spacing(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 1.0;
    }
    let mut sorted: Vec<f64> = values.iter().map(|&v| wrap_degrees(v)).collect();
    sorted.sort_by(f64::total_cmp);
    sorted.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).fold(f64::INFINITY, f64::min).min(360.0)
}

/// Pixel mapping of the plot area.
#[derive(Debug, Clone)]
struct Frame {
    x: Range<i32>,
    y: Range<i32>,
    extent: [f64; 4],
}

impl Frame {
    fn width(&self) -> usize {
        (self.x.end - self.x.start).max(1) as usize
    }
    fn height(&self) -> usize {
        (self.y.end - self.y.start).max(1) as usize
    }
    /// Longitude moved into the drawn range (which may pass 180).
    fn lon(&self, lon: f64) -> f64 {
        let lon = wrap_degrees(lon);
        if lon < self.extent[0] - 1e-9 {
            lon + 360.0
        } else {
            lon
        }
    }
    /// Pixel position (within the plot area, fractional) of a point.
    fn to_pixel(&self, lon: f64, lat: f64) -> (f64, f64) {
        let [west, east, south, north] = self.extent;
        ((lon - west) / (east - west) * self.width() as f64, (north - lat) / (north - south) * self.height() as f64)
    }
}

/// Values rasterised to the plot area's pixels (NaN: nothing).
struct Raster {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl Raster {
    fn new(width: usize, height: usize) -> Self {
        Self { width, height, values: vec![f32::NAN; width * height] }
    }

    /// Fills a polygon given in pixel coordinates (even-odd rule, pixel centres).
    fn polygon(&mut self, points: &[(f64, f64)], value: f32) {
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if !lo.is_finite() || !hi.is_finite() {
            return;
        }
        let first = (lo - 0.5).ceil().max(0.0) as usize;
        let last = ((hi - 0.5).floor()).min(self.height as f64 - 1.0);
        if last < 0.0 {
            return;
        }
        let mut crossings = Vec::with_capacity(8);
        for row in first..=last as usize {
            let y = row as f64 + 0.5;
            crossings.clear();
            for i in 0..points.len() {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                if (a.1 <= y) != (b.1 <= y) {
                    crossings.push(a.0 + (y - a.1) / (b.1 - a.1) * (b.0 - a.0));
                }
            }
            crossings.sort_by(f64::total_cmp);
            for pair in crossings.chunks_exact(2) {
                let from = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let to = (pair[1] - 0.5).floor().min(self.width as f64 - 1.0);
                if to < 0.0 {
                    continue;
                }
                for column in from..=to as usize {
                    self.values[row * self.width + column] = value;
                }
            }
        }
    }

    fn square(&mut self, centre: (f64, f64), side: f64, value: f32) {
        let h = side / 2.0;
        let (x, y) = centre;
        self.polygon(&[(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)], value);
    }
}

/// Edges between sorted centres, half a spacing beyond the ends.
fn edges(sorted: &[f64]) -> Vec<f64> {
    let n = sorted.len();
    if n == 1 {
        return vec![sorted[0] - 0.5, sorted[0] + 0.5];
    }
    let mut e = Vec::with_capacity(n + 1);
    e.push(sorted[0] - (sorted[1] - sorted[0]) / 2.0);
    e.extend(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    e.push(sorted[n - 1] + (sorted[n - 1] - sorted[n - 2]) / 2.0);
    e
}

/// For each pixel along an axis (centres at `at(i)`), the position of the cell holding it.
fn lookup(sorted: &[f64], order: &[usize], pixels: usize, at: impl Fn(usize) -> f64) -> Vec<Option<usize>> {
    let e = edges(sorted);
    (0..pixels)
        .map(|p| {
            let v = at(p);
            if v < e[0] || v >= e[e.len() - 1] {
                return None;
            }
            let i = e.partition_point(|&edge| edge <= v).saturating_sub(1);
            order.get(i.min(order.len() - 1)).copied()
        })
        .collect()
}

fn rasterise(geometry: &Geometry, values: &[f64], frame: &Frame, points: bool) -> Raster {
    let (w, h) = (frame.width(), frame.height());
    let mut raster = Raster::new(w, h);
    let [west, east, south, north] = frame.extent;
    match geometry {
        Geometry::Regular { lat, lon } if !points => {
            let mut lon_order: Vec<usize> = (0..lon.len()).collect();
            let shifted: Vec<f64> = lon.iter().map(|&v| frame.lon(v)).collect();
            lon_order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]));
            let lon_sorted: Vec<f64> = lon_order.iter().map(|&i| shifted[i]).collect();
            let mut lat_order: Vec<usize> = (0..lat.len()).collect();
            lat_order.sort_by(|&a, &b| lat[a].total_cmp(&lat[b]));
            let lat_sorted: Vec<f64> = lat_order.iter().map(|&i| lat[i]).collect();
            let columns = lookup(&lon_sorted, &lon_order, w, |p| west + (p as f64 + 0.5) / w as f64 * (east - west));
            let rows = lookup(&lat_sorted, &lat_order, h, |p| north - (p as f64 + 0.5) / h as f64 * (north - south));
            let nx = lon.len();
            for (py, row) in rows.iter().enumerate() {
                let Some(row) = row else { continue };
                for (px, column) in columns.iter().enumerate() {
                    if let Some(column) = column {
                        raster.values[py * w + px] = values[row * nx + column] as f32;
                    }
                }
            }
        }
        Geometry::Curvilinear { lat, lon, ny, nx } if !points => {
            for (i, corners) in quad_corners(lat, lon, *ny, *nx).into_iter().enumerate() {
                if !values[i].is_nan() {
                    draw_cell(&mut raster, frame, &corners, values[i] as f32);
                }
            }
        }
        Geometry::Cells { corners: Some(corners), .. } if !points => {
            for (i, cell) in corners.iter().enumerate() {
                if !values[i].is_nan() && cell.len() >= 3 {
                    draw_cell(&mut raster, frame, cell, values[i] as f32);
                }
            }
        }
        _ => {
            let centres = geometry.centres();
            let visible = centres.len().max(1) as f64;
            let side = ((w * h) as f64 / visible).sqrt().clamp(2.0, 12.0);
            for (i, (lon, lat)) in centres.iter().enumerate() {
                if !values[i].is_nan() {
                    raster.square(frame.to_pixel(frame.lon(*lon), *lat), side, values[i] as f32);
                }
            }
        }
    }
    raster
}

/// Corners of each cell of a 2-D grid: the mean of the four surrounding centres (the grid
/// extended by one row and column on each side), longitudes unwrapped around each cell.
fn quad_corners(lat: &[f64], lon: &[f64], ny: usize, nx: usize) -> Vec<Vec<(f64, f64)>> {
    let at = |y: isize, x: isize| -> (f64, f64) {
        // Linear extrapolation beyond the edges.
        let (cy, cx) = (y.clamp(0, ny as isize - 1), x.clamp(0, nx as isize - 1));
        let (ny2, nx2) =
            ((cy + (cy - y).signum()).clamp(0, ny as isize - 1), (cx + (cx - x).signum()).clamp(0, nx as isize - 1));
        let i = |y: isize, x: isize| y as usize * nx + x as usize;
        let (lon0, lat0) = (lon[i(cy, cx)], lat[i(cy, cx)]);
        if (cy, cx) == (y, x) {
            return (lon0, lat0);
        }
        let (lon1, lat1) = (lon[i(ny2, nx2)], lat[i(ny2, nx2)]);
        let dlon = wrap_degrees(lon0 - lon1);
        (lon0 + dlon, (2.0 * lat0 - lat1).clamp(-90.0, 90.0))
    };
    let mut cells = Vec::with_capacity(ny * nx);
    for y in 0..ny as isize {
        for x in 0..nx as isize {
            let centre = at(y, x);
            let corner = |dy: isize, dx: isize| {
                let points = [at(y, x), at(y + dy, x), at(y, x + dx), at(y + dy, x + dx)];
                let lon = points.iter().map(|p| centre.0 + wrap_degrees(p.0 - centre.0)).sum::<f64>() / 4.0;
                let lat = points.iter().map(|p| p.1).sum::<f64>() / 4.0;
                (lon, lat)
            };
            cells.push(vec![corner(-1, -1), corner(-1, 1), corner(1, 1), corner(1, -1)]);
        }
    }
    cells
}

/// One cell polygon (lon, lat corners), unwrapped around its first corner and drawn once
/// more shifted by 360° where it leaves the drawn range.
fn draw_cell(raster: &mut Raster, frame: &Frame, corners: &[(f64, f64)], value: f32) {
    let first = frame.lon(corners[0].0);
    let unwrapped: Vec<(f64, f64)> =
        corners.iter().map(|&(lon, lat)| (first + wrap_degrees(lon - first), lat)).collect();
    let (lo, hi) = unwrapped.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    for shift in [0.0, -360.0, 360.0] {
        if shift != 0.0
            && !((shift < 0.0 && hi + shift > frame.extent[0]) || (shift > 0.0 && lo + shift < frame.extent[1]))
        {
            continue;
        }
        let pixels: Vec<(f64, f64)> = unwrapped.iter().map(|&(lon, lat)| frame.to_pixel(lon + shift, lat)).collect();
        raster.polygon(&pixels, value);
    }
}

/// The plot area of one frame as RGBA pixels: the field coloured, masked cells transparent,
/// coastlines over it.
fn field(plotted: &Plotted, frame_index: usize, scale: &Scale, plot: &Frame, points: bool) -> Result<Vec<u8>, Error> {
    let geometry = plotted.geometry.as_ref().ok_or_else(|| Error::internal("a map without positions"))?;
    let raster = rasterise(geometry, &plotted.frames[frame_index].values, plot, points);
    let table = scale.cmap.table();
    let mut rgba = vec![0u8; raster.width * raster.height * 4];
    for (pixel, &v) in rgba.chunks_exact_mut(4).zip(&raster.values) {
        if !v.is_nan() {
            let [r, g, b] = table[(scale.fraction(f64::from(v)) * 255.0).round() as usize];
            pixel.copy_from_slice(&[r, g, b, 255]);
        }
    }
    draw_coastlines(&mut rgba, raster.width, plot);
    Ok(rgba)
}

/// Draws one frame of a field as an RGBA picture of `width` × `height`.
pub(crate) fn map(
    plotted: &Plotted,
    frame_index: usize,
    scale: &Scale,
    width: u32,
    height: u32,
    points: bool,
) -> Result<Picture, Error> {
    fonts();
    let geometry = plotted.geometry.as_ref().ok_or_else(|| Error::internal("a map without positions"))?;
    let extent = extent(geometry, plotted.window.as_ref());
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![255u8; w * h * 3];
    let plot = {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let plot = decorations(&root, plotted, &plotted.frames[frame_index].label, scale, extent, width, height)?;
        root.present().map_err(failed)?;
        plot
    };
    let area = field(plotted, frame_index, scale, &plot, points)?;
    let mut rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect();
    let (pw, x0, y0) = (plot.width(), plot.x.start.max(0) as usize, plot.y.start.max(0) as usize);
    for (row, line) in area.chunks_exact(pw * 4).enumerate() {
        let at = ((y0 + row) * w + x0) * 4;
        if y0 + row < h && x0 + pw <= w {
            rgba[at..at + pw * 4].copy_from_slice(line);
        }
    }
    Ok(Picture { width, height, rgba })
}

/// One frame of a field as SVG: text, axes and colour bar as vectors, the field (with the
/// coastlines) as a PNG image in the plot area.
pub(crate) fn map_svg(
    plotted: &Plotted,
    scale: &Scale,
    width: u32,
    height: u32,
    points: bool,
) -> Result<String, Error> {
    fonts();
    let geometry = plotted.geometry.as_ref().ok_or_else(|| Error::internal("a map without positions"))?;
    let extent = extent(geometry, plotted.window.as_ref());
    let mut svg = String::new();
    let plot = {
        let root = plotters::backend::SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let plot = decorations(&root, plotted, &plotted.frames[0].label, scale, extent, width, height)?;
        root.present().map_err(failed)?;
        plot
    };
    let area = field(plotted, 0, scale, &plot, points)?;
    let picture = Picture { width: plot.width() as u32, height: plot.height() as u32, rgba: area };
    let png = crate::encode::png(&[picture], 0)?;
    let image = format!(
        r#"<image x="{}" y="{}" width="{}" height="{}" href="data:image/png;base64,{}"/>"#,
        plot.x.start,
        plot.y.start,
        plot.width(),
        plot.height(),
        crate::encode::base64(&png)
    );
    let end = svg.rfind("</svg>").ok_or_else(|| Error::internal("plotters wrote no SVG"))?;
    svg.insert_str(end, &image);
    Ok(svg)
}

/// A date label as people read it: `2000-03-16`, `2000-03-16 12:00:00`.
fn readable(text: &str) -> String {
    text.replace("T00:00:00Z", "").replace('T', " ").replace('Z', "")
}

/// The caption under the title: the frame's date, then the fixed positions of the other
/// dimensions.
fn caption(plotted: &Plotted, label: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !label.is_empty() && !plotted.fixed.iter().any(|f| f.contains(label)) {
        parts.push(readable(label));
    }
    parts.extend(plotted.fixed.iter().map(|f| readable(f)));
    parts.join(", ")
}

/// Title, caption, axes with degree ticks and the colour bar; the plot area's pixels.
fn decorations<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plotted: &Plotted,
    label: &str,
    scale: &Scale,
    extent: [f64; 4],
    width: u32,
    height: u32,
) -> Result<Frame, Error>
where
    DB::ErrorType: 'static,
{
    let text_size = text_size(width, height, scale.dpi);
    let title =
        if plotted.units.is_empty() { plotted.title.clone() } else { format!("{} [{}]", plotted.title, plotted.units) };
    let (top, rest) = root.split_vertically((text_size * 2.9) as u32);
    top.draw(&Text::new(title, (10, 4), ("sans-serif", text_size * 1.1).into_font())).map_err(failed)?;
    top.draw(&Text::new(
        caption(plotted, label),
        (10, (text_size * 1.55) as i32),
        ("sans-serif", text_size * 0.9).into_font(),
    ))
    .map_err(failed)?;
    let bar_width = (text_size * 6.0) as u32;
    let (left, right) = rest.split_horizontally(width.saturating_sub(bar_width));
    let [west, east, south, north] = extent;
    let mut chart = ChartBuilder::on(&left)
        .margin(6)
        .x_label_area_size((text_size * 1.8) as u32)
        .y_label_area_size((text_size * 3.2) as u32)
        .build_cartesian_2d(west..east, south..north)
        .map_err(failed)?;
    let degrees_east = |v: &f64| {
        let v = wrap_degrees(*v);
        match v {
            v if v.abs() < 1e-9 || (v.abs() - 180.0).abs() < 1e-9 => format!("{}°", v.abs()),
            v if v < 0.0 => format!("{}°W", -v),
            v => format!("{v}°E"),
        }
    };
    let degrees_north = |v: &f64| match *v {
        v if v.abs() < 1e-9 => "0°".to_owned(),
        v if v < 0.0 => format!("{}°S", -v),
        v => format!("{v}°N"),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(7)
        .y_labels(5)
        .x_label_formatter(&degrees_east)
        .y_label_formatter(&degrees_north)
        .label_style(("sans-serif", text_size * 0.8).into_font())
        .draw()
        .map_err(failed)?;
    let (x, y) = chart.plotting_area().get_pixel_range();
    colour_bar(&right, scale, text_size)?;
    Ok(Frame { x, y, extent })
}

/// A vertical colour bar from `vmin` (bottom, `cmap(0)`) to `vmax` (top, `cmap(1)`).
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, scale: &Scale, text_size: f64) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_bottom((text_size * 1.8) as u32 + 6)
        .margin_right(4)
        .y_label_area_size((text_size * 4.2) as u32)
        .build_cartesian_2d(0.0..1.0, scale.vmin..scale.vmax)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&tick_labels(scale.vmin, scale.vmax))
        .label_style(("sans-serif", text_size * 0.75).into_font())
        .axis_desc_style(("sans-serif", text_size * 0.8).into_font())
        .draw()
        .map_err(failed)?;
    // One row of pixels per colour, from cmap(0) at the bottom to cmap(1) at the top.
    let (columns, rows) = chart.plotting_area().get_pixel_range();
    let (base_x, base_y) = area.get_base_pixel();
    let count = (rows.end - rows.start).max(2);
    for row in rows.clone() {
        let t = f64::from(rows.end - 1 - row) / f64::from(count - 1);
        let [r, g, b] = scale.cmap.at(scale.fraction(scale.vmin + t * (scale.vmax - scale.vmin)));
        let (y, x0, x1) = (row - base_y, columns.start - base_x, columns.end - 1 - base_x);
        area.draw(&Rectangle::new([(x0, y), (x1, y + 1)], RGBColor(r, g, b).filled())).map_err(failed)?;
    }
    Ok(())
}

/// The coastlines drawn into an RGBA buffer of the plot area.
fn draw_coastlines(rgba: &mut [u8], width: usize, plot: &Frame) {
    let height = rgba.len() / 4 / width.max(1);
    for line in coastlines() {
        for segment in line.windows(2) {
            let (a, b) = (segment[0], segment[1]);
            if (a.0 - b.0).abs() > 180.0 {
                continue;
            }
            for shift in [0.0, 360.0] {
                let (ax, ay) = plot.to_pixel(a.0 + shift, a.1);
                let (bx, by) = plot.to_pixel(b.0 + shift, b.1);
                let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as usize;
                if steps > 4 * (width + height) {
                    continue;
                }
                for s in 0..=steps {
                    let t = s as f64 / steps as f64;
                    let (x, y) = ((ax + t * (bx - ax)).floor(), (ay + t * (by - ay)).floor());
                    if x >= 0.0 && y >= 0.0 && (x as usize) < width && (y as usize) < height {
                        let at = (y as usize * width + x as usize) * 4;
                        rgba[at..at + 4].copy_from_slice(&[COAST[0], COAST[1], COAST[2], 255]);
                    }
                }
            }
        }
    }
}

/// A line along the plot's axis.
pub(crate) fn line<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plotted: &Plotted,
    scale: &Scale,
    width: u32,
    height: u32,
) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    fonts();
    root.fill(&WHITE).map_err(failed)?;
    let values = &plotted.frames[0].values;
    let (name, labels, _) = plotted.axis.clone().unwrap_or_default();
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi {
        (lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05)
    } else if lo == hi {
        (lo - 1.0, hi + 1.0)
    } else {
        (0.0, 1.0)
    };
    let text_size = text_size(width, height, scale.dpi);
    let title =
        if plotted.units.is_empty() { plotted.title.clone() } else { format!("{} [{}]", plotted.title, plotted.units) };
    let n = values.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", text_size * 1.1).into_font())
        .margin(10)
        .x_label_area_size((text_size * 2.0) as u32)
        .y_label_area_size((text_size * 4.0) as u32)
        .build_cartesian_2d(0.0..(n.saturating_sub(1)).max(1) as f64, lo..hi)
        .map_err(failed)?;
    let short = |i: &f64| {
        let label = labels.get(i.round().max(0.0) as usize).cloned().unwrap_or_default();
        label.split('T').next().unwrap_or_default().to_owned()
    };
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&short)
        .y_label_formatter(&tick_labels(lo, hi))
        .x_desc(name)
        .y_desc(plotted.units.clone())
        .label_style(("sans-serif", text_size * 0.8).into_font())
        .draw()
        .map_err(failed)?;
    let points: Vec<(f64, f64)> =
        values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| (i as f64, v)).collect();
    chart.draw_series(LineSeries::new(points, RGBColor(31, 119, 180).stroke_width(2))).map_err(failed)?;
    if !plotted.fixed.is_empty() {
        root.draw(&Text::new(
            plotted.fixed.join(", "),
            (10, (height as f64 - text_size) as i32),
            ("sans-serif", text_size * 0.8).into_font(),
        ))
        .map_err(failed)?;
    }
    root.present().map_err(failed)
}

/// Histogram bins over the scale's range: edges and counts.
pub(crate) fn bins(values: &[f64], scale: &Scale, count: usize) -> (Vec<f64>, Vec<u64>) {
    let span = scale.vmax - scale.vmin;
    let edges: Vec<f64> = (0..=count).map(|i| scale.vmin + span * i as f64 / count as f64).collect();
    let mut counts = vec![0u64; count];
    for &v in values.iter().filter(|v| v.is_finite()) {
        if v < scale.vmin || v > scale.vmax {
            continue;
        }
        let i = (((v - scale.vmin) / span) * count as f64).floor() as usize;
        counts[i.min(count - 1)] += 1;
    }
    (edges, counts)
}

/// A histogram of the plotted values.
pub(crate) fn hist<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plotted: &Plotted,
    scale: &Scale,
    width: u32,
    height: u32,
) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    fonts();
    root.fill(&WHITE).map_err(failed)?;
    let values: Vec<f64> = plotted.frames.iter().flat_map(|f| f.values.iter().copied()).collect();
    let (edges, counts) = bins(&values, scale, 30);
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
    let text_size = text_size(width, height, scale.dpi);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} [{}]", plotted.title, plotted.units), ("sans-serif", text_size * 1.1).into_font())
        .margin(10)
        .x_label_area_size((text_size * 2.0) as u32)
        .y_label_area_size((text_size * 4.0) as u32)
        .build_cartesian_2d(scale.vmin..scale.vmax, 0.0..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_label_formatter(&tick_labels(scale.vmin, scale.vmax))
        .x_desc(plotted.units.clone())
        .y_desc("count")
        .label_style(("sans-serif", text_size * 0.8).into_font())
        .draw()
        .map_err(failed)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let [r, g, b] = scale.cmap.at(scale.fraction((edges[i] + edges[i + 1]) / 2.0));
            Rectangle::new([(edges[i], 0.0), (edges[i + 1], c as f64)], RGBColor(r, g, b).filled())
        }))
        .map_err(failed)?;
    root.present().map_err(failed)
}

/// Draws into an RGB buffer with `draw`, then makes it an opaque RGBA picture.
pub(crate) fn opaque(
    width: u32,
    height: u32,
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), Error>,
) -> Result<Picture, Error> {
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    draw(BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area())?;
    let rgba = rgb.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect();
    Ok(Picture { width, height, rgba })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygons_fill_pixel_centres_inside() {
        let mut raster = Raster::new(10, 10);
        raster.polygon(&[(2.0, 2.0), (6.0, 2.0), (6.0, 5.0), (2.0, 5.0)], 1.0);
        let filled: Vec<usize> = (0..100).filter(|&i| raster.values[i] == 1.0).collect();
        assert_eq!(filled.len(), 4 * 3);
        assert!(raster.values[3 * 10 + 3] == 1.0 && raster.values[3 * 10 + 7].is_nan());
    }

    /// The whole sphere at one pixel per degree.
    fn world() -> Frame {
        Frame { x: 0..360, y: 0..180, extent: [-180.0, 180.0, -90.0, 90.0] }
    }

    fn at(raster: &Raster, lon: f64, lat: f64) -> f32 {
        let (x, y) = ((lon + 180.0) as usize, (90.0 - lat) as usize);
        raster.values[y * raster.width + x]
    }

    #[test]
    fn curvilinear_cells_are_drawn_where_they_are_even_across_the_antimeridian() {
        // A 3×3 grid, 10° apart, centred on 20°E 50°N and sheared eastwards with latitude.
        let (mut lat, mut lon) = (Vec::new(), Vec::new());
        for y in 0..3 {
            for x in 0..3 {
                lat.push(40.0 + 10.0 * f64::from(y));
                lon.push(10.0 + 10.0 * f64::from(x) + 2.0 * f64::from(y));
            }
        }
        let geometry = Geometry::Curvilinear { lat, lon, ny: 3, nx: 3 };
        let raster = rasterise(&geometry, &(0..9).map(f64::from).collect::<Vec<_>>(), &world(), false);
        assert_eq!(at(&raster, 22.0, 50.0), 4.0);
        assert_eq!(at(&raster, 10.5, 40.5), 0.0);
        assert_eq!(at(&raster, 34.5, 60.5), 8.0);
        assert!(at(&raster, 100.0, 50.0).is_nan() && at(&raster, 22.0, 10.0).is_nan());
        // Centres at 170°E, 180° and 170°W: the middle cell is drawn on both edges.
        let lon = vec![170.0, 180.0, -170.0, 170.0, 180.0, -170.0];
        let geometry = Geometry::Curvilinear { lat: vec![-5.0, -5.0, -5.0, 5.0, 5.0, 5.0], lon, ny: 2, nx: 3 };
        let raster = rasterise(&geometry, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0], &world(), false);
        assert_eq!((at(&raster, 171.0, 0.0), at(&raster, 178.0, 0.0), at(&raster, -178.0, 0.0)), (1.0, 2.0, 2.0));
        assert_eq!(at(&raster, -171.0, 0.0), 3.0);
        assert!(at(&raster, 0.0, 0.0).is_nan());
    }

    #[test]
    fn unstructured_and_healpix_cells_fill_their_shapes() {
        let triangle = vec![(0.0, 0.0), (40.0, 0.0), (0.0, 40.0)];
        let geometry = Geometry::Cells { lat: vec![13.0], lon: vec![13.0], corners: Some(vec![triangle]) };
        let raster = rasterise(&geometry, &[7.0], &world(), false);
        assert_eq!(at(&raster, 10.0, 10.0), 7.0);
        assert!(at(&raster, 30.0, 30.0).is_nan());
        // Twelve HEALPix cells of nside 1 cover the sphere, each where its centre is.
        let grid = cloudify_cf::Healpix { nside: 1, ordering: cloudify_cf::grid::Ordering::Nested };
        let (mut lat, mut lon, mut corners) = (Vec::new(), Vec::new(), Vec::new());
        for cell in 0..12 {
            let (x, y) = grid.centre(cell).unwrap();
            lon.push(x);
            lat.push(y);
            corners.push(grid.outline(cell, 8).unwrap());
        }
        let geometry = Geometry::Cells { lat: lat.clone(), lon: lon.clone(), corners: Some(corners) };
        let raster = rasterise(&geometry, &(0..12).map(f64::from).collect::<Vec<_>>(), &world(), false);
        let empty = raster.values.iter().filter(|v| v.is_nan()).count();
        assert!(empty < raster.values.len() / 50, "{empty} pixels empty");
        for cell in 0..12 {
            assert_eq!(at(&raster, lon[cell].clamp(-179.0, 179.0), lat[cell]), cell as f32, "cell {cell}");
        }
        // As points: only around the centres.
        let points = rasterise(&geometry, &(0..12).map(f64::from).collect::<Vec<_>>(), &world(), true);
        assert!(points.values.iter().filter(|v| v.is_nan()).count() > points.values.len() / 2);
    }

    #[test]
    fn tick_labels_show_what_differs() {
        assert_eq!(tick_labels(250.0, 300.0)(&260.0), "260");
        assert_eq!(tick_labels(281.70715, 281.70717)(&281.707_16), "281.707160");
        assert_eq!(tick_labels(0.0, 4e-5)(&2e-5), "2.0e-5");
        assert_eq!(tick_labels(0.0, 1.0)(&0.5), "0.5");
    }

    #[test]
    fn axis_lookup_maps_pixels_to_cells() {
        // Cells centred at 0, 10, 20 (edges -5, 5, 15, 25), stored in reverse order.
        let cells = lookup(&[0.0, 10.0, 20.0], &[2, 1, 0], 6, |p| -5.0 + (p as f64 + 0.5) * 5.0);
        assert_eq!(cells, [Some(2), Some(2), Some(1), Some(1), Some(0), Some(0)]);
        assert_eq!(lookup(&[0.0, 10.0], &[0, 1], 1, |_| 100.0), [None]);
    }
}

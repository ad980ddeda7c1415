//! The data a request plots: the variable's dimensions resolved to positions (the request's
//! selection, else the defaults: the whole horizontal domain, the last time step, the first
//! position of every other dimension), read through the host's region reads (only the
//! chunks the selection touches), and the cells' positions on the sphere.

use cloudify_cf::{
    grid::{in_radians, wrap_degrees, Healpix},
    role_of,
    select::{pick, span, Coordinate},
    text,
    time::{rfc3339, TimeAxis},
    weights::at_positions,
    Grid, Role, Selector,
};
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host,
};

use crate::request::{Kind, PlotRequest, Reduce};

/// Coordinates larger than this are not read (a plot of them is refused).
const MAX_COORDINATE_BYTES: u64 = 256 << 20;

/// Where the values of a field lie.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Geometry {
    /// Rows of latitudes by columns of longitudes (degrees, as stored order): values are
    /// row-major `[lat][lon]`.
    Regular { lat: Vec<f64>, lon: Vec<f64> },
    /// Cells of a 2-D grid, row-major `[ny][nx]`, at true positions.
    Curvilinear { lat: Vec<f64>, lon: Vec<f64>, ny: usize, nx: usize },
    /// Cells in a list: centres, and their corners when known.
    Cells { lat: Vec<f64>, lon: Vec<f64>, corners: Option<Vec<Vec<(f64, f64)>>> },
}

impl Geometry {
    /// Latitude and longitude of every value, in the order of the values.
    pub(crate) fn centres(&self) -> Vec<(f64, f64)> {
        match self {
            Self::Regular { lat, lon } => lat.iter().flat_map(|&y| lon.iter().map(move |&x| (x, y))).collect(),
            Self::Curvilinear { lat, lon, .. } | Self::Cells { lat, lon, .. } => {
                lon.iter().copied().zip(lat.iter().copied()).collect()
            }
        }
    }
}

/// One picture's values (a time step, or the reduction of several).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    /// What distinguishes it (a date), empty when nothing does.
    pub(crate) label: String,
    pub(crate) values: Vec<f64>,
}

/// What a request plots.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plotted {
    /// Name, long name and units of the variable.
    pub(crate) var: String,
    pub(crate) title: String,
    pub(crate) units: String,
    /// Fixed positions of the other dimensions, for the caption (`plev = 85000 (first)`).
    pub(crate) fixed: Vec<String>,
    /// Where the values lie; `None` for a line.
    pub(crate) geometry: Option<Geometry>,
    /// Frames of a field (several: an animation); a line's single frame holds the series.
    pub(crate) frames: Vec<Frame>,
    /// A line's positions along its axis: the axis name and labels.
    pub(crate) axis: Option<(String, Vec<String>, Vec<f64>)>,
    /// The lat/lon window the selection asks for (west, east, south, north), if any.
    pub(crate) window: Option<[f64; 4]>,
}

/// A dimension's positions and how they are labelled.
struct Picked {
    name: String,
    size: usize,
    positions: Vec<usize>,
    /// Labels of the picked positions (dates, numbers or positions).
    labels: Vec<String>,
    /// Numeric labels of the picked positions.
    numbers: Vec<f64>,
    role: Role,
    selected: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message.into())
}

async fn coordinate_values(host: &Host, meta: &DatasetMeta, name: &str) -> Result<Vec<f64>, Error> {
    let var = meta.variables.get(name).ok_or_else(|| Error::not_found(format!("no variable '{name}'")))?;
    cloudify_cf::read::all(host, &meta.id, name, var, MAX_COORDINATE_BYTES).await
}

/// The 1-D coordinate variable of dimension `dim`, if the dataset has one.
fn dimension_coordinate<'a>(meta: &'a DatasetMeta, dim: &str) -> Option<&'a VariableMeta> {
    meta.variables.get(dim).filter(|v| v.dimensions.len() == 1 && v.dimensions[0] == dim)
}

fn format_number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A latitude/longitude window from selectors on the grid's latitude and longitude names
/// (for grids whose horizontal dimensions have no such coordinates).
fn window(request: &PlotRequest, names: &[String; 2]) -> Result<Option<[f64; 4]>, Error> {
    let bounds = |name: &str, lo: f64, hi: f64| -> Result<Option<(f64, f64)>, Error> {
        let alias = if name == names[0] { "lat" } else { "lon" };
        let selector = request.selection.get(name).or_else(|| request.selection.get(alias));
        match selector {
            None => Ok(None),
            Some(Selector::Between(a, b)) => {
                let parse = |s: &Option<String>, default: f64| -> Result<f64, Error> {
                    s.as_deref().map_or(Ok(default), |s| {
                        s.trim().parse().map_err(|_| invalid(format!("{name}: '{s}' is not a number")))
                    })
                };
                let (a, b) = (parse(a, lo)?, parse(b, hi)?);
                Ok(Some((a, b)))
            }
            Some(Selector::Path(a, b)) => Ok(Some((*a as f64, *b as f64))),
            Some(_) => Err(invalid(format!("{name}: on this grid select a range (lat=40:60), not a position"))),
        }
    };
    let lat = bounds(&names[0], -90.0, 90.0)?;
    let lon = bounds(&names[1], -180.0, 180.0)?;
    Ok(match (lat, lon) {
        (None, None) => None,
        (lat, lon) => {
            let (south, north) = lat.map_or((-90.0, 90.0), |(a, b)| (a.min(b), a.max(b)));
            let (west, east) = lon.map_or((-180.0, 180.0), |(a, b)| (wrap_degrees(a), wrap_degrees(b)));
            Some([west, east, south, north])
        }
    })
}

/// Whether `(lon, lat)` lies in `window` (west > east crosses the antimeridian).
pub(crate) fn inside(window: &[f64; 4], lon: f64, lat: f64) -> bool {
    let [west, east, south, north] = *window;
    let lon = wrap_degrees(lon);
    let in_lon = if west <= east { lon >= west && lon <= east } else { lon >= west || lon <= east };
    in_lon && lat >= south && lat <= north
}

/// Resolves and reads what `request` plots from dataset `meta`.
///
/// # Errors
/// 404 for an unknown variable; 400 for text, a selection naming something the variable
/// does not have, a map of a variable without a grid, several values of an extra dimension;
/// 413 from the host for a selection over `max_region_bytes`.
pub(crate) async fn gather(
    host: &Host,
    meta: &DatasetMeta,
    request: &PlotRequest,
    max_frames: usize,
) -> Result<Plotted, Error> {
    let name = request.var.as_str();
    let var = meta
        .variables
        .get(name)
        .ok_or_else(|| Error::not_found(format!("no variable '{name}' in dataset '{}'", meta.id)))?;
    if matches!(var.dtype, DataType::Char | DataType::String) {
        return Err(invalid(format!("'{name}' holds text: only numbers can be plotted")));
    }
    let grid = cloudify_cf::grid_of(meta, name);
    let spatial = matches!(request.kind, Kind::Map | Kind::Contourf | Kind::Scatter);
    if spatial && grid.is_none() {
        return Err(invalid(format!(
            "'{name}' has no latitude/longitude this server can place on a map: plot it as line or hist"
        )));
    }
    let (hdims, latlon) = grid.as_ref().map(|g| (g.dimensions(meta), g.latitude_longitude_names())).unwrap_or_default();
    // Every selector must name a dimension of the variable or the grid's latitude/longitude.
    for (dim, _) in &request.selection.dims {
        let known =
            var.dimensions.contains(dim) || latlon.contains(dim) || (grid.is_some() && (dim == "lat" || dim == "lon"));
        if !known {
            return Err(invalid(format!(
                "'{dim}' is not a dimension of '{name}' ({}) nor its latitude/longitude",
                var.dimensions.join(", ")
            )));
        }
    }
    let regular = matches!(grid, Some(Grid::Regular { .. }));
    let window = if regular { None } else { window(request, &latlon)? };

    // The x axis of a line: time, else the first dimension that is not horizontal.
    let line_axis = (request.kind == Kind::Line).then(|| {
        let roles: Vec<Role> = var
            .dimensions
            .iter()
            .map(|d| dimension_coordinate(meta, d).map_or(Role::Other, |c| role_of(d, c)))
            .collect();
        let time = var.dimensions.iter().zip(&roles).find(|(_, r)| **r == Role::Time).map(|(d, _)| d.clone());
        time.or_else(|| var.dimensions.iter().find(|d| !hdims.contains(d)).cloned())
    });
    let line_axis = line_axis.flatten();
    if request.kind == Kind::Line && line_axis.is_none() {
        return Err(invalid(format!("'{name}' has no dimension besides latitude/longitude to draw a line along")));
    }

    let mut picked = Vec::new();
    for (dim, &size) in var.dimensions.iter().zip(&var.shape) {
        let size = usize::try_from(size).map_err(|_| invalid("dimension too large"))?;
        let coord_var = dimension_coordinate(meta, dim);
        let role = coord_var.map_or(Role::Other, |c| role_of(dim, c));
        let is_horizontal = hdims.contains(dim);
        // Regular grids select latitude/longitude by their own names or by lat/lon.
        let alias = match (regular, role) {
            (true, Role::Latitude) => request.selection.get("lat"),
            (true, Role::Longitude) => request.selection.get("lon"),
            _ => None,
        };
        let selector = request.selection.get(dim).or(alias);
        let mut values = Vec::new();
        let mut dates = None;
        if let Some(coord) = coord_var {
            if selector.is_some() || !is_horizontal || regular {
                values = coordinate_values(host, meta, dim).await?;
                if role == Role::Time {
                    dates = Some(TimeAxis::decode(coord, &values).map_err(|e| invalid(e.to_string()))?);
                }
            }
        }
        let positions = match selector {
            Some(selector) => {
                let coordinate = match (&dates, coord_var) {
                    (Some(axis), _) => Coordinate::Time(axis),
                    (None, Some(_)) if !values.is_empty() => {
                        Coordinate::Numbers { values: &values, longitude: role == Role::Longitude }
                    }
                    _ => Coordinate::Positions,
                };
                pick(dim, selector, size, coordinate).map_err(|e| invalid(e.to_string()))?
            }
            None if is_horizontal => (0..size).collect(),
            None if line_axis.as_deref() == Some(dim.as_str()) => (0..size).collect(),
            None if role == Role::Time => vec![size.saturating_sub(1)],
            None => vec![0],
        };
        if positions.is_empty() {
            return Err(invalid(format!("'{dim}' has no positions")));
        }
        let labels: Vec<String> = positions
            .iter()
            .map(|&p| match (&dates, values.get(p)) {
                (Some(axis), _) => rfc3339(&axis.dates[p]),
                (None, Some(&v)) => format_number(v),
                (None, None) => p.to_string(),
            })
            .collect();
        let numbers = positions.iter().map(|&p| values.get(p).copied().unwrap_or(p as f64)).collect();
        let selected = selector.is_some();
        picked.push(Picked { name: dim.clone(), size, positions, labels, numbers, role, selected });
    }

    // Which dimension makes frames: the line's axis, or time (several steps of a field).
    let frame_dim = match request.kind {
        Kind::Line => line_axis.clone(),
        _ => picked.iter().find(|p| p.role == Role::Time && p.positions.len() > 1).map(|p| p.name.clone()),
    };
    for p in &picked {
        let many = p.positions.len() > 1;
        if many && !hdims.contains(&p.name) && Some(&p.name) != frame_dim.as_ref() {
            return Err(invalid(format!("select one position of '{}' (it has {} here)", p.name, p.positions.len())));
        }
    }
    let frame_count =
        frame_dim.as_ref().and_then(|d| picked.iter().find(|p| &p.name == d)).map_or(1, |p| p.positions.len());
    if request.kind != Kind::Line && request.kind != Kind::Hist && request.reduce.is_none() && frame_count > max_frames
    {
        return Err(invalid(format!(
            "{frame_count} time steps selected: an animation has at most {max_frames} frames; select fewer or add reduce=mean|min|max"
        )));
    }

    // Read the block spanning every picked position, then keep the picked ones.
    let spans: Vec<(u64, u64)> = picked.iter().map(|p| span(&p.positions)).collect();
    let start: Vec<u64> = spans.iter().map(|s| s.0).collect();
    let count: Vec<u64> = spans.iter().map(|s| s.1).collect();
    let block = cloudify_cf::read::block(host, &meta.id, name, var, &start, &count).await?;
    let positions: Vec<Vec<usize>> =
        picked.iter().zip(&spans).map(|(p, s)| p.positions.iter().map(|&i| i - s.0 as usize).collect()).collect();
    let values = at_positions(&block, &count, &positions);

    // Order: [frame][horizontal...] (other dimensions hold one position each).
    let order: Vec<usize> = frame_dim
        .iter()
        .filter_map(|d| picked.iter().position(|p| &p.name == d))
        .chain(hdims.iter().filter_map(|d| picked.iter().position(|p| &p.name == d)))
        .collect();
    let shape: Vec<usize> = picked.iter().map(|p| p.positions.len()).collect();
    let values = transpose(&values, &shape, &order);
    let per_frame = values.len() / frame_count.max(1);

    let fixed: Vec<String> = picked
        .iter()
        .filter(|p| !hdims.contains(&p.name) && Some(&p.name) != frame_dim.as_ref())
        .map(|p| {
            let note = if p.selected || p.size == 1 {
                ""
            } else if p.role == Role::Time {
                " (last)"
            } else {
                " (first)"
            };
            format!("{} = {}{note}", p.name, p.labels[0])
        })
        .collect();

    let geometry = match &grid {
        Some(grid) if request.kind != Kind::Line => {
            Some(geometry(host, meta, grid, &picked, &order, frame_dim.is_some()).await?)
        }
        _ => None,
    };
    // A single time step still labels its frame.
    let label_dim = frame_dim.clone().or_else(|| picked.iter().find(|p| p.role == Role::Time).map(|p| p.name.clone()));
    let frame_labels: Vec<String> = label_dim
        .as_ref()
        .and_then(|d| picked.iter().find(|p| &p.name == d))
        .map(|p| p.labels.clone())
        .unwrap_or_default();

    let mut frames: Vec<Frame> = if request.kind == Kind::Line {
        let horizontal: Vec<&Picked> = hdims.iter().filter_map(|d| picked.iter().find(|p| &p.name == d)).collect();
        let series =
            area_means(host, meta, name, grid.as_ref(), &horizontal, &values, frame_count, window.as_ref()).await?;
        vec![Frame { label: String::new(), values: series }]
    } else {
        (0..frame_count)
            .map(|f| Frame {
                label: frame_labels.get(f).cloned().unwrap_or_default(),
                values: values[f * per_frame..(f + 1) * per_frame].to_vec(),
            })
            .collect()
    };
    if let (Some(window), Some(geometry)) = (window.as_ref(), geometry.as_ref()) {
        let centres = geometry.centres();
        for frame in &mut frames {
            for (v, (lon, lat)) in frame.values.iter_mut().zip(&centres) {
                if !inside(window, *lon, *lat) {
                    *v = f64::NAN;
                }
            }
        }
    }
    if let (Some(reduce), true) = (request.reduce, frames.len() > 1 && request.kind != Kind::Line) {
        let label = format!("{} of {} to {}", reduce_name(reduce), frames[0].label, frames[frames.len() - 1].label);
        frames = vec![Frame { label, values: reduce_frames(&frames, reduce) }];
    }
    let axis = match (request.kind, frame_dim) {
        (Kind::Line, Some(d)) => {
            picked.iter().find(|p| p.name == d).map(|p| (d.clone(), p.labels.clone(), p.numbers.clone()))
        }
        _ => None,
    };
    let title = text(var, "long_name").or_else(|| text(var, "standard_name")).unwrap_or(name).to_owned();
    Ok(Plotted {
        var: name.to_owned(),
        title,
        units: text(var, "units").unwrap_or_default().to_owned(),
        fixed,
        geometry,
        frames,
        axis,
        window,
    })
}

fn reduce_name(reduce: Reduce) -> &'static str {
    match reduce {
        Reduce::Mean => "mean",
        Reduce::Min => "min",
        Reduce::Max => "max",
    }
}

/// The frames reduced position by position, NaN skipped (NaN where every frame is NaN).
fn reduce_frames(frames: &[Frame], reduce: Reduce) -> Vec<f64> {
    let n = frames[0].values.len();
    (0..n)
        .map(|i| {
            let values = frames.iter().map(|f| f.values[i]).filter(|v| !v.is_nan());
            let (count, result) = values.fold((0usize, None::<f64>), |(c, acc), v| {
                let next = match (reduce, acc) {
                    (_, None) => v,
                    (Reduce::Mean, Some(a)) => a + v,
                    (Reduce::Min, Some(a)) => a.min(v),
                    (Reduce::Max, Some(a)) => a.max(v),
                };
                (c + 1, Some(next))
            });
            match (reduce, result) {
                (_, None) => f64::NAN,
                (Reduce::Mean, Some(sum)) => sum / count as f64,
                (_, Some(v)) => v,
            }
        })
        .collect()
}

/// A row-major array of `shape` with its axes reordered: `order` first (in that order),
/// then the remaining axes (each of length 1 here).
fn transpose(values: &[f64], shape: &[usize], order: &[usize]) -> Vec<f64> {
    let mut axes: Vec<usize> = order.to_vec();
    axes.extend((0..shape.len()).filter(|a| !order.contains(a)));
    if axes.iter().enumerate().all(|(i, &a)| i == a) {
        return values.to_vec();
    }
    let strides: Vec<usize> = (0..shape.len()).map(|d| shape[d + 1..].iter().product()).collect();
    let new_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; axes.len()];
    for _ in 0..values.len() {
        let flat: usize = index.iter().zip(&axes).map(|(&i, &a)| i * strides[a]).sum();
        out.push(values[flat]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < new_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// The positions of the picked horizontal cells, in the order of the values.
async fn geometry(
    host: &Host,
    meta: &DatasetMeta,
    grid: &Grid,
    picked: &[Picked],
    order: &[usize],
    has_frames: bool,
) -> Result<Geometry, Error> {
    let hpicked: Vec<&Picked> = order.iter().skip(usize::from(has_frames)).map(|&i| &picked[i]).collect();
    let degrees = |values: Vec<f64>, var: &str| -> Vec<f64> {
        if meta.variables.get(var).is_some_and(in_radians) {
            values.into_iter().map(f64::to_degrees).collect()
        } else {
            values
        }
    };
    match grid {
        Grid::Regular { lat, lon } => {
            let lat_dim = &meta.variables[lat].dimensions[0];
            let (lat_values, lon_values) = (
                degrees(coordinate_values(host, meta, lat).await?, lat),
                degrees(coordinate_values(host, meta, lon).await?, lon),
            );
            let lat_p = hpicked.iter().find(|p| &p.name == lat_dim).map(|p| p.positions.clone()).unwrap_or_default();
            let lon_p = hpicked.iter().find(|p| &p.name != lat_dim).map(|p| p.positions.clone()).unwrap_or_default();
            // Values come [lat][lon] whatever the variable's order (`gather` puts the
            // grid's dimensions in that order).
            let lat_values: Vec<f64> = lat_p.iter().map(|&i| lat_values[i]).collect();
            let lon_values: Vec<f64> = lon_p.iter().map(|&i| lon_values[i]).collect();
            Ok(Geometry::Regular { lat: lat_values, lon: lon_values })
        }
        Grid::Curvilinear { lat, lon } => {
            let lat_all = degrees(coordinate_values(host, meta, lat).await?, lat);
            let lon_all = degrees(coordinate_values(host, meta, lon).await?, lon);
            let coord_dims = &meta.variables[lat].dimensions;
            let nx_all = meta.dimensions.get(&coord_dims[1]).copied().unwrap_or(0) as usize;
            let (ys, xs) = match hpicked.as_slice() {
                [a, b] if a.name == coord_dims[0] => (&a.positions, &b.positions),
                _ => return Err(invalid("a curvilinear variable whose dimensions are not in its coordinates' order")),
            };
            let at = |all: &[f64]| -> Vec<f64> {
                ys.iter().flat_map(|&y| xs.iter().map(move |&x| y * nx_all + x)).map(|i| all[i]).collect()
            };
            Ok(Geometry::Curvilinear { lat: at(&lat_all), lon: at(&lon_all), ny: ys.len(), nx: xs.len() })
        }
        Grid::Rotated { rlat, rlon, pole } => {
            let (rlat_all, rlon_all) =
                (coordinate_values(host, meta, rlat).await?, coordinate_values(host, meta, rlon).await?);
            let (ys, xs) = match hpicked.as_slice() {
                [a, b] => (&a.positions, &b.positions),
                _ => return Err(invalid("a rotated grid needs two horizontal dimensions")),
            };
            let (mut lat, mut lon) = (Vec::new(), Vec::new());
            for &y in ys {
                for &x in xs {
                    let (true_lon, true_lat) = pole.to_true(rlon_all[x], rlat_all[y]);
                    lat.push(true_lat);
                    lon.push(true_lon);
                }
            }
            Ok(Geometry::Curvilinear { lat, lon, ny: ys.len(), nx: xs.len() })
        }
        Grid::Unstructured { lat, lon } => {
            let cells = &hpicked[0].positions;
            let lat_all = degrees(coordinate_values(host, meta, lat).await?, lat);
            let lon_all = degrees(coordinate_values(host, meta, lon).await?, lon);
            let corners = cell_corners(host, meta, lat, lon, cells).await;
            Ok(Geometry::Cells {
                lat: cells.iter().map(|&c| lat_all[c]).collect(),
                lon: cells.iter().map(|&c| lon_all[c]).collect(),
                corners,
            })
        }
        Grid::Healpix { grid, cells, .. } => {
            let positions = &hpicked[0].positions;
            let ids: Vec<u64> = match cells {
                Some(coord) => {
                    let all = coordinate_values(host, meta, coord).await?;
                    positions.iter().map(|&p| all[p] as u64).collect()
                }
                None => positions.iter().map(|&p| p as u64).collect(),
            };
            healpix_cells(*grid, &ids)
        }
    }
}

fn healpix_cells(grid: Healpix, ids: &[u64]) -> Result<Geometry, Error> {
    let (mut lat, mut lon, mut corners) = (Vec::new(), Vec::new(), Vec::new());
    for &id in ids {
        let (x, y) =
            grid.centre(id).ok_or_else(|| invalid(format!("HEALPix cell {id} is beyond nside {}", grid.nside)))?;
        lat.push(y);
        lon.push(x);
        corners.push(grid.outline(id, 4).unwrap_or_default());
    }
    Ok(Geometry::Cells { lat, lon, corners: Some(corners) })
}

/// Cell corners from the coordinates' CF `bounds` (ICON's `clat_bnds`/`clon_bnds`), when
/// both have them with the cells first.
async fn cell_corners(
    host: &Host,
    meta: &DatasetMeta,
    lat: &str,
    lon: &str,
    cells: &[usize],
) -> Option<Vec<Vec<(f64, f64)>>> {
    let bounds = |name: &str| text(&meta.variables[name], "bounds").map(str::to_owned);
    let (lat_b, lon_b) = (bounds(lat)?, bounds(lon)?);
    let (lat_v, lon_v) = (meta.variables.get(&lat_b)?, meta.variables.get(&lon_b)?);
    let vertices = *lat_v.shape.get(1)? as usize;
    let cell_dim = meta.variables[lat].dimensions.first();
    if lat_v.shape != lon_v.shape || lat_v.shape.len() != 2 || vertices == 0 || lat_v.dimensions.first() != cell_dim {
        return None;
    }
    let radians = in_radians(&meta.variables[lat]) || in_radians(lat_v);
    let convert = |v: f64| if radians { v.to_degrees() } else { v };
    let lat_all = coordinate_values(host, meta, &lat_b).await.ok()?;
    let lon_all = coordinate_values(host, meta, &lon_b).await.ok()?;
    // Bounds over another dimension than the cells' are not theirs: no corners.
    let corner = |all: &[f64], c: usize, k: usize| all.get(c * vertices + k).copied().map(convert);
    cells
        .iter()
        .map(|&c| (0..vertices).map(|k| Some((corner(&lon_all, c, k)?, corner(&lat_all, c, k)?))).collect())
        .collect()
}

/// A line's values: per position along its axis, the mean over the horizontal cells (area
/// weighted: the variable's `cell_measures` area when the dataset has it, else cos(latitude)
/// on latitude/longitude grids and equal weights on cells of equal area (HEALPix) or none
/// given (unstructured)); a single cell's value when one is selected.
#[allow(clippy::too_many_arguments)]
async fn area_means(
    host: &Host,
    meta: &DatasetMeta,
    name: &str,
    grid: Option<&Grid>,
    hdims: &[&Picked],
    values: &[f64],
    steps: usize,
    window: Option<&[f64; 4]>,
) -> Result<Vec<f64>, Error> {
    let per_step = values.len() / steps.max(1);
    if per_step <= 1 {
        return Ok(values.to_vec());
    }
    let weights = match grid {
        Some(grid) => weights(host, meta, name, grid, hdims, per_step, window).await?,
        None => vec![1.0; per_step],
    };
    Ok((0..steps)
        .map(|s| {
            let (sum, total) = values[s * per_step..(s + 1) * per_step]
                .iter()
                .zip(&weights)
                .filter(|(v, w)| !v.is_nan() && **w > 0.0)
                .fold((0.0, 0.0), |(sum, total), (v, w)| (sum + v * w, total + w));
            if total > 0.0 {
                sum / total
            } else {
                f64::NAN
            }
        })
        .collect())
}

async fn weights(
    host: &Host,
    meta: &DatasetMeta,
    name: &str,
    grid: &Grid,
    hdims: &[&Picked],
    cells: usize,
    window: Option<&[f64; 4]>,
) -> Result<Vec<f64>, Error> {
    let positions: Vec<Vec<usize>> = hdims.iter().map(|p| p.positions.clone()).collect();
    let mut w = cloudify_cf::weights::area(host, meta, name, grid, &positions).await?;
    if let Some(window) = window {
        let geometry = geometry_for_weights(host, meta, grid, hdims).await?;
        for (weight, (lon, lat)) in w.iter_mut().zip(geometry.centres()) {
            if !inside(window, lon, lat) {
                *weight = 0.0;
            }
        }
    }
    w.resize(cells, 0.0);
    Ok(w)
}

async fn geometry_for_weights(
    host: &Host,
    meta: &DatasetMeta,
    grid: &Grid,
    hdims: &[&Picked],
) -> Result<Geometry, Error> {
    let picked: Vec<Picked> = hdims
        .iter()
        .map(|p| Picked {
            name: p.name.clone(),
            size: p.size,
            positions: p.positions.clone(),
            labels: Vec::new(),
            numbers: Vec::new(),
            role: p.role,
            selected: p.selected,
        })
        .collect();
    let order: Vec<usize> = (0..picked.len()).collect();
    geometry(host, meta, grid, &picked, &order, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_reordered() {
        // [a][b] to [b][a].
        assert_eq!(transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &[1, 0]), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(transpose(&[1.0, 2.0], &[1, 2], &[1]), [1.0, 2.0]);
    }

    #[test]
    fn frames_reduce_skipping_nan() {
        let frame = |values: Vec<f64>| Frame { label: String::new(), values };
        let frames = [frame(vec![1.0, f64::NAN, f64::NAN]), frame(vec![3.0, 2.0, f64::NAN])];
        let mean = reduce_frames(&frames, Reduce::Mean);
        assert_eq!(&mean[..2], [2.0, 2.0]);
        assert!(mean[2].is_nan());
        assert_eq!(reduce_frames(&frames, Reduce::Max)[0], 3.0);
    }

    #[test]
    fn windows_cross_the_antimeridian() {
        assert!(inside(&[170.0, -170.0, -10.0, 10.0], 179.0, 0.0));
        assert!(inside(&[170.0, -170.0, -10.0, 10.0], 185.0, 0.0));
        assert!(!inside(&[170.0, -170.0, -10.0, 10.0], 0.0, 0.0));
        assert!(!inside(&[-10.0, 10.0, -10.0, 10.0], 0.0, 20.0));
    }
}

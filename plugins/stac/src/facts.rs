//! What a STAC item says about a dataset that only its values tell: the horizontal extent
//! (from the latitude and longitude coordinates, and their cell bounds), the time extent
//! (decoded CF time) and the extent of every other coordinate.

use cloudify_cf::{longitude, role_of, text, time, Role};
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Host, HostExt,
};

/// Coordinates larger than this are not read (their extent is left out).
const MAX_COORDINATE_BYTES: u64 = 256 << 20;

/// The extents of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    /// `[west, south, east, north]` in degrees, west > east when crossing the antimeridian;
    /// `None` without latitude/longitude coordinates.
    pub bbox: Option<[f64; 4]>,
    /// First and last time as RFC 3339, from the time coordinate.
    pub time: Option<(String, String)>,
    /// The role and range of each dimension's coordinate.
    pub dimensions: Vec<Dimension>,
    /// Whether the chunks are stored byte ranges (what `/kerchunk` and reference sets need).
    pub stored_chunks: bool,
    /// Whether the dataset is read from NetCDF files (what `cfa.nc` aggregates).
    pub netcdf_files: bool,
}

/// A dimension as the datacube extension describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dimension {
    pub name: String,
    pub size: u64,
    pub axis: Axis,
    /// Smallest and largest coordinate value (index range without a coordinate variable).
    pub extent: Option<[f64; 2]>,
    /// Every coordinate value, for short non-spatial dimensions.
    pub values: Option<Vec<f64>>,
    pub unit: Option<String>,
    pub description: Option<String>,
}

/// What a dimension measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axis {
    X,
    Y,
    Z,
    Time,
    /// A coordinate that is none of the above (ensemble member, band, ...).
    Other,
    /// No coordinate variable: positions only.
    Index,
}

/// Dimensions with at most this many values list them all.
const MAX_LISTED_VALUES: u64 = 50;

fn axis_of(name: &str, var: &VariableMeta) -> Axis {
    match role_of(name, var) {
        Role::Time => Axis::Time,
        Role::Longitude | Role::X => Axis::X,
        Role::Latitude | Role::Y => Axis::Y,
        Role::Vertical => Axis::Z,
        Role::Other => Axis::Other,
    }
}

/// The decoded values of variable `name` without masked ones; `None` when it is too large,
/// textual or cannot be read.
async fn read_values(host: &Host, dataset: &str, name: &str, var: &VariableMeta) -> Option<Vec<f64>> {
    let count: u64 = var.shape.iter().product();
    if matches!(var.dtype, DataType::Char | DataType::String)
        || count.saturating_mul(var.dtype.size() as u64) > MAX_COORDINATE_BYTES
    {
        return None;
    }
    match cloudify_cf::read::all(host, dataset, name, var, MAX_COORDINATE_BYTES).await {
        Ok(values) => Some(values.into_iter().filter(|v| v.is_finite()).collect()),
        Err(err) => {
            host.log(cloudify_sdk::LogLevel::Warn, &format!("{dataset}/{name}: coordinate not read for STAC: {err}"));
            None
        }
    }
}

/// The values of a coordinate and of its cell bounds (CF `bounds`), if any, in degrees
/// (ICON's `clat`/`clon` are in radians).
async fn with_bounds(host: &Host, meta: &DatasetMeta, name: &str) -> Option<Vec<f64>> {
    let var = meta.variables.get(name)?;
    let mut values = read_values(host, &meta.id, name, var).await?;
    if let Some(bounds) = text(var, "bounds").and_then(|b| meta.variables.get_key_value(b)) {
        values.extend(read_values(host, &meta.id, bounds.0, bounds.1).await.unwrap_or_default());
    }
    if cloudify_cf::grid::in_radians(var) {
        values.iter_mut().for_each(|v| *v = v.to_degrees());
    }
    Some(values)
}

fn min_max(values: &[f64]) -> Option<[f64; 2]> {
    let mut iter = values.iter().copied().filter(|v| v.is_finite());
    let first = iter.next()?;
    Some(iter.fold([first, first], |[lo, hi], v| [lo.min(v), hi.max(v)]))
}

fn rounded(value: f64) -> f64 {
    // Single-precision coordinates widened to f64 carry noise digits.
    (value * 1e6).round() / 1e6
}

/// Reads the coordinates of `meta` and works out its extents.
pub(crate) async fn gather(host: &Host, meta: &DatasetMeta) -> Facts {
    // Cell bounds carry the units of their coordinate; the coordinate is the one to find.
    let bounds: Vec<&str> = meta.variables.values().filter_map(|var| text(var, "bounds")).collect();
    let find = |wanted: Role| {
        meta.variables
            .iter()
            .find(|(name, var)| role_of(name, var) == wanted && !bounds.contains(&name.as_str()))
            .map(|(name, _)| name.clone())
    };
    let (latitude, longitude) = (find(Role::Latitude), find(Role::Longitude));
    let mut bbox = None;
    if let (Some(lat), Some(lon)) = (latitude, longitude) {
        let lats = with_bounds(host, meta, &lat).await.unwrap_or_default();
        let lons = with_bounds(host, meta, &lon).await.unwrap_or_default();
        if let (Some([south, north]), Some([west, east])) = (min_max(&lats), longitude::extent(&lons)) {
            bbox = Some([rounded(west), rounded(south.max(-90.0)), rounded(east), rounded(north.min(90.0))]);
        }
    }
    let time = time_extent(host, meta).await;
    let mut dimensions = Vec::new();
    for (name, &size) in &meta.dimensions {
        let coordinate = meta.variables.get(name).filter(|var| var.dimensions.len() == 1 && var.dimensions[0] == *name);
        let Some(var) = coordinate else {
            let extent = Some([0.0, size.saturating_sub(1) as f64]);
            dimensions.push(Dimension {
                name: name.clone(),
                size,
                axis: Axis::Index,
                extent,
                values: None,
                unit: None,
                description: None,
            });
            continue;
        };
        let axis = axis_of(name, var);
        let values = if axis == Axis::Time { None } else { read_values(host, &meta.id, name, var).await };
        let extent = values.as_deref().and_then(min_max).map(|e| e.map(rounded));
        let listed = matches!(axis, Axis::Other | Axis::Z) && size <= MAX_LISTED_VALUES;
        dimensions.push(Dimension {
            name: name.clone(),
            size,
            axis,
            extent,
            values: values.filter(|_| listed).map(|v| v.into_iter().map(rounded).collect()),
            unit: text(var, "units").map(str::to_owned),
            description: text(var, "long_name").or_else(|| text(var, "standard_name")).map(str::to_owned),
        });
    }
    Facts { bbox, time, dimensions, stored_chunks: false, netcdf_files: false }
}

/// First and last time of the dataset's time coordinate (the dimension coordinate with CF
/// time units, else any variable with them), as RFC 3339.
async fn time_extent(host: &Host, meta: &DatasetMeta) -> Option<(String, String)> {
    let (name, var) = meta
        .variables
        .iter()
        .filter(|(name, var)| role_of(name, var) == Role::Time)
        .min_by_key(|(name, var)| !(var.dimensions.len() == 1 && var.dimensions[0] == **name))?;
    let values = read_values(host, &meta.id, name, var).await?;
    let [first, last] = min_max(&values)?;
    let decoded = match time::TimeAxis::decode(var, &[first, last]) {
        Ok(axis) => axis.dates,
        Err(err) => {
            host.log(cloudify_sdk::LogLevel::Warn, &format!("{}/{name}: time not decoded for STAC: {err}", meta.id));
            return None;
        }
    };
    Some((time::rfc3339(&decoded[0]), time::rfc3339(&decoded[1])))
}

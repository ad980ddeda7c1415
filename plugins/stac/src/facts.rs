//! What a STAC item says about a dataset that only its values tell: the horizontal extent
//! (from the latitude and longitude coordinates, and their cell bounds), the time extent
//! (decoded CF time) and the extent of every other coordinate.

use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Host, HostExt,
};
use serde_json::Value;

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

fn text<'a>(var: &'a VariableMeta, name: &str) -> Option<&'a str> {
    var.attributes.get(name).and_then(Value::as_str)
}

fn is_latitude(name: &str, var: &VariableMeta) -> bool {
    text(var, "standard_name") == Some("latitude")
        || text(var, "units").is_some_and(|u| {
            matches!(u, "degrees_north" | "degree_north" | "degree_N" | "degrees_N" | "degreeN" | "degreesN")
        })
        || (text(var, "standard_name").is_none() && matches!(name, "lat" | "latitude" | "nav_lat"))
}

fn is_longitude(name: &str, var: &VariableMeta) -> bool {
    text(var, "standard_name") == Some("longitude")
        || text(var, "units").is_some_and(|u| {
            matches!(u, "degrees_east" | "degree_east" | "degree_E" | "degrees_E" | "degreeE" | "degreesE")
        })
        || (text(var, "standard_name").is_none() && matches!(name, "lon" | "longitude" | "nav_lon"))
}

/// CF time: units `<unit> since <date>`.
pub(crate) fn is_time(var: &VariableMeta) -> bool {
    text(var, "units").is_some_and(|u| u.contains(" since ")) && var.dtype != DataType::Char
}

fn is_vertical(var: &VariableMeta) -> bool {
    text(var, "axis").is_some_and(|a| a.eq_ignore_ascii_case("z")) || text(var, "positive").is_some()
}

fn axis_of(name: &str, var: &VariableMeta) -> Axis {
    if is_time(var) {
        Axis::Time
    } else if is_longitude(name, var) || text(var, "axis").is_some_and(|a| a.eq_ignore_ascii_case("x")) {
        Axis::X
    } else if is_latitude(name, var) || text(var, "axis").is_some_and(|a| a.eq_ignore_ascii_case("y")) {
        Axis::Y
    } else if is_vertical(var) {
        Axis::Z
    } else {
        Axis::Other
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Array(items) if items.len() == 1 => items[0].as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// Little-endian values of `dtype` as numbers.
pub(crate) fn decode(bytes: &[u8], dtype: DataType) -> Vec<f64> {
    macro_rules! each {
        ($t:ty) => {
            bytes
                .chunks_exact(size_of::<$t>())
                .map(|b| <$t>::from_le_bytes(b.try_into().unwrap_or_default()) as f64)
                .collect()
        };
    }
    match dtype {
        DataType::Bool | DataType::Uint8 | DataType::Char => bytes.iter().map(|&b| f64::from(b)).collect(),
        DataType::Int8 => bytes.iter().map(|&b| f64::from(b as i8)).collect(),
        DataType::Int16 => each!(i16),
        DataType::Int32 => each!(i32),
        DataType::Int64 => each!(i64),
        DataType::Uint16 => each!(u16),
        DataType::Uint32 => each!(u32),
        DataType::Uint64 => each!(u64),
        DataType::Float32 => each!(f32),
        DataType::Float64 => each!(f64),
        // Not numbers: callers read no text (see `read_values`).
        DataType::String => Vec::new(),
    }
}

/// The values of variable `name`, unpacked (`scale_factor`, `add_offset`), without fill
/// and missing values; `None` when it is too large, textual or cannot be read.
async fn read_values(host: &Host, dataset: &str, name: &str, var: &VariableMeta) -> Option<Vec<f64>> {
    let count: u64 = var.shape.iter().product();
    if matches!(var.dtype, DataType::Char | DataType::String)
        || count.saturating_mul(var.dtype.size() as u64) > MAX_COORDINATE_BYTES
    {
        return None;
    }
    let start = vec![0; var.shape.len()];
    let bytes = match host.region(dataset, name, &start, &var.shape).await {
        Ok(bytes) => bytes,
        Err(err) => {
            host.log(cloudify_sdk::LogLevel::Warn, &format!("{dataset}/{name}: coordinate not read for STAC: {err}"));
            return None;
        }
    };
    let missing: Vec<f64> =
        [var.fill_value.clone(), var.attributes.get("missing_value").cloned().unwrap_or(Value::Null)]
            .iter()
            .filter_map(number)
            .collect();
    let scale = var.attributes.get("scale_factor").and_then(number).unwrap_or(1.0);
    let offset = var.attributes.get("add_offset").and_then(number).unwrap_or(0.0);
    Some(
        decode(&bytes, var.dtype)
            .into_iter()
            .filter(|v| v.is_finite() && !missing.contains(v))
            .map(|v| v * scale + offset)
            .collect(),
    )
}

/// The values of a coordinate and of its cell bounds (CF `bounds`), if any, in degrees
/// (ICON's `clat`/`clon` are in radians).
async fn with_bounds(host: &Host, meta: &DatasetMeta, name: &str) -> Option<Vec<f64>> {
    let var = meta.variables.get(name)?;
    let mut values = read_values(host, &meta.id, name, var).await?;
    if let Some(bounds) = text(var, "bounds").and_then(|b| meta.variables.get_key_value(b)) {
        values.extend(read_values(host, &meta.id, bounds.0, bounds.1).await.unwrap_or_default());
    }
    if text(var, "units").is_some_and(|u| u.starts_with("rad")) {
        values.iter_mut().for_each(|v| *v = v.to_degrees());
    }
    Some(values)
}

fn min_max(values: &[f64]) -> Option<[f64; 2]> {
    let mut iter = values.iter().copied().filter(|v| v.is_finite());
    let first = iter.next()?;
    Some(iter.fold([first, first], |[lo, hi], v| [lo.min(v), hi.max(v)]))
}

/// West and east edge of longitudes in any convention (0–360, -180–180), in -180–180:
/// the complement of the widest gap between the covered longitudes, so a region across
/// the antimeridian gets west > east, and a grid covering every longitude -180–180.
pub(crate) fn longitude_range(values: &[f64]) -> Option<[f64; 2]> {
    let [lo, hi] = min_max(values)?;
    if hi - lo >= 360.0 {
        return Some([-180.0, 180.0]);
    }
    let mut wrapped: Vec<f64> =
        values.iter().filter(|v| v.is_finite()).map(|v| (v + 180.0).rem_euclid(360.0) - 180.0).collect();
    wrapped.sort_by(f64::total_cmp);
    wrapped.dedup();
    let (first, last) = (*wrapped.first()?, *wrapped.last()?);
    // The gap across the antimeridian, then each gap between neighbours; a gap must be
    // clearly wider to win, so the equal gaps of a regular global grid keep -180–180.
    let mut widest = (first + 360.0 - last, [first, last]);
    for pair in wrapped.windows(2) {
        let gap = pair[1] - pair[0];
        if gap > widest.0 + 1e-6 * widest.0.max(1.0) {
            widest = (gap, [pair[1], pair[0]]);
        }
    }
    Some(widest.1)
}

fn rounded(value: f64) -> f64 {
    // Single-precision coordinates widened to f64 carry noise digits.
    (value * 1e6).round() / 1e6
}

/// Reads the coordinates of `meta` and works out its extents.
pub(crate) async fn gather(host: &Host, meta: &DatasetMeta) -> Facts {
    // Cell bounds carry the units of their coordinate; the coordinate is the one to find.
    let bounds: Vec<&str> = meta.variables.values().filter_map(|var| text(var, "bounds")).collect();
    let find = |wanted: fn(&str, &VariableMeta) -> bool| {
        meta.variables
            .iter()
            .find(|(name, var)| wanted(name, var) && !bounds.contains(&name.as_str()))
            .map(|(name, _)| name.clone())
    };
    let (latitude, longitude) = (find(is_latitude), find(is_longitude));
    let mut bbox = None;
    if let (Some(lat), Some(lon)) = (latitude, longitude) {
        let lats = with_bounds(host, meta, &lat).await.unwrap_or_default();
        let lons = with_bounds(host, meta, &lon).await.unwrap_or_default();
        if let (Some([south, north]), Some([west, east])) = (min_max(&lats), longitude_range(&lons)) {
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
    Facts { bbox, time, dimensions, stored_chunks: false }
}

/// First and last time of the dataset's time coordinate (the dimension coordinate with CF
/// time units, else any variable with them), as RFC 3339.
async fn time_extent(host: &Host, meta: &DatasetMeta) -> Option<(String, String)> {
    let (name, var) = meta
        .variables
        .iter()
        .filter(|(_, var)| is_time(var))
        .min_by_key(|(name, var)| !(var.dimensions.len() == 1 && var.dimensions[0] == **name))?;
    let values = read_values(host, &meta.id, name, var).await?;
    let [first, last] = min_max(&values)?;
    let units = text(var, "units")?;
    let decoded = match cloudify_cftime::decode(&[first, last], units, text(var, "calendar")) {
        Ok(decoded) => decoded,
        Err(err) => {
            host.log(cloudify_sdk::LogLevel::Warn, &format!("{}/{name}: time not decoded for STAC: {err}", meta.id));
            return None;
        }
    };
    Some((rfc3339(&decoded[0]), rfc3339(&decoded[1])))
}

/// A CF date as an RFC 3339 timestamp. RFC 3339 has Gregorian dates of years 1–9999 only:
/// a day the Gregorian month lacks (360_day's February 30) becomes the month's last day,
/// and years outside the range the nearest end.
pub(crate) fn rfc3339(date: &cloudify_cftime::DateTime) -> String {
    if date.year < 1 {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    if date.year > 9999 {
        return "9999-12-31T23:59:59Z".to_owned();
    }
    let leap = date.year % 4 == 0 && (date.year % 100 != 0 || date.year % 400 == 0);
    let days = match date.month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = date.day.min(days);
    let fraction = if date.microsecond == 0 { String::new() } else { format!(".{:06}", date.microsecond) };
    format!(
        "{:04}-{:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        date.year, date.month, date.hour, date.minute, date.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longitudes_in_any_convention() {
        let global: Vec<f64> = (0..144).map(|i| f64::from(i) * 2.5).collect();
        assert_eq!(longitude_range(&global), Some([-180.0, 177.5]));
        let bounds: Vec<f64> = (0..=144).map(|i| f64::from(i) * 2.5 - 1.25).collect();
        assert_eq!(longitude_range(&bounds), Some([-180.0, 180.0]));
        // 350–370 east of Greenwich, written in 0–360.
        assert_eq!(longitude_range(&[350.0, 355.0, 0.0, 5.0, 10.0]), Some([-10.0, 10.0]));
        // The Pacific across the antimeridian: west > east.
        assert_eq!(longitude_range(&[170.0, 180.0, 190.0]), Some([170.0, -170.0]));
        assert_eq!(longitude_range(&[-20.0, 40.0]), Some([-20.0, 40.0]));
        // Eight points 0–351: every gap 50.14° up to rounding, so the grid stays in one piece.
        let coarse: Vec<f64> = (0..8).map(|i| f64::from(i) * 351.0 / 7.0).collect();
        let [west, east] = longitude_range(&coarse).unwrap();
        assert!((west + 159.428_571).abs() < 1e-5 && (east - 150.428_571).abs() < 1e-5, "{west} {east}");
        assert_eq!(longitude_range(&[]), None);
    }

    #[test]
    fn dates_become_valid_rfc3339() {
        let date = |year, month, day| cloudify_cftime::DateTime {
            year,
            month,
            day,
            hour: 12,
            minute: 0,
            second: 0,
            microsecond: 0,
        };
        assert_eq!(rfc3339(&date(2001, 2, 30)), "2001-02-28T12:00:00Z");
        assert_eq!(rfc3339(&date(2000, 2, 30)), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(&date(1850, 1, 16)), "1850-01-16T12:00:00Z");
        assert_eq!(rfc3339(&date(0, 1, 1)), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(&date(12000, 1, 1)), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn little_endian_values() {
        assert_eq!(decode(&[1, 0, 255, 255], DataType::Int16), vec![1.0, -1.0]);
        assert_eq!(decode(&2.5f32.to_le_bytes(), DataType::Float32), vec![2.5]);
    }
}

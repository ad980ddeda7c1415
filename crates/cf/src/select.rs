//! Selection of a variable's positions by label or by position, in two syntaxes:
//!
//! * the query string: `lat=40:60` (coordinate values from 40 to 60, **both ends included**,
//!   as xarray's `sel(lat=slice(40, 60))`, in either order, so descending axes need no
//!   care; an empty end is open: `lat=40:`), `plev=85000` (the **nearest** value),
//!   `time=2000-01:2000-12` (every time from the start of January to the end of December),
//!   `time=2000-01-16` (the times in that day, or the nearest when there are none), and
//!   `isel.time=-12:` (positions as a Python slice: half-open, negative from the end);
//! * cloudify's path: `time/-12_-1/lat/40_60`, pairs of segments with integer ends, time by
//!   position (`range(-12, -1)`: 11 steps) and other coordinates by value
//!   (`40 <= lat < 60`).
//!
//! Longitude ranges are read in −180–180 and may cross the antimeridian (`lon=170:-170`);
//! the positions come out in the order to draw them (west to east).

use crate::{grid::wrap_degrees, time, time::TimeAxis, Error, Result};

/// How one dimension is selected.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// Values from one label to the other, both included; `None` is an open end.
    Between(Option<String>, Option<String>),
    /// The value nearest to a label (a time label: the times in its period, else the nearest).
    Nearest(String),
    /// Positions `start..stop` as a Python slice.
    Positions {
        /// First position (negative: from the end); `None`: 0.
        start: Option<i64>,
        /// Position after the last; `None`: the end.
        stop: Option<i64>,
    },
    /// cloudify's path pair `low_high`: positions `range(low, high)` along time, values
    /// `low <= v < high` along other coordinates.
    Path(i64, i64),
}

/// The selectors of a request, by dimension name, in the order given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Dimension names and their selectors.
    pub dims: Vec<(String, Selector)>,
}

fn index(text: &str, what: &str) -> Result<Option<i64>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| Error::Selection(format!("{what}: '{text}' is not a position")))
}

impl Selection {
    /// The selectors of query pairs `dim=...` and `isel.dim=...` (see the module docs).
    ///
    /// # Errors
    /// [`Error::Selection`] naming the pair that cannot be read.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut dims = Vec::new();
        for (key, value) in pairs {
            let selector = if let Some(dim) = key.strip_prefix("isel.") {
                let what = format!("isel.{dim}={value}");
                let selector = match value.split_once(':') {
                    Some((start, stop)) => {
                        Selector::Positions { start: index(start, &what)?, stop: index(stop, &what)? }
                    }
                    None => {
                        let at =
                            index(value, &what)?.ok_or_else(|| Error::Selection(format!("{what}: no position")))?;
                        Selector::Positions { start: Some(at), stop: Some(at + 1).filter(|&s| s != 0) }
                    }
                };
                dims.push((dim.to_owned(), selector));
                continue;
            } else {
                match value.split_once(':') {
                    // A time label has colons of its own (`2000-01-01T12:00`): split at the
                    // colon that leaves two labels.
                    Some(_) => split_range(value),
                    None if value.trim().is_empty() => {
                        return Err(Error::Selection(format!("{key}: no value")));
                    }
                    None => Selector::Nearest(value.trim().to_owned()),
                }
            };
            dims.push((key.to_owned(), selector));
        }
        Ok(Self { dims })
    }

    /// The selectors of cloudify's path segments `coord/low_high/...`.
    ///
    /// # Errors
    /// [`Error::Selection`] naming the segment that cannot be read.
    pub fn from_path(segments: &[&str]) -> Result<Self> {
        let segments: Vec<&str> = segments.iter().copied().filter(|s| !s.is_empty()).collect();
        let mut dims = Vec::new();
        for pair in segments.chunks(2) {
            let [name, range] = pair else {
                return Err(Error::Selection(format!("'{}' has no low_high segment after it", pair[0])));
            };
            let bad = || Error::Selection(format!("'{name}/{range}': the range is low_high with integer ends"));
            let (low, high) = range.split_once('_').ok_or_else(bad)?;
            let (low, high) = (low.parse().map_err(|_| bad())?, high.parse().map_err(|_| bad())?);
            dims.push(((*name).to_owned(), Selector::Path(low, high)));
        }
        Ok(Self { dims })
    }

    /// The selector of dimension `dim`, if any.
    pub fn get(&self, dim: &str) -> Option<&Selector> {
        self.dims.iter().find(|(name, _)| name == dim).map(|(_, selector)| selector)
    }
}

/// `a:b` where each side is a label that may hold colons itself (`2000-01-01T06:00`).
fn split_range(value: &str) -> Selector {
    let label = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let colons: Vec<usize> = value.match_indices(':').map(|(i, _)| i).collect();
    // Times carry as many colons on each side: the middle one splits.
    let at = colons[colons.len() / 2];
    Selector::Between(label(&value[..at]), label(&value[at + 1..]))
}

/// What a dimension's positions are labelled with.
#[derive(Debug, Clone, Copy)]
pub enum Coordinate<'a> {
    /// No coordinate variable: positions only.
    Positions,
    /// Numbers; longitudes (degrees) are compared in −180–180.
    Numbers {
        /// The values, one per position.
        values: &'a [f64],
        /// Whether they are longitudes.
        longitude: bool,
    },
    /// Decoded CF time.
    Time(&'a TimeAxis),
}

fn number(label: &str, dim: &str) -> Result<f64> {
    label.trim().parse().map_err(|_| Error::Selection(format!("{dim}: '{label}' is not a number")))
}

/// The positions of a dimension of `size` that `selector` picks, in the order to use them;
/// never empty.
///
/// # Errors
/// [`Error::Selection`]: labels the coordinate cannot compare, or nothing selected.
pub fn pick(dim: &str, selector: &Selector, size: usize, coordinate: Coordinate) -> Result<Vec<usize>> {
    let picked = match (selector, coordinate) {
        (Selector::Positions { start, stop }, _) => python_range(*start, *stop, size),
        (Selector::Path(low, high), Coordinate::Time(_) | Coordinate::Positions) => {
            python_range(Some(*low), Some(*high), size)
        }
        (Selector::Path(low, high), Coordinate::Numbers { values, longitude }) => {
            let (low, high) = (*low as f64, *high as f64);
            by_value(values, longitude, |v| v >= low && v < high, low > high && longitude)
        }
        (Selector::Between(from, to), Coordinate::Numbers { values, longitude }) => {
            let from = from.as_deref().map(|f| number(f, dim)).transpose()?;
            let to = to.as_deref().map(|t| number(t, dim)).transpose()?;
            if longitude {
                let (west, east) = (from.map_or(-180.0, wrap_degrees), to.map_or(180.0, wrap_degrees));
                let crosses = west > east;
                by_value(
                    values,
                    true,
                    |v| if crosses { v >= west || v <= east } else { v >= west && v <= east },
                    crosses,
                )
            } else {
                let (lo, hi) = (from.unwrap_or(f64::NEG_INFINITY), to.unwrap_or(f64::INFINITY));
                let (lo, hi) = if from.is_some() && to.is_some() { (lo.min(hi), lo.max(hi)) } else { (lo, hi) };
                (0..values.len()).filter(|&i| values[i] >= lo && values[i] <= hi).collect()
            }
        }
        (Selector::Between(from, to), Coordinate::Time(axis)) => {
            let start = from.as_deref().map(time::parse_label).transpose()?.map(|p| p.start);
            let end = to.as_deref().map(time::parse_label).transpose()?.map(|p| p.end);
            (0..axis.dates.len())
                .filter(|&i| start.is_none_or(|s| axis.dates[i] >= s) && end.is_none_or(|e| axis.dates[i] < e))
                .collect()
        }
        (Selector::Nearest(label), Coordinate::Numbers { values, longitude }) => {
            let target = number(label, dim)?;
            let distance = |v: f64| {
                if longitude {
                    let d = (wrap_degrees(v) - wrap_degrees(target)).abs();
                    d.min(360.0 - d)
                } else {
                    (v - target).abs()
                }
            };
            let nearest = (0..values.len())
                .filter(|&i| values[i].is_finite())
                .min_by(|&a, &b| distance(values[a]).total_cmp(&distance(values[b])));
            nearest.into_iter().collect()
        }
        (Selector::Nearest(label), Coordinate::Time(axis)) => {
            let period = time::parse_label(label)?;
            let within = axis.within(&period.start, &period.end);
            if within.is_empty() {
                vec![axis.nearest(&period.start)?]
            } else {
                within
            }
        }
        (Selector::Between(..) | Selector::Nearest(_), Coordinate::Positions) => {
            return Err(Error::Selection(format!(
                "{dim} has no coordinate to select by value: select positions with isel.{dim}=..."
            )));
        }
    };
    if picked.is_empty() {
        return Err(Error::Selection(format!("the selection of {dim} picks nothing")));
    }
    Ok(picked)
}

/// Positions of `values` that `keep` accepts (longitudes compared in −180–180), ordered by
/// value when the range crosses the antimeridian or the axis must be drawn west to east.
fn by_value(values: &[f64], longitude: bool, keep: impl Fn(f64) -> bool, crosses: bool) -> Vec<usize> {
    let value = |i: usize| if longitude { wrap_degrees(values[i]) } else { values[i] };
    let mut picked: Vec<usize> = (0..values.len()).filter(|&i| keep(value(i))).collect();
    if longitude {
        // West to east; across the antimeridian, the eastern hemisphere's part first.
        let key = |i: usize| {
            let v = value(i);
            if crosses && v < 0.0 {
                v + 360.0
            } else {
                v
            }
        };
        picked.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    }
    picked
}

/// Python's `range(start, stop)` over `size` positions, negative indices from the end,
/// clamped.
fn python_range(start: Option<i64>, stop: Option<i64>, size: usize) -> Vec<usize> {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let clamp = |i: i64| if i < 0 { (size + i).max(0) } else { i.min(size) };
    let (start, stop) = (clamp(start.unwrap_or(0)), clamp(stop.unwrap_or(size)));
    (start..stop).map(|i| i as usize).collect()
}

/// The smallest contiguous block of positions holding `picked`: `(start, count)`, what a
/// region read fetches.
pub fn span(picked: &[usize]) -> (u64, u64) {
    let lo = picked.iter().copied().min().unwrap_or(0);
    let hi = picked.iter().copied().max().map_or(0, |h| h + 1);
    (lo as u64, (hi - lo) as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn numbers(values: &[f64]) -> Coordinate<'_> {
        Coordinate::Numbers { values, longitude: false }
    }

    #[test]
    fn query_and_path_syntaxes() {
        let query = Selection::from_query([
            ("lat", "40:60"),
            ("plev", "85000"),
            ("time", "2000-01-01T06:00:2000-01-02T12:00"),
            ("isel.member", "-1"),
            ("isel.x", "2:"),
        ])
        .unwrap();
        assert_eq!(query.get("lat"), Some(&Selector::Between(Some("40".into()), Some("60".into()))));
        assert_eq!(query.get("plev"), Some(&Selector::Nearest("85000".into())));
        assert_eq!(
            query.get("time"),
            Some(&Selector::Between(Some("2000-01-01T06:00".into()), Some("2000-01-02T12:00".into())))
        );
        assert_eq!(query.get("member"), Some(&Selector::Positions { start: Some(-1), stop: None }));
        assert_eq!(query.get("x"), Some(&Selector::Positions { start: Some(2), stop: None }));
        assert!(Selection::from_query([("isel.x", "a:b")]).is_err());
        assert!(Selection::from_query([("lat", "")]).is_err());

        let path = Selection::from_path(&["time", "-12_-1", "lat", "40_60", ""]).unwrap();
        assert_eq!(path.dims, [("time".into(), Selector::Path(-12, -1)), ("lat".into(), Selector::Path(40, 60))]);
        let err = Selection::from_path(&["time", "a_b"]).unwrap_err();
        assert!(err.to_string().contains("time/a_b"), "{err}");
        assert!(Selection::from_path(&["time"]).is_err());
    }

    #[test]
    fn numbers_are_picked_inclusively_in_either_order() {
        let lat = [80.0, 60.0, 40.0, 20.0];
        let between = |a: &str, b: &str| Selector::Between(Some(a.into()), Some(b.into()));
        assert_eq!(pick("lat", &between("40", "60"), 4, numbers(&lat)).unwrap(), [1, 2]);
        assert_eq!(pick("lat", &between("60", "40"), 4, numbers(&lat)).unwrap(), [1, 2]);
        assert_eq!(pick("lat", &Selector::Between(Some("50".into()), None), 4, numbers(&lat)).unwrap(), [0, 1]);
        assert_eq!(pick("lat", &Selector::Nearest("33".into()), 4, numbers(&lat)).unwrap(), [2]);
        // cloudify's path: low <= v < high.
        assert_eq!(pick("lat", &Selector::Path(40, 80), 4, numbers(&lat)).unwrap(), [1, 2]);
        assert!(pick("lat", &between("0", "10"), 4, numbers(&lat)).is_err());
        assert!(pick("lat", &between("a", "10"), 4, numbers(&lat)).unwrap_err().to_string().contains("'a'"));
    }

    #[test]
    fn longitudes_in_minus_180_to_180_across_the_antimeridian() {
        let lon: Vec<f64> = (0..8).map(|i| f64::from(i) * 45.0).collect(); // 0..315
        let longitude = Coordinate::Numbers { values: &lon, longitude: true };
        let between = |a: &str, b: &str| Selector::Between(Some(a.into()), Some(b.into()));
        // -90..45 on a 0–360 axis: 270, 315, 0, 45, west to east.
        assert_eq!(pick("lon", &between("-90", "45"), 8, longitude).unwrap(), [6, 7, 0, 1]);
        // 135..-135 crosses the antimeridian: 135, 180, 225.
        assert_eq!(pick("lon", &between("135", "-135"), 8, longitude).unwrap(), [3, 4, 5]);
        assert_eq!(pick("lon", &Selector::Nearest("-44".into()), 8, longitude).unwrap(), [7]);
    }

    #[test]
    fn positions_as_python_slices() {
        let size = 10;
        let positions = |start, stop| Selector::Positions { start, stop };
        assert_eq!(pick("t", &positions(Some(-3), None), size, Coordinate::Positions).unwrap(), [7, 8, 9]);
        assert_eq!(pick("t", &Selector::Path(-12, -1), 12, Coordinate::Positions).unwrap().len(), 11);
        assert_eq!(pick("t", &positions(Some(2), Some(100)), size, Coordinate::Positions).unwrap().len(), 8);
        assert!(pick("t", &positions(Some(5), Some(2)), size, Coordinate::Positions).is_err());
        let by_value = pick("t", &Selector::Nearest("1".into()), size, Coordinate::Positions).unwrap_err();
        assert!(by_value.to_string().contains("isel.t"));
        assert_eq!(span(&[7, 2, 4]), (2, 6));
    }

    #[test]
    fn times_by_period() {
        let var = serde_json::from_value(json!({"dtype": "float64", "dimensions": ["time"], "shape": [24],
            "chunks": [24], "attributes": {"units": "days since 2000-01-01", "calendar": "noleap"}}))
        .unwrap();
        let mid_months: Vec<f64> = (0..24).map(|m| f64::from(m) * 365.0 / 12.0 + 15.0).collect();
        let axis = TimeAxis::decode(&var, &mid_months).unwrap();
        let time = Coordinate::Time(&axis);
        let year = Selector::Between(Some("2001-01".into()), Some("2001-12".into()));
        assert_eq!(pick("time", &year, 24, time).unwrap(), (12..24).collect::<Vec<_>>());
        assert_eq!(pick("time", &Selector::Nearest("2000-03".into()), 24, time).unwrap(), [2]);
        // No time in that day: the nearest.
        assert_eq!(pick("time", &Selector::Nearest("2000-03-01".into()), 24, time).unwrap(), [1]);
        assert_eq!(pick("time", &Selector::Path(-12, -1), 24, time).unwrap().len(), 11);
        assert!(pick("time", &Selector::Nearest("March".into()), 24, time).is_err());
    }
}

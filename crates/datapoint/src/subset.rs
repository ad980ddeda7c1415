//! DataPoint's single-search selection: the variables, bbox and time of a search applied to
//! an opened product, read chunk by chunk and written as a CF NetCDF4 file.

use std::{collections::HashMap, path::Path};

use cloudify_cf::{
    grid::in_radians,
    role_of,
    select::{pick, Coordinate},
    time::TimeAxis,
    values::from_le_bytes,
    Decoding, Role, Selection, Selector,
};
use cloudify_dataset::{
    hyperslab, read_region, read_region_counted, DataType, DatasetMeta, SharedSource, VariableMeta,
};
use indexmap::IndexMap;

use crate::{Error, Result, Search};

/// Coordinates larger than this are not read to select by.
const MAX_COORDINATE_BYTES: u64 = 256 << 20;

/// What to take out of a product.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSelection {
    /// Variables to keep, with their coordinates (empty: every variable).
    pub variables: Vec<String>,
    /// `[west, south, east, north]` in degrees: along 1-D latitude and longitude dimension
    /// coordinates, both ends included; longitudes may cross the antimeridian.
    pub bbox: Option<[f64; 4]>,
    /// A time range along the time dimension.
    pub time: Option<TimeRange>,
    /// More selectors `dim=label` (cloudify's query syntax: `plev=85000`, `lat=40:60`,
    /// `isel.time=-12:`).
    pub sel: Vec<(String, String)>,
}

impl DataSelection {
    /// The selection a search implies (DataPoint's "single-search selection"): its bbox, its
    /// datetime and a `variables=` query term.
    pub fn from_search(search: &Search) -> Self {
        let time = search.datetime_value().map(|datetime| {
            let label = |end: &str| {
                let end = end.trim();
                // RFC 3339 fractions of seconds and offsets are finer than selection labels.
                let end = end.split('.').next().unwrap_or(end).trim_end_matches('Z');
                Some(end.to_owned()).filter(|e| !e.is_empty())
            };
            match datetime.split_once('/') {
                Some((start, end)) => TimeRange { start: label(start), end: label(end) },
                None => TimeRange { start: label(datetime), end: label(datetime) },
            }
        });
        let variables = search
            .query_terms()
            .iter()
            .filter_map(|term| term.strip_prefix("variables")?.trim_start().strip_prefix('='))
            .flat_map(|names| names.split(',').map(|n| n.trim().to_owned()))
            .filter(|n| !n.is_empty())
            .collect();
        Self { variables, bbox: search.bbox_value(), time, sel: Vec::new() }
    }
}

/// Times from one label to another, both included to the end of the period they name
/// (`2000`, `2000-01`, `2000-01-16T12:00`); `None` is an open end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// The first label.
    pub start: Option<String>,
    /// The last label.
    pub end: Option<String>,
}

impl TimeRange {
    /// `start:end` (either may be empty), or one label for its period.
    ///
    /// # Errors
    /// [`Error::Selection`] for an empty text.
    pub fn parse(text: &str) -> Result<Self> {
        match Selection::from_query([("time", text)]).map_err(|e| Error::Selection(e.to_string()))?.dims.pop() {
            Some((_, Selector::Between(start, end))) => Ok(Self { start, end }),
            _ => Ok(Self { start: Some(text.trim().to_owned()), end: Some(text.trim().to_owned()) }),
        }
    }
}

/// Positions along one dimension: runs `(start, count)` in the order they are written.
type Runs = Vec<(u64, u64)>;

/// What a selection takes out of a source: the variables, their shapes and the runs of
/// positions read along each dimension.
pub struct Subset {
    source: SharedSource,
    meta: DatasetMeta,
    runs: IndexMap<String, Runs>,
    left_out: Vec<(String, String)>,
}

/// Consecutive runs of `positions`, in their order.
fn runs_of(positions: &[usize]) -> Runs {
    let mut runs: Runs = Vec::new();
    for &p in positions {
        match runs.last_mut() {
            Some((start, count)) if *start + *count == p as u64 => *count += 1,
            _ => runs.push((p as u64, 1)),
        }
    }
    runs
}

/// The variable that is dimension `dim`'s coordinate (1-D, named like it).
fn dimension_coordinate<'m>(meta: &'m DatasetMeta, dim: &str) -> Option<&'m VariableMeta> {
    meta.variables.get(dim).filter(|v| v.dimensions.len() == 1 && v.dimensions[0] == dim)
}

/// Variables `wanted` needs beside itself: its dimensions' coordinates, those its
/// `coordinates` attribute names, their bounds and its grid mapping.
fn companions(meta: &DatasetMeta, name: &str) -> Vec<String> {
    let Some(var) = meta.variables.get(name) else { return Vec::new() };
    let text = |v: &VariableMeta, key: &str| v.attributes.get(key).and_then(|a| a.as_str()).map(str::to_owned);
    let mut names: Vec<String> =
        var.dimensions.iter().filter(|d| dimension_coordinate(meta, d).is_some()).cloned().collect();
    names.extend(text(var, "coordinates").iter().flat_map(|c| c.split_whitespace().map(str::to_owned)));
    // A grid mapping is `crs` or `crs: lat lon`.
    names.extend(
        text(var, "grid_mapping")
            .iter()
            .flat_map(|g| g.split_whitespace().next().map(|s| s.trim_end_matches(':').to_owned())),
    );
    let bounds: Vec<String> =
        names.iter().filter_map(|n| meta.variables.get(n).and_then(|c| text(c, "bounds"))).collect();
    names.extend(bounds);
    names.retain(|n| n != name && meta.variables.contains_key(n));
    names
}

impl Subset {
    /// What `selection` takes out of `source`: its coordinates are read to find the
    /// positions.
    ///
    /// # Errors
    /// [`Error::Selection`]: none of the variables named is there, a bbox without 1-D
    /// latitude and longitude dimensions, a time without a time dimension, a range that
    /// selects nothing.
    pub async fn of(source: SharedSource, selection: &DataSelection) -> Result<Self> {
        let meta = source.metadata().map_err(|e| Error::Read(e.to_string()))?;
        let mut left_out = Vec::new();
        let mut kept: Vec<String> = if selection.variables.is_empty() {
            meta.variables.keys().cloned().collect()
        } else {
            let (present, absent): (Vec<&String>, Vec<&String>) =
                selection.variables.iter().partition(|v| meta.variables.contains_key(v.as_str()));
            if present.is_empty() {
                let there: Vec<&str> = meta.variables.keys().map(String::as_str).collect();
                return Err(Error::Selection(format!(
                    "none of the variables [{}] is in {}: there are [{}]",
                    selection.variables.join(", "),
                    meta.id,
                    there.join(", ")
                )));
            }
            for name in absent {
                tracing::warn!(dataset = meta.id, variable = name, "not in the dataset: left out");
                left_out.push((name.clone(), "not in the dataset".to_owned()));
            }
            let mut names: Vec<String> = present.into_iter().cloned().collect();
            let needed: Vec<String> = names.iter().flat_map(|n| companions(&meta, n)).collect();
            names.extend(needed);
            names
        };
        // In the dataset's order, once each.
        kept = meta.variables.keys().filter(|n| kept.contains(n)).cloned().collect();
        kept.retain(|name| {
            let var = &meta.variables[name];
            let text = matches!(var.dtype, DataType::Char | DataType::String);
            if text {
                left_out.push((name.clone(), "text variables are not written".to_owned()));
            }
            !text
        });

        let mut selectors = Selection::from_query(selection.sel.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| Error::Selection(e.to_string()))?;
        let dims: Vec<String> = meta
            .dimensions
            .keys()
            .filter(|d| kept.iter().any(|n| meta.variables[n].dimensions.contains(d)))
            .cloned()
            .collect();
        let role = |dim: &str| dimension_coordinate(&meta, dim).map_or(Role::Other, |c| role_of(dim, c));
        let find = |wanted: Role| dims.iter().find(|d| role(d) == wanted).cloned();
        if let Some([west, south, east, north]) = selection.bbox {
            let (Some(lat), Some(lon)) = (find(Role::Latitude), find(Role::Longitude)) else {
                return Err(Error::Selection(format!(
                    "a bbox needs 1-D latitude and longitude dimensions; {} has none (curvilinear or unstructured grid): select by position with sel",
                    meta.id
                )));
            };
            selectors.dims.push((lat, Selector::Between(Some(south.to_string()), Some(north.to_string()))));
            selectors.dims.push((lon, Selector::Between(Some(west.to_string()), Some(east.to_string()))));
        }
        if let Some(range) = &selection.time {
            let Some(time) = find(Role::Time) else {
                return Err(Error::Selection(format!("a time range needs a time dimension; {} has none", meta.id)));
            };
            selectors.dims.push((time, Selector::Between(range.start.clone(), range.end.clone())));
        }
        for (dim, _) in &selectors.dims {
            if !dims.contains(dim) {
                return Err(Error::Selection(format!("'{dim}' is not a dimension of the variables selected")));
            }
        }

        let mut runs = IndexMap::new();
        let mut out = (*meta).clone();
        for dim in &dims {
            let size = meta.dimensions[dim];
            let dim_runs = match selectors.get(dim) {
                None => vec![(0, size)],
                Some(selector) => {
                    let positions = positions(&source, &meta, dim, selector).await?;
                    runs_of(&positions)
                }
            };
            out.dimensions.insert(dim.clone(), dim_runs.iter().map(|r| r.1).sum());
            runs.insert(dim.clone(), dim_runs);
        }
        out.dimensions.retain(|d, _| dims.contains(d));
        out.unlimited.retain(|d| dims.contains(d));
        out.variables.retain(|name, _| kept.contains(name));
        for var in out.variables.values_mut() {
            var.shape = var.dimensions.iter().map(|d| out.dimensions[d]).collect();
            var.chunks = var.chunks.iter().zip(&var.shape).map(|(&c, &n)| c.min(n).max(1)).collect();
        }
        Ok(Self { source, meta: out, runs, left_out })
    }

    /// The metadata of what is selected (shapes cut to the selection).
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }

    /// Variables named but not taken, and why.
    pub fn left_out(&self) -> &[(String, String)] {
        &self.left_out
    }

    /// The blocks each variable is read in: the combinations of its dimensions' runs, as
    /// `(start, count)` in the source and the origin in the output.
    fn blocks(&self, name: &str) -> Vec<(Vec<u64>, Vec<u64>, Vec<u64>)> {
        let var = &self.meta.variables[name];
        let mut blocks = vec![(Vec::new(), Vec::new(), Vec::new())];
        for dim in &var.dimensions {
            let mut next = Vec::new();
            for (start, count, origin) in &blocks {
                let mut at = 0;
                for &(run_start, run_count) in &self.runs[dim] {
                    let extend = |v: &Vec<u64>, x: u64| {
                        let mut v = v.clone();
                        v.push(x);
                        v
                    };
                    next.push((extend(start, run_start), extend(count, run_count), extend(origin, at)));
                    at += run_count;
                }
            }
            blocks = next;
        }
        blocks
    }

    /// The chunks of the source the selection reads (a progress bar's length).
    ///
    /// # Errors
    /// A source whose metadata cannot be read.
    pub fn chunks(&self) -> Result<u64> {
        let source = self.source.metadata().map_err(|e| Error::Read(e.to_string()))?;
        let mut total = 0u64;
        for name in self.meta.variables.keys() {
            let chunks = &source.variables[name].chunks;
            for (start, count, _) in self.blocks(name) {
                let touched: u64 = (0..start.len())
                    .map(|d| {
                        if count[d] == 0 {
                            0
                        } else {
                            (start[d] + count[d] - 1) / chunks[d] - start[d] / chunks[d] + 1
                        }
                    })
                    .product();
                total = total.saturating_add(touched);
            }
        }
        Ok(total)
    }

    /// The bytes the selection holds.
    pub fn bytes(&self) -> u64 {
        self.meta
            .variables
            .values()
            .map(|v| v.shape.iter().product::<u64>().saturating_mul(v.dtype.size() as u64))
            .fold(0, u64::saturating_add)
    }

    /// Every selected variable's values (little-endian, C order, as stored: packed values
    /// stay packed, their attributes say how to unpack), calling `tick` per chunk read.
    ///
    /// # Errors
    /// [`Error::Selection`] when the selection holds more than `limit` bytes; [`Error::Read`]
    /// for a failed chunk read.
    pub async fn read(&self, limit: u64, tick: &(dyn Fn() + Sync)) -> Result<HashMap<String, Vec<u8>>> {
        let bytes = self.bytes();
        if bytes > limit {
            return Err(Error::Selection(format!("the selection holds {bytes} bytes, more than {limit}: select less")));
        }
        let mut arrays = HashMap::new();
        for (name, var) in &self.meta.variables {
            let elem = var.dtype.size();
            let mut out = vec![0u8; (var.shape.iter().product::<u64>() as usize) * elem];
            for (start, count, origin) in self.blocks(name) {
                let block = read_region_counted(&*self.source, name, &start, &count, limit, tick)
                    .await
                    .map_err(|e| Error::Read(format!("{name}: {e}")))?;
                let zero = vec![0; count.len()];
                let (source_layout, out_layout) =
                    (hyperslab::Layout { shape: &count, elem }, hyperslab::Layout { shape: &var.shape, elem });
                hyperslab::copy_block(&block, source_layout, &zero, &mut out, out_layout, &origin, &count);
            }
            arrays.insert(name.clone(), out);
        }
        Ok(arrays)
    }

    /// Writes `arrays` (from [`Subset::read`]) as a NetCDF4 file at `path`.
    ///
    /// # Errors
    /// [`Error::Read`] when libnetcdf fails.
    pub fn write(&self, path: &Path, arrays: &HashMap<String, Vec<u8>>) -> Result<()> {
        cloudify_netcdf::write_netcdf4(path, &self.meta, arrays).map_err(|e| Error::Read(e.to_string()))
    }
}

/// The positions of dimension `dim` that `selector` picks, by its coordinate's values.
async fn positions(source: &SharedSource, meta: &DatasetMeta, dim: &str, selector: &Selector) -> Result<Vec<usize>> {
    let size = usize::try_from(meta.dimensions[dim]).map_err(|_| Error::Selection(format!("'{dim}' is too long")))?;
    let Some(coord) = dimension_coordinate(meta, dim) else {
        return pick(dim, selector, size, Coordinate::Positions).map_err(|e| Error::Selection(e.to_string()));
    };
    let raw = read_region(&**source, dim, &[0], &coord.shape, MAX_COORDINATE_BYTES)
        .await
        .map_err(|e| Error::Read(format!("{dim}: {e}")))?;
    let mut values = from_le_bytes(&raw, coord.dtype);
    Decoding::of(coord).apply(&mut values);
    let role = role_of(dim, coord);
    if role == Role::Longitude && in_radians(coord) {
        values.iter_mut().for_each(|v| *v = v.to_degrees());
    }
    let picked = if role == Role::Time {
        let axis = TimeAxis::decode(coord, &values).map_err(|e| Error::Selection(format!("{dim}: {e}")))?;
        pick(dim, selector, size, Coordinate::Time(&axis))
    } else {
        pick(dim, selector, size, Coordinate::Numbers { values: &values, longitude: role == Role::Longitude })
    };
    let picked = picked.map_err(|e| Error::Selection(e.to_string()))?;
    if picked.is_empty() {
        return Err(Error::Selection(format!("the selection of '{dim}' holds no position")));
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cloudify_dataset::demo_dataset;

    use super::*;

    fn demo() -> SharedSource {
        Arc::new(demo_dataset("demo").unwrap())
    }

    #[test]
    fn runs_split_where_positions_jump() {
        assert_eq!(runs_of(&[3, 4, 5, 9, 0, 1]), [(3, 3), (9, 1), (0, 2)]);
        assert!(runs_of(&[]).is_empty());
    }

    #[test]
    fn searches_imply_selections() {
        let search = Search::new()
            .bbox([-10.0, 40.0, 10.0, 60.0])
            .datetime("2000-01-01T00:00:00.000Z/..")
            .query(["variables=tas,pr", "source_id=X"]);
        let selection = DataSelection::from_search(&search);
        assert_eq!(selection.variables, ["tas", "pr"]);
        assert_eq!(selection.bbox, Some([-10.0, 40.0, 10.0, 60.0]));
        assert_eq!(selection.time, Some(TimeRange { start: Some("2000-01-01T00:00:00".to_owned()), end: None }));
        assert_eq!(TimeRange::parse("2000-01:2000-12").unwrap().end.as_deref(), Some("2000-12"));
        assert_eq!(TimeRange::parse("2000-01-01T06:00:").unwrap().start.as_deref(), Some("2000-01-01T06:00"));
        assert_eq!(
            TimeRange::parse("2001").unwrap(),
            TimeRange { start: Some("2001".into()), end: Some("2001".into()) }
        );
    }

    #[tokio::test]
    async fn a_bbox_and_time_cut_the_variable_and_its_coordinates() {
        let source = demo();
        let meta = source.metadata().unwrap();
        let var = meta.variables.keys().find(|n| meta.variables[*n].dimensions.len() == 3).unwrap().clone();
        let selection = DataSelection {
            variables: vec![var.clone()],
            bbox: Some([0.0, 0.0, 30.0, 30.0]),
            time: None,
            sel: vec![("isel.time".to_owned(), "0:2".to_owned())],
        };
        let subset = Subset::of(Arc::clone(&source), &selection).await.unwrap();
        let out = subset.meta();
        let lat = &out.variables["lat"];
        assert!(lat.shape[0] > 0 && lat.shape[0] < meta.dimensions["lat"]);
        assert_eq!(out.dimensions["time"], 2);
        assert_eq!(out.variables[&var].shape, [2, out.dimensions["lat"], out.dimensions["lon"]]);
        let ticks = std::sync::atomic::AtomicU64::new(0);
        let arrays = subset
            .read(u64::MAX, &|| {
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        assert_eq!(ticks.into_inner(), subset.chunks().unwrap());
        // Every latitude kept is in the box, and they are the source's, in order.
        let lats = from_le_bytes(&arrays["lat"], lat.dtype);
        assert!(lats.iter().all(|&l| (0.0..=30.0).contains(&l)), "{lats:?}");
        let all = from_le_bytes(
            &read_region(&*source, "lat", &[0], &meta.variables["lat"].shape, u64::MAX).await.unwrap(),
            lat.dtype,
        );
        let first = all.iter().position(|&l| l == lats[0]).unwrap();
        assert_eq!(&all[first..first + lats.len()], &lats[..]);
        assert_eq!(
            arrays[&var].len() as u64,
            out.variables[&var].shape.iter().product::<u64>() * out.variables[&var].dtype.size() as u64
        );
    }

    #[tokio::test]
    async fn selections_that_name_nothing_are_refused() {
        let only_missing = DataSelection { variables: vec!["nope".to_owned()], ..Default::default() };
        let err = Subset::of(demo(), &only_missing).await.err().unwrap().to_string();
        assert!(err.contains("none of the variables [nope]"), "{err}");
        let outside = DataSelection { time: Some(TimeRange::parse("1066:1067").unwrap()), ..Default::default() };
        assert!(Subset::of(demo(), &outside).await.is_err());
        let too_big = Subset::of(demo(), &DataSelection::default()).await.unwrap();
        assert!(too_big.read(16, &|| ()).await.unwrap_err().to_string().contains("more than 16"));
    }
}

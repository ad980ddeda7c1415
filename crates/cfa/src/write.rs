//! The aggregation file of a dataset served from files: each variable whose chunks lie in
//! whole files becomes a CF-1.13 aggregation variable over those files, every other one is
//! written with its values. What comes out is metadata plus values for a NetCDF4 writer.

use std::collections::HashMap;

use cloudify_dataset::{
    hyperslab::{ravel, unravel},
    read_region, strings, ChunkRef, DataType, DatasetMeta, Error, Result, Source, VariableMeta,
};
use indexmap::IndexMap;
use serde_json::{json, Value};

/// How one variable splits into fragment files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentGrid {
    /// Per dimension, the fragments' lengths along it.
    pub sizes: Vec<Vec<u64>>,
    /// Per fragment (C order), the index of its file.
    pub files: Vec<usize>,
}

/// The fragments of `var` from where its chunks are: per chunk (C order over the chunk
/// grid) the index of the file holding it, `None` for a chunk never written. `None` when the
/// chunks do not split into boxes of one file each (a file holding two separate regions, a
/// region of several files, or a region without any written chunk).
pub fn fragments_of(var: &VariableMeta, chunk_files: &[Option<usize>]) -> Option<FragmentGrid> {
    let grid = var.chunk_grid();
    if chunk_files.len() as u64 != grid.iter().product::<u64>() || chunk_files.is_empty() {
        return None;
    }
    // Along each dimension, where the file changes between neighbouring chunks.
    let mut cuts: Vec<Vec<u64>> = grid.iter().map(|_| vec![0]).collect();
    for (flat, file) in chunk_files.iter().enumerate() {
        let Some(file) = file else { continue };
        let index = unravel(flat as u64, &grid);
        for d in 0..grid.len() {
            if index[d] == 0 {
                continue;
            }
            let mut before = index.clone();
            before[d] -= 1;
            if chunk_files[ravel(&before, &grid) as usize].is_some_and(|other| other != *file)
                && !cuts[d].contains(&index[d])
            {
                cuts[d].push(index[d]);
            }
        }
    }
    for (cut, &n) in cuts.iter_mut().zip(&grid) {
        cut.sort_unstable();
        cut.push(n);
    }
    let counts: Vec<u64> = cuts.iter().map(|c| c.len() as u64 - 1).collect();
    let mut files = vec![None; counts.iter().product::<u64>() as usize];
    for (flat, file) in chunk_files.iter().enumerate() {
        let Some(file) = file else { continue };
        let index = unravel(flat as u64, &grid);
        let box_at: Vec<u64> =
            index.iter().zip(&cuts).map(|(i, cut)| cut.partition_point(|c| c <= i) as u64 - 1).collect();
        let slot = &mut files[ravel(&box_at, &counts) as usize];
        match slot {
            None => *slot = Some(*file),
            Some(other) if other == file => {}
            Some(_) => return None,
        }
    }
    let files: Vec<usize> = files.into_iter().collect::<Option<_>>()?;
    let mut seen = files.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != files.len() {
        return None;
    }
    let sizes = cuts
        .iter()
        .zip(&var.chunks)
        .zip(&var.shape)
        .map(|((cut, &c), &n)| cut.windows(2).map(|w| (w[1] * c).min(n) - w[0] * c).collect())
        .collect();
    Some(FragmentGrid { sizes, files })
}

/// The aggregation file: `meta`'s variables in `grids` as aggregation variables over the
/// fragment files named `uris` (indexed by [`FragmentGrid::files`]; each holds the variable
/// under its own name), those in `values` (little-endian C order; strings in
/// [`strings`]' layout) with their values, the rest left out.
pub fn aggregation_file(
    meta: &DatasetMeta,
    grids: &IndexMap<String, FragmentGrid>,
    uris: &[String],
    values: HashMap<String, Vec<u8>>,
) -> (DatasetMeta, HashMap<String, Vec<u8>>) {
    let mut attributes = meta.attributes.clone();
    attributes.insert("Conventions".to_owned(), json!("CF-1.13"));
    let mut out = DatasetMeta {
        id: meta.id.clone(),
        attributes,
        dimensions: IndexMap::new(),
        unlimited: Vec::new(),
        variables: IndexMap::new(),
        last_modified: meta.last_modified,
    };
    let mut arrays = values;
    // Variables split the same way share one map and one set of URIs.
    let mut shared: Vec<(&Vec<String>, &FragmentGrid)> = Vec::new();
    for (name, var) in &meta.variables {
        for (dim, size) in var.dimensions.iter().zip(&var.shape) {
            out.dimensions.insert(dim.clone(), *size);
        }
        let Some(grid) = grids.get(name) else {
            if arrays.contains_key(name) {
                // Written whole, unchunked: the source's chunking may exceed a fixed dimension
                // (libnetcdf chunks an unlimited time axis by 1024).
                let mut written = var.clone();
                written.chunks.clone_from(&var.shape);
                out.variables.insert(name.clone(), written);
            }
            continue;
        };
        let k = match shared.iter().position(|(dims, g)| *dims == &var.dimensions && *g == grid) {
            Some(k) => k,
            None => {
                shared.push((&var.dimensions, grid));
                fragment_variables(&mut out, &mut arrays, shared.len() - 1, &var.dimensions, grid, uris);
                shared.len() - 1
            }
        };
        let identifiers = format!("fragment_identifiers_{name}");
        out.variables.insert(identifiers.clone(), text_variable(Vec::new()));
        arrays.insert(identifiers.clone(), strings::encode([name.as_bytes()]));
        let mut aggregation = var.clone();
        aggregation.dimensions.clear();
        aggregation.shape.clear();
        aggregation.chunks.clear();
        aggregation.codecs.clear();
        aggregation.attributes.insert("aggregated_dimensions".to_owned(), json!(var.dimensions.join(" ")));
        aggregation.attributes.insert(
            "aggregated_data".to_owned(),
            json!(format!("map: fragment_map_{k} uris: fragment_uris_{k} identifiers: {identifiers}")),
        );
        arrays.insert(name.clone(), cloudify_dataset::fill_element(var));
        out.variables.insert(name.clone(), aggregation);
    }
    (out, arrays)
}

/// An aggregation file's contents: metadata, values by variable, and the variables left
/// out with the reason.
pub struct Contents {
    /// The file's metadata.
    pub meta: DatasetMeta,
    /// Little-endian C-order values (strings in [`strings`]' layout) of every variable.
    pub arrays: HashMap<String, Vec<u8>>,
    /// Variables that could neither be aggregated nor written with their values.
    pub left_out: Vec<(String, String)>,
}

/// The aggregation file of `source`: data variables whose chunks lie in whole NetCDF files
/// as aggregation variables over them, coordinates and every other variable with its values
/// (at most `max_value_bytes` in all). `uri` names file `i` of [`Source::files`] as the
/// aggregation file refers to it.
///
/// # Errors
/// A read failing.
pub async fn from_source(
    source: &dyn Source,
    uri: impl Fn(usize, &str) -> String,
    max_value_bytes: u64,
) -> Result<Contents> {
    let meta = source.metadata()?;
    let files = source.files();
    let mut netcdf = Vec::with_capacity(files.len());
    for file in &files {
        let head = source.read_file(file, 0, 8).await.unwrap_or_default();
        netcdf.push(head.starts_with(b"CDF") || head.starts_with(b"\x89HDF\r\n\x1a\n"));
    }
    let coordinates = meta.coordinate_names();
    let (mut grids, mut values, mut left_out) = (IndexMap::new(), HashMap::new(), Vec::new());
    let mut budget = max_value_bytes;
    for (name, var) in &meta.variables {
        let numeric = !matches!(var.dtype, DataType::Char | DataType::String);
        if numeric && !coordinates.contains(&name.as_str()) && !var.shape.is_empty() {
            if let Some(grid) = grid_of(source, name, var, &files, &netcdf).await? {
                grids.insert(name.clone(), grid);
                continue;
            }
        }
        match whole(source, name, var, budget).await? {
            Ok(bytes) => {
                budget -= bytes.len() as u64;
                values.insert(name.clone(), bytes);
            }
            Err(reason) => left_out.push((name.clone(), reason)),
        }
    }
    let uris: Vec<String> = files.iter().enumerate().map(|(i, file)| uri(i, file)).collect();
    let (meta, arrays) = aggregation_file(&meta, &grids, &uris, values);
    Ok(Contents { meta, arrays, left_out })
}

/// The fragments of `name`, when every chunk is a byte range of a NetCDF file (or never
/// written) and they split into whole files.
async fn grid_of(
    source: &dyn Source,
    name: &str,
    var: &VariableMeta,
    files: &[String],
    netcdf: &[bool],
) -> Result<Option<FragmentGrid>> {
    let grid = var.chunk_grid();
    let count = grid.iter().product::<u64>();
    let mut chunk_files = Vec::with_capacity(count.min(1 << 20) as usize);
    for flat in 0..count {
        match source.chunk_ref(name, &unravel(flat, &grid)).await {
            Ok(ChunkRef::Range { url, .. }) => match files.iter().position(|f| f.as_str() == url.as_str()) {
                Some(i) if netcdf[i] => chunk_files.push(Some(i)),
                _ => return Ok(None),
            },
            Ok(ChunkRef::Missing) => chunk_files.push(None),
            Ok(_) | Err(Error::Unsupported { .. }) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
    Ok(fragments_of(var, &chunk_files))
}

/// All values of `name`, if they fit in `budget` bytes and a NetCDF writer takes them.
async fn whole(source: &dyn Source, name: &str, var: &VariableMeta, budget: u64) -> Result<Result<Vec<u8>, String>> {
    let count = var.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).unwrap_or(u64::MAX);
    match var.dtype {
        DataType::Char => Ok(Err("character arrays are not written".to_owned())),
        DataType::String if var.chunks != var.shape => Ok(Err("strings in several chunks are not written".to_owned())),
        DataType::String => Ok(Ok(source.read_chunk(name, &vec![0; var.shape.len()]).await?)),
        dtype => {
            let bytes = count.saturating_mul(dtype.size() as u64);
            if bytes > budget {
                return Ok(Err(format!("{bytes} bytes of values, over what the file may hold")));
            }
            let zero = vec![0; var.shape.len()];
            Ok(Ok(read_region(source, name, &zero, &var.shape, budget).await?))
        }
    }
}

/// `fragment_map_{k}` and `fragment_uris_{k}` with their dimensions.
fn fragment_variables(
    out: &mut DatasetMeta,
    arrays: &mut HashMap<String, Vec<u8>>,
    k: usize,
    dims: &[String],
    grid: &FragmentGrid,
    uris: &[String],
) {
    let suffix = if k == 0 { String::new() } else { k.to_string() };
    let fragment_dims: Vec<String> = dims.iter().map(|d| format!("f{suffix}_{d}")).collect();
    for (dim, sizes) in fragment_dims.iter().zip(&grid.sizes) {
        out.dimensions.insert(dim.clone(), sizes.len() as u64);
    }
    let widest = grid.sizes.iter().map(Vec::len).max().unwrap_or(1) as u64;
    let map_dims = if dims.is_empty() { Vec::new() } else { vec![format!("map{suffix}_j"), format!("map{suffix}_i")] };
    let map_shape = if dims.is_empty() { Vec::new() } else { vec![dims.len() as u64, widest] };
    for (dim, size) in map_dims.iter().zip(&map_shape) {
        out.dimensions.insert(dim.clone(), *size);
    }
    const PAD: i64 = -1;
    let mut map: Vec<i64> = vec![PAD; map_shape.iter().product::<u64>() as usize];
    for (row, sizes) in grid.sizes.iter().enumerate() {
        for (column, &size) in sizes.iter().enumerate() {
            map[row * widest as usize + column] = size as i64;
        }
    }
    if dims.is_empty() {
        map = vec![1];
    }
    let map_name = format!("fragment_map_{k}");
    out.variables.insert(
        map_name.clone(),
        VariableMeta {
            dtype: DataType::Int64,
            chunks: map_shape.clone(),
            dimensions: map_dims,
            shape: map_shape,
            attributes: [("_FillValue".to_owned(), json!(PAD))].into_iter().collect(),
            fill_value: json!(PAD),
            codecs: Vec::new(),
        },
    );
    arrays.insert(map_name, map.iter().flat_map(|v| v.to_le_bytes()).collect());
    let uris_name = format!("fragment_uris_{k}");
    let mut uris_var = text_variable(fragment_dims);
    uris_var.shape = grid.sizes.iter().map(|s| s.len() as u64).collect();
    uris_var.chunks.clone_from(&uris_var.shape);
    out.variables.insert(uris_name.clone(), uris_var);
    arrays.insert(uris_name, strings::encode(grid.files.iter().map(|&f| uris[f].as_bytes())));
}

fn text_variable(dimensions: Vec<String>) -> VariableMeta {
    VariableMeta {
        dtype: DataType::String,
        dimensions,
        shape: Vec::new(),
        chunks: Vec::new(),
        attributes: serde_json::Map::new(),
        fill_value: Value::Null,
        codecs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(shape: &[u64], chunks: &[u64]) -> VariableMeta {
        VariableMeta {
            dtype: DataType::Float32,
            dimensions: (0..shape.len()).map(|d| format!("d{d}")).collect(),
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            attributes: serde_json::Map::new(),
            fill_value: Value::Null,
            codecs: Vec::new(),
        }
    }

    #[test]
    fn files_along_time_are_fragments() {
        // 3 files of 4, 4 and 2 steps, one step per chunk, 2 chunks across.
        let v = var(&[10, 6], &[1, 3]);
        let files: Vec<Option<usize>> = (0..20)
            .map(|flat| {
                Some(match flat / 2 {
                    0..4 => 0,
                    4..8 => 1,
                    _ => 2,
                })
            })
            .collect();
        let grid = fragments_of(&v, &files).unwrap();
        assert_eq!(grid, FragmentGrid { sizes: vec![vec![4, 4, 2], vec![6]], files: vec![0, 1, 2] });
        // A chunk never written belongs to its neighbours' file.
        let mut holes = files.clone();
        holes[3] = None;
        assert_eq!(fragments_of(&v, &holes), Some(grid));
    }

    #[test]
    fn tiles_are_fragments_and_scattered_files_are_not() {
        let v = var(&[4, 4], &[2, 2]);
        let tiles = [Some(0), Some(1), Some(2), Some(3)];
        assert_eq!(fragments_of(&v, &tiles).unwrap().sizes, vec![vec![2, 2], vec![2, 2]]);
        assert_eq!(fragments_of(&v, &[Some(0), Some(1), Some(1), Some(0)]), None, "a file in two places");
        assert_eq!(fragments_of(&v, &[None, None, None, None]), None);
        let edge = var(&[5], &[2]);
        assert_eq!(fragments_of(&edge, &[Some(0), Some(1), Some(1)]).unwrap().sizes, vec![vec![2, 3]]);
    }

    #[test]
    fn the_file_names_its_fragments() {
        let mut meta = DatasetMeta {
            id: "tas".to_owned(),
            attributes: serde_json::Map::new(),
            dimensions: [("time".to_owned(), 10), ("lat".to_owned(), 6)].into_iter().collect(),
            unlimited: Vec::new(),
            variables: IndexMap::new(),
            last_modified: None,
        };
        let mut tas = var(&[10, 6], &[1, 6]);
        tas.dimensions = vec!["time".to_owned(), "lat".to_owned()];
        meta.variables.insert("tas".to_owned(), tas);
        let mut lat = var(&[6], &[6]);
        lat.dimensions = vec!["lat".to_owned()];
        meta.variables.insert("lat".to_owned(), lat);
        let grids = [("tas".to_owned(), FragmentGrid { sizes: vec![vec![4, 6], vec![6]], files: vec![1, 0] })];
        let values = [("lat".to_owned(), vec![0u8; 24])].into_iter().collect();
        let uris = ["b.nc".to_owned(), "a.nc".to_owned()];
        let (out, arrays) = aggregation_file(&meta, &grids.into_iter().collect(), &uris, values);
        let tas = &out.variables["tas"];
        assert!(tas.shape.is_empty());
        assert_eq!(tas.attributes["aggregated_dimensions"], "time lat");
        assert_eq!(out.dimensions["f_time"], 2);
        assert_eq!(out.variables["fragment_map_0"].shape, [2, 2]);
        let map: Vec<i64> =
            arrays["fragment_map_0"].chunks(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(map, [4, 6, 6, -1]);
        assert_eq!(strings::decode(&arrays["fragment_uris_0"]).unwrap(), [b"a.nc".as_slice(), b"b.nc"]);
        assert_eq!(strings::decode(&arrays["fragment_identifiers_tas"]).unwrap(), [b"tas".as_slice()]);
        assert!(out.variables.contains_key("lat") && arrays["lat"].len() == 24);
        assert_eq!(out.attributes["Conventions"], "CF-1.13");
    }
}

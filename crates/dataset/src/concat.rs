//! Multi-file datasets: virtual datasets of the same variables and grids joined along one
//! dimension (what `xr.open_mfdataset(..., concat_dim=dim)` gives with `data_vars="minimal"`).
//! Variables without that dimension are taken from the first file.
//!
//! Chunks are reused as they are when every file's length along the dimension is a multiple of
//! the chunk length, so the joined grid stays regular. Otherwise (typically the time coordinate,
//! which libnetcdf chunks by 512 or 1024 in files of 12 or 365 steps) the variable is read once
//! and kept inline, up to [`MAX_INLINE_BYTES`].

use std::sync::Arc;

use cloudify_store::Stores;
use serde_json::json;

use crate::{
    read_region, DatasetMeta, Error, Limits, Result, StoredChunk, VariableChunks, VirtualDataset, VirtualSource,
};

/// The largest variable read into memory when its chunks do not line up across files.
pub(crate) const MAX_INLINE_BYTES: u64 = 64 << 20;

fn mismatch(what: String) -> Error {
    Error::Unsupported { what: format!("concatenating files: {what}") }
}

fn check_same(first: &DatasetMeta, other: &DatasetMeta, dim: &str, file: &str) -> Result<()> {
    let names = |m: &DatasetMeta| m.variables.keys().cloned().collect::<Vec<_>>();
    if names(first) != names(other) {
        return Err(mismatch(format!("{file} has variables {:?}, the first file {:?}", names(other), names(first))));
    }
    for (name, a) in &first.variables {
        let b = &other.variables[name];
        let along = a.dimensions.iter().position(|d| d == dim);
        let same_grid = a.shape.iter().zip(&b.shape).enumerate().all(|(d, (x, y))| Some(d) == along || x == y);
        if a.dtype != b.dtype
            || a.dimensions != b.dimensions
            || !same_grid
            || a.chunks != b.chunks
            || a.codecs != b.codecs
        {
            return Err(mismatch(format!(
                "variable '{name}' of {file} differs from the first file's (type, dimensions, grid, chunks or codecs)"
            )));
        }
    }
    Ok(())
}

/// Joins `parts` (in order) along dimension `dim`, reading through `stores` the 1-d variables
/// whose chunks do not line up.
///
/// # Errors
/// [`Error::Unsupported`] when the files' variables, types, grids, chunks or codecs differ,
/// when a file's length along `dim` is not a multiple of a multi-dimensional variable's chunk
/// length (except the last file's: the joined grid must stay regular), or when a numeric
/// variable along `dim` is read through a fallback reader; read errors of the inlined
/// variables; [`Error::OverLimit`] when the joined chunk grid is over `limits`. Strings along
/// `dim` read through the library are left out with a warning.
pub async fn concat(
    mut parts: Vec<VirtualDataset>,
    dim: &str,
    stores: &Arc<Stores>,
    limits: &Limits,
) -> Result<VirtualDataset> {
    let Some(first) = parts.first() else {
        return Err(mismatch("no files".to_owned()));
    };
    if !first.meta.dimensions.contains_key(dim) {
        return Err(mismatch(format!("the first file has no dimension '{dim}'")));
    }
    for part in &parts[1..] {
        check_same(&first.meta, &part.meta, dim, part.files.first().map_or("", String::as_str))?;
    }
    // A fallback reader reads one file, and strings have no regions to inline: labels along
    // the joined dimension (per-step labels) are dropped rather than refusing the dataset.
    let unjoinable: Vec<String> = first
        .meta
        .variables
        .iter()
        .filter(|(name, var)| {
            var.dtype.is_variable_length()
                && var.dimensions.iter().any(|d| d == dim)
                && matches!(first.chunks.get(*name), Some(VariableChunks::Fallback { .. }))
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in &unjoinable {
        tracing::warn!(
            variable = name,
            dimension = dim,
            "strings read through libnetcdf are not joined across files: left out"
        );
        for part in &mut parts {
            part.meta.variables.shift_remove(name);
            part.chunks.shift_remove(name);
        }
    }
    let first = &parts[0];
    // Variables along `dim` whose chunks do not line up at every file boundary: 1-d ones
    // (coordinates) are read and kept inline; for others the files must be rechunked.
    let boundaries: Vec<u64> = parts[..parts.len() - 1].iter().map(|p| p.meta.dimensions[dim]).collect();
    let mut misaligned = Vec::new();
    for (name, var) in &first.meta.variables {
        let Some(axis) = var.dimensions.iter().position(|d| d == dim) else { continue };
        let step = var.chunks[axis];
        if let Some(len) = boundaries.iter().find(|&&len| len % step != 0) {
            if var.shape.len() > 1 {
                return Err(mismatch(format!(
                    "'{name}' has a file of {len} steps along '{dim}', not a multiple of its chunk length {step}: rechunk the files"
                )));
            }
            misaligned.push(name.clone());
        }
    }
    let mut inline = Vec::new();
    for name in &misaligned {
        inline.push((name.clone(), read_joined(&parts, name, stores, limits).await?));
    }
    let mut joined = join_aligned(parts, dim, &misaligned, limits)?;
    for (name, bytes) in inline {
        let var = joined.meta.variables.get_mut(&name).ok_or_else(|| mismatch(format!("no variable {name}")))?;
        var.chunks.clone_from(&var.shape);
        var.codecs = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
        joined.chunks.insert(name, VariableChunks::Stored(vec![StoredChunk::Inline(bytes)]));
    }
    Ok(joined)
}

/// The values of the 1-d variable `name` from every part, one after the other.
async fn read_joined(parts: &[VirtualDataset], name: &str, stores: &Arc<Stores>, limits: &Limits) -> Result<Vec<u8>> {
    let total = parts
        .iter()
        .map(|p| {
            let var = &p.meta.variables[name];
            crate::product(&var.shape).and_then(|n| n.checked_mul(var.dtype.size() as u64)).unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add);
    if total > MAX_INLINE_BYTES {
        return Err(mismatch(format!(
            "'{name}' ({total} bytes) has chunks that do not line up at file boundaries; rechunk the files"
        )));
    }
    let mut out = Vec::with_capacity(total as usize);
    for part in parts {
        let var = &part.meta.variables[name];
        let source = VirtualSource::new(part.clone(), Arc::clone(stores), None, limits)?;
        out.extend(read_region(&source, name, &vec![0; var.shape.len()], &var.shape, MAX_INLINE_BYTES).await?);
    }
    Ok(out)
}

fn join_aligned(parts: Vec<VirtualDataset>, dim: &str, skip: &[String], limits: &Limits) -> Result<VirtualDataset> {
    let mut parts = parts.into_iter();
    let Some(mut joined) = parts.next() else {
        return Err(mismatch("no files".to_owned()));
    };
    let rest: Vec<VirtualDataset> = parts.collect();
    // Where each part's files start in the joined file list.
    let mut file_offsets = Vec::with_capacity(rest.len());
    let mut files = joined.files.len() as u32;
    for part in &rest {
        file_offsets.push(files);
        files = files.saturating_add(part.files.len() as u32);
    }
    for (name, var) in &mut joined.meta.variables {
        let Some(axis) = var.dimensions.iter().position(|d| d == dim) else { continue };
        let others: Vec<&crate::VariableMeta> = rest.iter().map(|part| &part.meta.variables[name]).collect();
        let length = others.iter().try_fold(var.shape[axis], |n, other| n.checked_add(other.shape[axis]));
        let length = length.ok_or_else(|| Error::OverLimit(format!("'{name}' joined along '{dim}' overflows")))?;
        let mut grown = var.clone();
        grown.shape[axis] = length;
        limits.check_variable(name, &grown).map_err(Error::OverLimit)?;
        if skip.contains(name) {
            var.shape[axis] = length;
            continue;
        }
        // Each part's chunk table, its grid length along `dim`, and where its files start.
        let mut tables: Vec<(&[StoredChunk], u64, u32)> = Vec::with_capacity(rest.len() + 1);
        let parts_chunks = std::iter::once((&joined.chunks[name], &*var, 0)).chain(
            rest.iter().zip(&others).zip(&file_offsets).map(|((part, other), &at)| (&part.chunks[name], *other, at)),
        );
        for (chunks, meta, file_offset) in parts_chunks {
            let VariableChunks::Stored(chunks) = chunks else {
                return Err(mismatch(format!("variable '{name}' is read through libnetcdf and cannot be joined")));
            };
            tables.push((chunks, meta.chunk_grid()[axis], file_offset));
        }
        var.shape[axis] = length;
        let grid = grown.chunk_grid();
        // In C order the joined table is, for each index before `dim`, every part's block of
        // chunks in turn: one pass over all chunks, whatever the number of files.
        let inner: u64 = grid[axis + 1..].iter().product();
        let outer: u64 = grid[..axis].iter().product();
        let mut chunks = Vec::with_capacity(grid.iter().product::<u64>() as usize);
        for o in 0..outer {
            for &(table, steps, file_offset) in &tables {
                let block = steps * inner;
                let range = (o * block) as usize..((o + 1) * block) as usize;
                let Some(block) = table.get(range) else {
                    return Err(mismatch(format!("variable '{name}' has a chunk table shorter than its grid")));
                };
                chunks.extend(block.iter().map(|chunk| match chunk {
                    StoredChunk::Range { file, offset, length } => {
                        StoredChunk::Range { file: file + file_offset, offset: *offset, length: *length }
                    }
                    other => other.clone(),
                }));
            }
        }
        joined.chunks.insert(name.clone(), VariableChunks::Stored(chunks));
    }
    for part in rest {
        if let Some(len) = joined.meta.dimensions.get_mut(dim) {
            *len = len.saturating_add(part.meta.dimensions[dim]);
        }
        joined.meta.last_modified = joined.meta.last_modified.max(part.meta.last_modified);
        joined.files.extend(part.files);
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use cloudify_sdk::hyperslab::{ravel, unravel};
    use indexmap::IndexMap;

    use super::*;
    use crate::{DataType, VariableMeta};

    /// A part of `steps` along `t` in a (y, t, x) grid of chunks (1, 2, 2), each chunk's offset
    /// naming its part and its place in the part.
    fn part(number: u64, steps: u64) -> VirtualDataset {
        let var = VariableMeta {
            dtype: DataType::Float32,
            dimensions: vec!["y".into(), "t".into(), "x".into()],
            shape: vec![2, steps, 3],
            chunks: vec![1, 2, 2],
            attributes: Default::default(),
            fill_value: serde_json::Value::Null,
            codecs: Vec::new(),
        };
        let count: u64 = var.chunk_grid().iter().product();
        let chunks = (0..count).map(|i| StoredChunk::Range { file: 0, offset: number * 1000 + i, length: 1 }).collect();
        let meta = DatasetMeta {
            id: "joined".into(),
            attributes: Default::default(),
            dimensions: IndexMap::from([("y".into(), 2), ("t".into(), steps), ("x".into(), 3)]),
            unlimited: Vec::new(),
            variables: IndexMap::from([("v".into(), var)]),
            last_modified: Some(number as i64),
        };
        VirtualDataset {
            meta,
            files: vec![format!("part{number}.nc")],
            chunks: IndexMap::from([("v".into(), VariableChunks::Stored(chunks))]),
        }
    }

    /// Joining along a middle dimension puts every chunk where the part it came from had it,
    /// shifted along `t` by the parts before, with its file renumbered; the last part may end
    /// in a partial chunk.
    #[test]
    fn joins_chunk_tables_along_a_middle_dimension() {
        let steps = [4, 2, 3];
        let parts: Vec<_> = steps.iter().enumerate().map(|(n, &s)| part(n as u64, s)).collect();
        let joined = join_aligned(parts, "t", &[], &Limits::default()).unwrap();
        let var = &joined.meta.variables["v"];
        assert_eq!(var.shape, [2, 9, 3]);
        assert_eq!(joined.meta.dimensions["t"], 9);
        assert_eq!(joined.files, ["part0.nc", "part1.nc", "part2.nc"]);
        assert_eq!(joined.meta.last_modified, Some(2));
        let VariableChunks::Stored(chunks) = &joined.chunks["v"] else { panic!("not stored") };
        let grid = var.chunk_grid();
        assert_eq!(grid, [2, 5, 2]);
        assert_eq!(chunks.len(), 20);
        let step_grids = [2u64, 1, 2];
        for (flat, chunk) in chunks.iter().enumerate() {
            let mut index = unravel(flat as u64, &grid);
            let mut number = 0;
            while index[1] >= step_grids[number] {
                index[1] -= step_grids[number];
                number += 1;
            }
            let local = ravel(&index, &[2, step_grids[number], 2]);
            let expected = StoredChunk::Range { file: number as u32, offset: number as u64 * 1000 + local, length: 1 };
            assert_eq!(*chunk, expected, "chunk {flat}");
        }
    }
}

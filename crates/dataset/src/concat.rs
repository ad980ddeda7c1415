//! Multi-file datasets: virtual datasets of the same variables and grids joined along one
//! dimension (what `xr.open_mfdataset(..., concat_dim=dim)` gives with `data_vars="minimal"`).
//! Variables without that dimension are taken from the first file.
//!
//! Chunks are reused as they are when every file's length along the dimension is a multiple of
//! the chunk length, so the joined grid stays regular. Otherwise (typically the time coordinate,
//! which libnetcdf chunks by 512 or 1024 in files of 12 or 365 steps) the variable is read once
//! and kept inline, up to [`MAX_INLINE_BYTES`].

use std::sync::Arc;

use cloudify_sdk::hyperslab::{ravel, unravel};
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
    for part in parts {
        let file_offset = joined.files.len() as u32;
        for (name, var) in &mut joined.meta.variables {
            let Some(axis) = var.dimensions.iter().position(|d| d == dim) else { continue };
            let other = &part.meta.variables[name];
            let length = var.shape[axis].checked_add(other.shape[axis]);
            let length = length.ok_or_else(|| Error::OverLimit(format!("'{name}' joined along '{dim}' overflows")))?;
            let mut grown = var.clone();
            grown.shape[axis] = length;
            limits.check_variable(name, &grown).map_err(Error::OverLimit)?;
            if skip.contains(name) {
                var.shape[axis] = length;
                continue;
            }
            let (mine, theirs) = (&joined.chunks[name], &part.chunks[name]);
            let (VariableChunks::Stored(mine), VariableChunks::Stored(theirs)) = (mine, theirs) else {
                return Err(mismatch(format!("variable '{name}' is read through libnetcdf and cannot be joined")));
            };
            let (grid_a, grid_b) = (var.chunk_grid(), other.chunk_grid());
            let mut grid = grid_a.clone();
            grid[axis] += grid_b[axis];
            let chunks: Vec<StoredChunk> = (0..grid.iter().product::<u64>())
                .map(|flat| {
                    let mut index = unravel(flat, &grid);
                    if index[axis] < grid_a[axis] {
                        return mine[ravel(&index, &grid_a) as usize].clone();
                    }
                    index[axis] -= grid_a[axis];
                    match &theirs[ravel(&index, &grid_b) as usize] {
                        StoredChunk::Range { file, offset, length } => {
                            StoredChunk::Range { file: file + file_offset, offset: *offset, length: *length }
                        }
                        other => other.clone(),
                    }
                })
                .collect();
            var.shape[axis] = length;
            joined.chunks.insert(name.clone(), VariableChunks::Stored(chunks));
        }
        if let Some(len) = joined.meta.dimensions.get_mut(dim) {
            *len = len.saturating_add(part.meta.dimensions[dim]);
        }
        joined.meta.last_modified = joined.meta.last_modified.max(part.meta.last_modified);
        joined.files.extend(part.files);
    }
    Ok(joined)
}

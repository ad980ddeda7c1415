//! The aggregated dataset, built from the fragments' chunk tables.

use std::{collections::HashMap, sync::Arc};

use cloudify_dataset::{
    hyperslab::{copy_block, ravel, Layout},
    read_region, DataType, Error, Limits, Result, StoredChunk, VariableChunks, VariableMeta, VirtualDataset,
    VirtualSource,
};
use cloudify_store::Stores;
use indexmap::IndexSet;
use serde_json::{json, Value};

use crate::{Aggregation, Description, Fragment};

/// The most bytes of one aggregated variable held in memory when its fragments' chunks do
/// not line up with the fragment boundaries (or some fragments are constants).
const MAX_INLINE_BYTES: u64 = 64 << 20;

/// Each fragment file's scan, by location; `Err` says why it cannot be read.
pub type Fragments = HashMap<String, Result<VirtualDataset, String>>;

/// The aggregated dataset and the variables refused, with the reason.
pub struct Assembled {
    /// The aggregation file's dataset with its aggregation variables aggregated, and the
    /// variables describing fragments removed.
    pub dataset: VirtualDataset,
    /// Aggregation variables not served, with the reason (naming the fragment at fault).
    pub refused: Vec<(String, String)>,
}

/// Builds the dataset the aggregation file `base` (its scan) describes, its fragments'
/// scans in `fragments`, reading through `stores` the variables that must be held whole.
///
/// # Errors
/// Reads of fragments failing for variables held whole; [`Error::OverLimit`] from `limits`.
pub async fn assemble(
    base: VirtualDataset,
    description: Description,
    fragments: &Fragments,
    stores: &Arc<Stores>,
    limits: &Limits,
) -> Result<Assembled> {
    let mut dataset = base;
    let mut refused = description.refused;
    let mut files: IndexSet<String> = dataset.files.iter().cloned().collect();
    for name in &description.features {
        dataset.meta.variables.shift_remove(name);
        dataset.chunks.shift_remove(name);
    }
    for aggregation in &description.aggregations {
        let name = &aggregation.name;
        match variable(aggregation, fragments, &mut files, stores, limits).await {
            Ok((var, chunks)) => {
                limits.check_variable(name, &var).map_err(Error::OverLimit)?;
                dataset.meta.variables.insert(name.clone(), var);
                dataset.chunks.insert(name.clone(), chunks);
            }
            Err(Misfit::Refused(reason)) => {
                refused.push((name.clone(), reason));
                dataset.meta.variables.shift_remove(name);
                dataset.chunks.shift_remove(name);
            }
            Err(Misfit::Failed(err)) => return Err(err),
        }
    }
    for (name, _) in &refused {
        dataset.meta.variables.shift_remove(name);
        dataset.chunks.shift_remove(name);
    }
    let used: IndexSet<&String> = dataset.meta.variables.values().flat_map(|v| &v.dimensions).collect();
    let unused: Vec<String> = dataset.meta.dimensions.keys().filter(|d| !used.contains(d)).cloned().collect();
    for dim in unused {
        dataset.meta.dimensions.shift_remove(&dim);
        dataset.meta.unlimited.retain(|d| *d != dim);
    }
    let newest = description
        .aggregations
        .iter()
        .flat_map(|a| &a.fragments)
        .filter_map(|f| match f {
            Fragment::File { location, .. } => fragments.get(location)?.as_ref().ok()?.meta.last_modified,
            _ => None,
        })
        .max();
    dataset.meta.last_modified = dataset.meta.last_modified.max(newest);
    dataset.files = files.into_iter().collect();
    Ok(Assembled { dataset, refused })
}

/// Why a variable is not assembled: its fragments do not fit (a warning), or a read failed.
enum Misfit {
    Refused(String),
    Failed(Error),
}

impl From<String> for Misfit {
    fn from(reason: String) -> Self {
        Self::Refused(reason)
    }
}

/// One file fragment, checked against the aggregation variable.
struct Piece<'a> {
    dataset: &'a VirtualDataset,
    variable: &'a str,
    /// The fragment's own variable.
    var: &'a VariableMeta,
    /// Its chunk shape in the aggregate's dimensions (missing size-1 dimensions inserted).
    chunks: Vec<u64>,
    stored: &'a [StoredChunk],
}

async fn variable(
    aggregation: &Aggregation,
    fragments: &Fragments,
    files: &mut IndexSet<String>,
    stores: &Arc<Stores>,
    limits: &Limits,
) -> Result<(VariableMeta, VariableChunks), Misfit> {
    let mut pieces = Vec::with_capacity(aggregation.fragments.len());
    for (flat, fragment) in aggregation.fragments.iter().enumerate() {
        let Fragment::File { location, variable } = fragment else {
            pieces.push(None);
            continue;
        };
        let (_, region) = aggregation.region(flat);
        let at_fault = |reason: String| Misfit::Refused(format!("fragment {location}: {reason}"));
        let dataset = match fragments.get(location) {
            Some(Ok(dataset)) => dataset,
            Some(Err(reason)) => return Err(at_fault(reason.clone())),
            None => return Err(at_fault("not scanned".to_owned())),
        };
        pieces.push(Some(piece(&aggregation.var, dataset, variable, &region).map_err(at_fault)?));
    }
    let Some(first) = pieces.iter().flatten().next() else {
        return held_whole(aggregation, &pieces, stores).await;
    };
    let chunks = first.chunks.clone();
    let codecs = &first.var.codecs;
    let same_chunks = pieces.iter().flatten().all(|p| p.chunks == chunks && p.var.codecs == *codecs);
    let constants = aggregation.fragments.iter().any(|f| matches!(f, Fragment::Value(_)));
    let aligned =
        aggregation.sizes.iter().zip(&chunks).all(|(sizes, &c)| sizes[..sizes.len() - 1].iter().all(|s| s % c == 0));
    if !same_chunks || constants || !aligned {
        return held_whole(aggregation, &pieces, stores).await;
    }
    let mut var = aggregation.var.clone();
    var.chunks.clone_from(&chunks);
    var.codecs.clone_from(codecs);
    let expected = limits.check_variable(&aggregation.name, &var).map_err(|e| Misfit::Failed(Error::OverLimit(e)))?;
    let grid = var.chunk_grid();
    let counts: Vec<u64> = aggregation.sizes.iter().map(|s| s.len() as u64).collect();
    // Along each dimension, per chunk index: the fragment it lies in and its index there.
    let along: Vec<Vec<(u64, u64)>> = aggregation
        .sizes
        .iter()
        .zip(&chunks)
        .map(|(sizes, &c)| {
            sizes.iter().enumerate().flat_map(|(p, &s)| (0..s.div_ceil(c)).map(move |l| (p as u64, l))).collect()
        })
        .collect();
    if along.iter().zip(&grid).any(|(a, &n)| a.len() as u64 != n) {
        return Err(Misfit::Refused("its fragments do not cover its chunk grid".to_owned()));
    }
    // Per fragment: its own chunk grid, and its files' places in the aggregate's file list.
    let mut placed = Vec::with_capacity(pieces.len());
    for (flat, piece) in pieces.iter().enumerate() {
        placed.push(piece.as_ref().map(|piece| {
            let (_, region) = aggregation.region(flat);
            let own_grid: Vec<u64> = region.iter().zip(&chunks).map(|(s, c)| s.div_ceil(*c)).collect();
            let files: Vec<u32> = piece.dataset.files.iter().map(|f| files.insert_full(f.clone()).0 as u32).collect();
            (piece, own_grid, files)
        }));
    }
    let mut table = Vec::with_capacity(expected as usize);
    let (mut position, mut local) = (vec![0; grid.len()], vec![0; grid.len()]);
    for flat in 0..expected {
        let index = cloudify_dataset::hyperslab::unravel(flat, &grid);
        for (d, &i) in index.iter().enumerate() {
            (position[d], local[d]) = along[d][i as usize];
        }
        table.push(match &placed[ravel(&position, &counts) as usize] {
            None => StoredChunk::Missing,
            Some((piece, own_grid, files)) => match &piece.stored[ravel(&local, own_grid) as usize] {
                StoredChunk::Range { file, offset, length } => {
                    StoredChunk::Range { file: files[*file as usize], offset: *offset, length: *length }
                }
                other => other.clone(),
            },
        });
    }
    Ok((var, VariableChunks::Stored(table)))
}

/// Checks the fragment's variable against the aggregation variable: the same type, units,
/// calendar, packing and fill value, and the region's shape (size-1 dimensions may be
/// missing, as CF allows).
fn piece<'a>(
    aggregated: &VariableMeta,
    dataset: &'a VirtualDataset,
    variable: &'a str,
    region: &[u64],
) -> Result<Piece<'a>, String> {
    let name = variable.strip_prefix('/').unwrap_or(variable);
    if name.contains('/') {
        return Err(format!("'{variable}' is in a group: fragments are read from their root group"));
    }
    let var = dataset.meta.variables.get(name).ok_or_else(|| format!("no variable '{variable}'"))?;
    if var.dtype != aggregated.dtype {
        return Err(format!("'{variable}' is {}, the aggregation {}", var.dtype.name(), aggregated.dtype.name()));
    }
    for key in ["units", "calendar", "scale_factor", "add_offset"] {
        let (theirs, ours) = (var.attributes.get(key), aggregated.attributes.get(key));
        if theirs.is_some() && ours.is_some() && !same_value(theirs, ours) {
            return Err(format!("'{variable}' has {key} {}, the aggregation {}", show(theirs), show(ours)));
        }
    }
    for key in ["scale_factor", "add_offset"] {
        if var.attributes.contains_key(key) && !aggregated.attributes.contains_key(key) {
            return Err(format!("'{variable}' is packed ({key}), the aggregation is not"));
        }
    }
    // A float fragment's NaN fill reads as NaN (missing) whatever the aggregation's fill is.
    let nan_fill = matches!(var.dtype, DataType::Float32 | DataType::Float64)
        && cloudify_cf::number(&var.fill_value).is_some_and(f64::is_nan);
    if !nan_fill
        && !var.fill_value.is_null()
        && !aggregated.fill_value.is_null()
        && !same_value(Some(&var.fill_value), Some(&aggregated.fill_value))
    {
        return Err(format!(
            "'{variable}' has fill value {}, the aggregation {}",
            var.fill_value, aggregated.fill_value
        ));
    }
    let stored = match dataset.chunks.get(name) {
        Some(VariableChunks::Stored(stored)) => stored,
        Some(VariableChunks::Fallback { reason }) => return Err(format!("'{variable}' has no byte ranges ({reason})")),
        None => return Err(format!("no chunks of '{variable}'")),
    };
    let chunks = inserted_ones(&var.shape, &var.chunks, region)
        .ok_or_else(|| format!("'{variable}' has shape {:?}, its place in the aggregation {region:?}", var.shape))?;
    Ok(Piece { dataset, variable: name, var, chunks, stored })
}

/// `chunks` of an array of `shape` in the dimensions of `region`: equal where the shapes
/// match in order, 1 where `region` has a size-1 dimension `shape` lacks.
fn inserted_ones(shape: &[u64], chunks: &[u64], region: &[u64]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(region.len());
    let mut own = shape.iter().zip(chunks).peekable();
    for &size in region {
        match own.peek() {
            Some((&s, &c)) if s == size => {
                out.push(c);
                own.next();
            }
            _ if size == 1 => out.push(1),
            _ => return None,
        }
    }
    own.next().is_none().then_some(out)
}

fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    let number = |v: Option<&Value>| v.and_then(cloudify_cf::number);
    match (number(a), number(b)) {
        (Some(x), Some(y)) => {
            x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 8.0
        }
        _ => a.and_then(Value::as_str).map(str::trim) == b.and_then(Value::as_str).map(str::trim) && a.is_some(),
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(String::new, Value::to_string)
}

/// The whole variable read into memory, one inline chunk: for fragments whose chunks do not
/// line up with the fragment boundaries, or constant fragments.
async fn held_whole(
    aggregation: &Aggregation,
    pieces: &[Option<Piece<'_>>],
    stores: &Arc<Stores>,
) -> Result<(VariableMeta, VariableChunks), Misfit> {
    let var = &aggregation.var;
    let elem = var.dtype.size();
    if elem == 0 {
        return Err(Misfit::Refused("strings are not aggregated".to_owned()));
    }
    let total = var.shape.iter().try_fold(elem as u64, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_INLINE_BYTES);
    let Some(total) = total else {
        return Err(Misfit::Refused(format!(
            "its fragments' chunks do not line up with the fragments (or fragments are constants), and it is over the {MAX_INLINE_BYTES} bytes held whole: rechunk the fragments"
        )));
    };
    let fill = cloudify_dataset::fill_element(var);
    let mut out = fill.repeat((total / elem as u64) as usize);
    let whole = Layout { shape: &var.shape, elem };
    for (flat, (fragment, piece)) in aggregation.fragments.iter().zip(pieces).enumerate() {
        let (start, region) = aggregation.region(flat);
        let values = match (fragment, piece) {
            (Fragment::Value(v), _) => var.dtype.element(&json!(v)).repeat(region.iter().product::<u64>() as usize),
            (Fragment::File { .. }, Some(piece)) => read_piece(piece, stores).await.map_err(Misfit::Failed)?,
            _ => continue,
        };
        let zero = vec![0; region.len()];
        copy_block(&values, Layout { shape: &region, elem }, &zero, &mut out, whole, &start, &region);
    }
    let mut held = var.clone();
    held.chunks.clone_from(&var.shape);
    held.codecs = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
    Ok((held, VariableChunks::Stored(vec![StoredChunk::Inline(out)])))
}

/// All values of a fragment's variable.
async fn read_piece(piece: &Piece<'_>, stores: &Arc<Stores>) -> Result<Vec<u8>> {
    let mut one = piece.dataset.clone();
    one.meta.variables.retain(|name, _| name == piece.variable);
    one.chunks.retain(|name, _| name == piece.variable);
    let source = VirtualSource::new(one, Arc::clone(stores), None, &Limits::default())?;
    let zero = vec![0; piece.var.shape.len()];
    read_region(&source, piece.variable, &zero, &piece.var.shape, MAX_INLINE_BYTES).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_size_one_dimensions_are_inserted() {
        assert_eq!(inserted_ones(&[96, 192], &[96, 192], &[1, 96, 192]), Some(vec![1, 96, 192]));
        assert_eq!(inserted_ones(&[12, 96], &[1, 96], &[12, 96]), Some(vec![1, 96]));
        assert_eq!(inserted_ones(&[12, 96], &[1, 96], &[12, 95]), None);
        assert_eq!(inserted_ones(&[12, 96, 3], &[1, 96, 3], &[12, 96]), None);
    }
}

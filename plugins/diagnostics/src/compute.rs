//! The computation, streamed along one dimension a chunk-row at a time (a region read of one
//! chunk's length along it and the whole of the others, so only the chunks needed are read
//! and never the whole variable), accumulated in f64.

use cloudify_cf::reduce::{Reduction, Slots};
use cloudify_sdk::{meta::DatasetMeta, Error, ErrorKind, Host};
use serde_json::Value;

use crate::operation::Operation;

/// A result: a labelled array.
pub(crate) struct Computed {
    pub(crate) dims: Vec<String>,
    pub(crate) shape: Vec<usize>,
    pub(crate) values: Vec<f64>,
    /// Labels of the dimensions that have them.
    pub(crate) coords: Vec<(String, Vec<Value>)>,
    /// CF `cell_methods` of what was done.
    pub(crate) method: String,
}

fn too_large(values: u64, max: u64) -> Error {
    Error::new(ErrorKind::TOO_LARGE, format!("the result has {values} values, more than max_result_values = {max}"))
}

/// Positions along `dim` read at once: the variable's chunk length along it.
fn block(meta: &DatasetMeta, var: &str, axis: usize) -> u64 {
    let v = &meta.variables[var];
    v.chunks.get(axis).copied().filter(|&c| c > 0).unwrap_or(v.shape[axis]).max(1)
}

/// Calls `reduce(start, count, values)` for each block of `count` positions along `axis` (the
/// variable's chunk length; the whole variable without an axis), everything along the other
/// dimensions, decoded. Two blocks are read at a time, so the host decodes them in parallel.
async fn for_each_block(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    axis: Option<usize>,
    mut reduce: impl FnMut(usize, usize, &[f64]),
) -> Result<(), Error> {
    let v = &meta.variables[var];
    let n = axis.map_or(1, |a| v.shape[a]);
    let step = axis.map_or(1, |a| block(meta, var, a));
    let starts: Vec<u64> = (0..n).step_by(usize::try_from(step).unwrap_or(usize::MAX)).collect();
    for pair in starts.chunks(2) {
        let reads = pair.iter().map(|&start| {
            let count = step.min(n - start);
            let mut from = vec![0; v.shape.len()];
            let mut extent = v.shape.clone();
            if let Some(a) = axis {
                (from[a], extent[a]) = (start, count);
            }
            async move {
                cloudify_cf::read::block(host, &meta.id, var, v, &from, &extent)
                    .await
                    .map(|values| (start, count, values))
            }
        });
        for (start, count, values) in futures::future::try_join_all(reads).await? {
            reduce(start as usize, count as usize, &values);
        }
    }
    Ok(())
}

/// Computes `operation` on variable `var`.
///
/// # Errors
/// 413 for a result over `max_values` (or a chunk-row over the host's region limit), what
/// the host's reads fail with.
pub(crate) async fn compute(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    operation: Operation,
    max_values: u64,
) -> Result<Computed, Error> {
    match operation {
        Operation::Grouped { dim, name, labels, of, reduction, method } => {
            grouped(host, meta, var, &dim, name, labels, &of, reduction, method, max_values).await
        }
        Operation::FieldMean { grid } => field_mean(host, meta, var, &grid, max_values).await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn grouped(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    dim: &str,
    name: String,
    labels: Vec<Value>,
    of: &[Option<usize>],
    reduction: Reduction,
    method: String,
    max_values: u64,
) -> Result<Computed, Error> {
    let v = &meta.variables[var];
    let axis = v.dimensions.iter().position(|d| d == dim).ok_or_else(|| Error::internal("grouped dimension lost"))?;
    let shape: Vec<u64> = v.shape.clone();
    let outer: u64 = shape[..axis].iter().product();
    let inner: u64 = shape[axis + 1..].iter().product();
    let groups = labels.len() as u64;
    let slots = outer.saturating_mul(groups).saturating_mul(inner);
    if slots > max_values {
        return Err(too_large(slots, max_values));
    }
    let (outer, inner, groups) = (outer as usize, inner as usize, groups as usize);
    let mut acc = Slots::new(reduction, slots as usize);
    for_each_block(host, meta, var, Some(axis), |start, count, values| {
        for o in 0..outer {
            for j in 0..count {
                let Some(g) = of[start + j] else { continue };
                let row = (o * count + j) * inner;
                acc.push_row((o * groups + g) * inner, &values[row..row + inner]);
            }
        }
    })
    .await?;
    let mut dims = v.dimensions.clone();
    dims[axis] = name.clone();
    let mut out_shape: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
    out_shape[axis] = groups;
    let mut coords = coordinates(host, meta, &v.dimensions, &[dim]).await;
    coords.push((name, labels));
    Ok(Computed { dims, shape: out_shape, values: acc.finish(), coords, method })
}

async fn field_mean(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    grid: &cloudify_cf::Grid,
    max_values: u64,
) -> Result<Computed, Error> {
    let v = &meta.variables[var];
    let horizontal = grid.dimensions(meta);
    let is_horizontal: Vec<bool> = v.dimensions.iter().map(|d| horizontal.contains(d)).collect();
    let kept: Vec<usize> = (0..v.dimensions.len()).filter(|&d| !is_horizontal[d]).collect();
    let out_len: u64 = kept.iter().map(|&d| v.shape[d]).product();
    if out_len > max_values {
        return Err(too_large(out_len, max_values));
    }
    // Weights over the grid's dimensions, in the grid's order.
    let positions: Vec<Vec<usize>> =
        horizontal.iter().map(|d| (0..meta.dimensions.get(d).copied().unwrap_or(0) as usize).collect()).collect();
    let weights = cloudify_cf::weights::area(host, meta, var, grid, &positions).await?;
    let grid_strides: Vec<usize> =
        (0..horizontal.len()).map(|i| positions[i + 1..].iter().map(Vec::len).product()).collect();
    let kept_strides: Vec<usize> =
        (0..kept.len()).map(|i| kept[i + 1..].iter().map(|&d| v.shape[d] as usize).product()).collect();

    // Each dimension's stride into the output or into the grid's cells.
    let strides: Vec<(bool, usize)> = (0..v.dimensions.len())
        .map(|d| match horizontal.iter().position(|h| *h == v.dimensions[d]) {
            Some(g) => (true, grid_strides[g]),
            None => (false, kept.iter().position(|&k| k == d).map_or(0, |k| kept_strides[k])),
        })
        .collect();
    let trailing = v.dimensions.ends_with(&horizontal);
    let rest: usize = kept.iter().skip(1).map(|&d| v.shape[d] as usize).product();
    let (mut sums, mut totals) = (vec![0.0; out_len as usize], vec![0.0; out_len as usize]);
    // Stream along the first kept dimension (time, usually); everything when there is none.
    let axis = kept.first().copied();
    let extent_of = |start: usize, count: usize| -> (Vec<usize>, Vec<usize>) {
        let mut from = vec![0; v.shape.len()];
        let mut extent: Vec<usize> = v.shape.iter().map(|&s| s as usize).collect();
        if let Some(a) = axis {
            (from[a], extent[a]) = (start, count);
        }
        (from, extent)
    };
    for_each_block(host, meta, var, axis, |start, count, values| {
        let (from, extent) = extent_of(start, count);
        if trailing {
            // The usual layout (time, ..., lat, lon): each run of `cells` values is one output
            // position's field, in the weights' order.
            let first = start * rest;
            for (row, field) in values.chunks_exact(weights.len().max(1)).enumerate() {
                let (mut sum, mut total) = (0.0, 0.0);
                for (&x, &w) in field.iter().zip(&weights) {
                    if !x.is_nan() && w > 0.0 {
                        sum += w * x;
                        total += w;
                    }
                }
                sums[first + row] += sum;
                totals[first + row] += total;
            }
        } else {
            let mut index = vec![0usize; extent.len()];
            for &value in values {
                if !value.is_nan() {
                    let (mut out, mut cell) = (0usize, 0usize);
                    for (d, &i) in index.iter().enumerate() {
                        let (horizontal, stride) = strides[d];
                        let at = (i + from[d]) * stride;
                        if horizontal {
                            cell += at;
                        } else {
                            out += at;
                        }
                    }
                    let w = weights.get(cell).copied().unwrap_or(0.0);
                    if w > 0.0 {
                        sums[out] += w * value;
                        totals[out] += w;
                    }
                }
                for d in (0..index.len()).rev() {
                    index[d] += 1;
                    if index[d] < extent[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
        }
    })
    .await?;
    let values = sums.iter().zip(&totals).map(|(s, t)| if *t > 0.0 { s / t } else { f64::NAN }).collect();
    let dims: Vec<String> = kept.iter().map(|&d| v.dimensions[d].clone()).collect();
    let shape = kept.iter().map(|&d| v.shape[d] as usize).collect();
    let coords = coordinates(host, meta, &dims, &[]).await;
    Ok(Computed { dims, shape, values, coords, method: "area: mean".to_owned() })
}

/// The labels of `dims` (except `skip`) that have 1-D coordinates: dates for time, numbers
/// otherwise; coordinates that cannot be read are left out.
async fn coordinates(host: &Host, meta: &DatasetMeta, dims: &[String], skip: &[&str]) -> Vec<(String, Vec<Value>)> {
    let mut coords = Vec::new();
    for dim in dims.iter().filter(|d| !skip.contains(&d.as_str())) {
        let Some(coord) = meta.variables.get(dim).filter(|c| c.dimensions == [dim.clone()]) else { continue };
        let Ok(values) = cloudify_cf::read::all(host, &meta.id, dim, coord, 64 << 20).await else { continue };
        let labels = match cloudify_cf::time::TimeAxis::decode(coord, &values) {
            Ok(axis) if cloudify_cf::role_of(dim, coord) == cloudify_cf::Role::Time => {
                axis.dates.iter().map(|d| Value::from(cloudify_cf::time::rfc3339(d))).collect()
            }
            _ => values.iter().map(|&v| if v.is_finite() { Value::from(v) } else { Value::Null }).collect(),
        };
        coords.push((dim.clone(), labels));
    }
    coords
}

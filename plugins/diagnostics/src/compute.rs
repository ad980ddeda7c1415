//! The computation of one window of a result (one output chunk, or the whole result): the
//! input window read along the reduced dimension a block at a time (region reads, so only
//! the chunks the window touches are read and never the whole variable), accumulated in f64.

use cloudify_cf::reduce::{Reduction, Slots};
use cloudify_sdk::{meta::VariableMeta, Error, Host};

/// Decoded values a block read aims at (a block is never shorter than one chunk along the
/// streamed dimension): large enough to keep the reads few, small enough that two in flight
/// stay a small part of the server's memory.
const BLOCK_VALUES: u64 = 2 << 20;

/// Part of a variable: `start` and `count` per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: Vec<u64>,
    pub(crate) count: Vec<u64>,
}

impl Window {
    /// All of variable `v`.
    pub(crate) fn all(v: &VariableMeta) -> Self {
        Self { start: vec![0; v.shape.len()], count: v.shape.clone() }
    }

    fn values(&self) -> u64 {
        self.count.iter().product()
    }
}

/// Calls `reduce(offset, count, values)` for each block of `window` along `axis` (whole
/// chunks along it, several when they are small; the window in one block without an axis),
/// `offset` counted from the window's start, values decoded. Two blocks are read at a time,
/// so the host decodes them in parallel.
async fn for_each_block(
    host: &Host,
    dataset: &str,
    name: &str,
    v: &VariableMeta,
    window: &Window,
    axis: Option<usize>,
    mut reduce: impl FnMut(usize, usize, &[f64]),
) -> Result<(), Error> {
    let (from, n) = axis.map_or((0, 1), |a| (window.start[a], window.count[a]));
    let step = match axis {
        Some(a) => {
            let chunk = v.chunks.get(a).copied().filter(|&c| c > 0).unwrap_or(v.shape[a]).max(1);
            let row = (window.values() / window.count[a].max(1)).max(1);
            chunk * (BLOCK_VALUES / row.saturating_mul(chunk)).max(1)
        }
        None => 1,
    };
    // Blocks start on the chunk grid (the window's start is on it or at 0), so no chunk is
    // read by two of them.
    let starts: Vec<u64> = (from..from + n).step_by(usize::try_from(step).unwrap_or(usize::MAX)).collect();
    for pair in starts.chunks(2) {
        let reads = pair.iter().map(|&at| {
            let mut block = window.clone();
            if let Some(a) = axis {
                (block.start[a], block.count[a]) = (at, step.min(from + n - at));
            }
            async move {
                cloudify_cf::read::block(host, dataset, name, v, &block.start, &block.count)
                    .await
                    .map(|values| (at - from, axis.map_or(1, |a| block.count[a]), values))
            }
        });
        for (offset, count, values) in futures::future::try_join_all(reads).await? {
            reduce(offset as usize, count as usize, &values);
        }
    }
    Ok(())
}

/// The groups of `window` of variable `name` (all of it along `axis`, the grouped
/// dimension), position `i` along it in group `of[i]`, reduced: row-major over the window's
/// shape with `groups` along `axis`.
///
/// # Errors
/// What the host's reads fail with.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn grouped(
    host: &Host,
    dataset: &str,
    name: &str,
    v: &VariableMeta,
    window: &Window,
    axis: usize,
    of: &[Option<usize>],
    groups: usize,
    reduction: Reduction,
) -> Result<Vec<f64>, Error> {
    let outer = window.count[..axis].iter().product::<u64>() as usize;
    let inner = window.count[axis + 1..].iter().product::<u64>() as usize;
    let mut acc = Slots::new(reduction, outer * groups * inner);
    for_each_block(host, dataset, name, v, window, Some(axis), |offset, count, values| {
        for o in 0..outer {
            for j in 0..count {
                let Some(g) = of[offset + j] else { continue };
                let row = (o * count + j) * inner;
                acc.push_row((o * groups + g) * inner, &values[row..row + inner]);
            }
        }
    })
    .await?;
    Ok(acc.finish())
}

/// The area mean of `window` of variable `name` (all of it along the grid's dimensions;
/// `grid_position[d]`: where dimension `d` is among them), cells weighted by `weights`
/// (row-major over the grid's dimensions in the grid's order): row-major over the window's
/// other dimensions.
///
/// # Errors
/// What the host's reads fail with.
pub(crate) async fn field_mean(
    host: &Host,
    dataset: &str,
    name: &str,
    v: &VariableMeta,
    window: &Window,
    grid_position: &[Option<usize>],
    weights: &[f64],
) -> Result<Vec<f64>, Error> {
    let dims = v.shape.len();
    let kept: Vec<usize> = (0..dims).filter(|&d| grid_position[d].is_none()).collect();
    let out_len = kept.iter().map(|&d| window.count[d]).product::<u64>() as usize;
    // The grid's dimensions in the grid's order, and each dimension's stride into the output
    // or into the grid's cells.
    let mut grid_sizes: Vec<(usize, usize)> =
        (0..dims).filter_map(|d| grid_position[d].map(|g| (g, window.count[d] as usize))).collect();
    grid_sizes.sort_unstable();
    let strides: Vec<usize> = (0..dims)
        .map(|d| match grid_position[d] {
            Some(g) => grid_sizes.iter().filter(|(h, _)| *h > g).map(|(_, n)| n).product(),
            None => kept.iter().filter(|&&k| k > d).map(|&k| window.count[k] as usize).product(),
        })
        .collect();
    let grid_dims = grid_sizes.len();
    let trailing = (0..grid_dims).all(|g| grid_position[dims - grid_dims + g] == Some(g));
    let (mut sums, mut totals) = (vec![0.0; out_len], vec![0.0; out_len]);
    // Stream along the first kept dimension (time, usually); the window at once without one.
    let axis = kept.first().copied();
    let rest: usize = kept.iter().skip(1).map(|&d| window.count[d] as usize).product();
    let cells = weights.len().max(1);
    for_each_block(host, dataset, name, v, window, axis, |offset, count, values| {
        if trailing {
            // The usual layout (time, ..., lat, lon): each run of `cells` values is one output
            // position's field, in the weights' order.
            let first = offset * rest;
            for (row, field) in values.chunks_exact(cells).enumerate() {
                let (mut sum, mut total) = (0.0, 0.0);
                for (&x, &w) in field.iter().zip(weights) {
                    if !x.is_nan() && w > 0.0 {
                        sum += w * x;
                        total += w;
                    }
                }
                sums[first + row] += sum;
                totals[first + row] += total;
            }
            return;
        }
        let mut extent: Vec<usize> = window.count.iter().map(|&c| c as usize).collect();
        let mut from = vec![0usize; dims];
        if let Some(a) = axis {
            (from[a], extent[a]) = (offset, count);
        }
        let mut index = vec![0usize; dims];
        for &value in values {
            if !value.is_nan() {
                let (mut out, mut cell) = (0usize, 0usize);
                for (d, &i) in index.iter().enumerate() {
                    let at = (i + from[d]) * strides[d];
                    if grid_position[d].is_some() {
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
            for d in (0..dims).rev() {
                index[d] += 1;
                if index[d] < extent[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    })
    .await?;
    Ok(sums.iter().zip(&totals).map(|(s, t)| if *t > 0.0 { s / t } else { f64::NAN }).collect())
}

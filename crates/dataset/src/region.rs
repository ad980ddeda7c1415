//! Hyperslab arithmetic: validating chunk keys, copying blocks between C-order buffers, and
//! region reads assembled from chunk reads.

use futures::StreamExt as _;

use cloudify_sdk::hyperslab::pad;
pub(crate) use cloudify_sdk::hyperslab::{copy_block, Layout};

use crate::{variable, Error, Result, Source, VariableMeta};

/// How many chunks a region read fetches at once.
const CONCURRENT_CHUNK_READS: usize = 8;

/// Checks `index` against the chunk grid of `var` (named `name`).
///
/// # Errors
/// [`Error::WrongRank`] or [`Error::ChunkOutOfRange`].
pub fn check_chunk_index(name: &str, var: &VariableMeta, index: &[u64]) -> Result<()> {
    if index.len() != var.shape.len() {
        return Err(Error::WrongRank { variable: name.to_owned(), expected: var.shape.len(), found: index.len() });
    }
    let grid = var.chunk_grid();
    if index.iter().zip(&grid).any(|(i, n)| i >= n) {
        return Err(Error::ChunkOutOfRange { variable: name.to_owned(), index: index.to_vec(), grid });
    }
    Ok(())
}

/// One element of `var`'s fill value, little-endian (zeros when it has none).
pub fn fill_element(var: &VariableMeta) -> Vec<u8> {
    var.dtype.element(&var.fill_value)
}

/// A full chunk of `var` holding only its fill value.
pub fn fill_chunk(var: &VariableMeta) -> Vec<u8> {
    let count = var.chunks.iter().product::<u64>() as usize;
    let element = fill_element(var);
    if var.dtype.is_variable_length() {
        cloudify_sdk::strings::filled(&element, count)
    } else {
        element.repeat(count)
    }
}

/// The values of a block of `count` elements at a chunk's origin, padded with the fill value
/// to `var`'s full chunk shape (fixed-size types).
pub fn pad_chunk(block: &[u8], count: &[u64], var: &VariableMeta) -> Vec<u8> {
    pad(block, count, &var.chunks, &fill_element(var))
}

/// Reads `shape` elements of `name` from `start`, assembled from chunk reads, as
/// little-endian C-order values. `limit` caps the bytes produced.
///
/// # Errors
/// [`Error::BadSelection`] for a selection of the wrong rank or outside the array,
/// [`Error::TooLarge`] over `limit`, [`Error::Unsupported`] for variable-length strings
/// (whose chunks are read whole), and any chunk-read error.
pub async fn read_region(source: &dyn Source, name: &str, start: &[u64], shape: &[u64], limit: u64) -> Result<Vec<u8>> {
    read_region_counted(source, name, start, shape, limit, &|| ()).await
}

/// [`read_region`], calling `chunk_read` as each chunk arrives (a progress bar's tick).
///
/// # Errors
/// As [`read_region`].
pub async fn read_region_counted(
    source: &dyn Source,
    name: &str,
    start: &[u64],
    shape: &[u64],
    limit: u64,
    chunk_read: &(dyn Fn() + Sync),
) -> Result<Vec<u8>> {
    let meta = source.metadata()?;
    let var = variable(&meta, name)?;
    if var.dtype.is_variable_length() {
        return Err(Error::Unsupported {
            what: format!("regions of '{name}', whose strings vary in length: read its chunks"),
        });
    }
    let bad = |reason: String| Error::BadSelection { variable: name.to_owned(), reason };
    if start.len() != var.shape.len() || shape.len() != var.shape.len() {
        return Err(bad(format!("expected {} dimensions", var.shape.len())));
    }
    if let Some(d) = (0..start.len()).find(|&d| start[d].checked_add(shape[d]).is_none_or(|end| end > var.shape[d])) {
        return Err(bad(format!(
            "dimension {d} selects {}..{} of {}",
            start[d],
            start[d].saturating_add(shape[d]),
            var.shape[d]
        )));
    }
    let elem = var.dtype.size();
    let bytes = shape.iter().try_fold(elem as u64, |acc, &n| acc.checked_mul(n)).unwrap_or(u64::MAX);
    if bytes > limit {
        return Err(Error::TooLarge { bytes, limit });
    }
    let mut out = vec![0u8; bytes as usize];
    if bytes == 0 {
        return Ok(out);
    }
    let rank = shape.len();
    let first: Vec<u64> = (0..rank).map(|d| start[d] / var.chunks[d]).collect();
    let last: Vec<u64> = (0..rank).map(|d| (start[d] + shape[d] - 1) / var.chunks[d]).collect();
    let mut chunks = Vec::new();
    let mut chunk = first.clone();
    'grid: loop {
        chunks.push(chunk.clone());
        // Next chunk in C order within [first, last].
        let mut dim = rank;
        loop {
            if dim == 0 {
                break 'grid;
            }
            dim -= 1;
            chunk[dim] += 1;
            if chunk[dim] <= last[dim] {
                break;
            }
            chunk[dim] = first[dim];
        }
    }
    // Chunks are fetched and decoded concurrently, and copied in as they arrive.
    let mut arrivals = futures::stream::iter(chunks)
        .map(|chunk| async move { source.read_chunk(name, &chunk).await.map(|data| (chunk, data)) })
        .buffer_unordered(CONCURRENT_CHUNK_READS);
    while let Some(arrival) = arrivals.next().await {
        let (chunk, data) = arrival?;
        chunk_read();
        // Overlap of this chunk with the selection, in array coordinates.
        let lo: Vec<u64> = (0..rank).map(|d| start[d].max(chunk[d] * var.chunks[d])).collect();
        let hi: Vec<u64> = (0..rank).map(|d| (start[d] + shape[d]).min((chunk[d] + 1) * var.chunks[d])).collect();
        let count: Vec<u64> = (0..rank).map(|d| hi[d] - lo[d]).collect();
        let src_origin: Vec<u64> = (0..rank).map(|d| lo[d] - chunk[d] * var.chunks[d]).collect();
        let dst_origin: Vec<u64> = (0..rank).map(|d| lo[d] - start[d]).collect();
        copy_block(
            &data,
            Layout { shape: &var.chunks, elem },
            &src_origin,
            &mut out,
            Layout { shape, elem },
            &dst_origin,
            &count,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (`cargo bolero test -p cloudify-dataset fuzz_region_selections`): any
    /// selection of any variable gives exactly its bytes or an error, never a panic or an
    /// allocation over the limit.
    #[test]
    fn fuzz_region_selections() {
        let runtime = std::panic::AssertUnwindSafe(tokio::runtime::Builder::new_current_thread().build().unwrap());
        let demo = std::panic::AssertUnwindSafe(crate::demo_dataset("demo").unwrap());
        let meta = demo.metadata().unwrap();
        let names: Vec<&String> = meta.variables.keys().collect();
        bolero::check!().with_type::<(u8, Vec<u64>, Vec<u64>)>().for_each(|(which, start, shape)| {
            let name = names[usize::from(*which) % names.len()];
            let limit = 1 << 20;
            if let Ok(bytes) = runtime.block_on(read_region(&*demo, name, start, shape, limit)) {
                let expected = shape.iter().product::<u64>() * meta.variables[name].dtype.size() as u64;
                assert_eq!(bytes.len() as u64, expected);
                assert!(expected <= limit);
            }
        });
    }
}

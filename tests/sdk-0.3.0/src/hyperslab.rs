//! Hyperslab copies between little-endian C-order buffers: assembling regions from chunks and
//! padding edge chunks to the full chunk shape.

/// The position of chunk `index` in a C-order walk over a chunk `grid` (the inverse of
/// [`unravel`]).
pub fn ravel(index: &[u64], grid: &[u64]) -> u64 {
    index.iter().zip(grid).fold(0, |flat, (&i, &n)| flat * n + i)
}

/// The chunk index at position `flat` of a C-order walk over a chunk `grid`.
pub fn unravel(mut flat: u64, grid: &[u64]) -> Vec<u64> {
    let mut index = vec![0; grid.len()];
    for d in (0..grid.len()).rev() {
        index[d] = flat % grid[d];
        flat /= grid[d];
    }
    index
}

/// A C-order buffer's shape together with the element size.
#[derive(Clone, Copy)]
pub struct Layout<'a> {
    /// Extent of each dimension.
    pub shape: &'a [u64],
    /// Bytes per element.
    pub elem: usize,
}

/// Copies the block of `count` elements at `src_origin` in `src` to `dst_origin` in `dst`.
/// The caller guarantees that the block lies inside both buffers.
pub fn copy_block(
    src: &[u8],
    src_layout: Layout<'_>,
    src_origin: &[u64],
    dst: &mut [u8],
    dst_layout: Layout<'_>,
    dst_origin: &[u64],
    count: &[u64],
) {
    let elem = src_layout.elem;
    let rank = count.len();
    if count.contains(&0) {
        return;
    }
    if rank == 0 {
        dst[..elem].copy_from_slice(&src[..elem]);
        return;
    }
    let strides = |shape: &[u64]| {
        let mut s = vec![1u64; rank];
        for d in (0..rank.saturating_sub(1)).rev() {
            s[d] = s[d + 1] * shape[d + 1];
        }
        s
    };
    let (src_strides, dst_strides) = (strides(src_layout.shape), strides(dst_layout.shape));
    let run = count[rank - 1] as usize * elem;
    // Walk every position of the outer dimensions; the innermost one is one contiguous run.
    let mut pos = vec![0u64; rank - 1];
    loop {
        let offset = |origin: &[u64], strides: &[u64]| -> usize {
            let mut o = origin[rank - 1];
            for d in 0..rank - 1 {
                o += (origin[d] + pos[d]) * strides[d];
            }
            o as usize * elem
        };
        let (s, d) = (offset(src_origin, &src_strides), offset(dst_origin, &dst_strides));
        dst[d..d + run].copy_from_slice(&src[s..s + run]);
        let mut dim = rank - 1;
        loop {
            if dim == 0 {
                return;
            }
            dim -= 1;
            pos[dim] += 1;
            if pos[dim] < count[dim] {
                break;
            }
            pos[dim] = 0;
        }
    }
}

/// A block of `count` elements placed at the origin of a chunk of `chunk_shape` elements, the
/// rest filled with `element` (Zarr edge chunks have the full shape).
pub fn pad(block: &[u8], count: &[u64], chunk_shape: &[u64], element: &[u8]) -> Vec<u8> {
    let layout = |shape| Layout { shape, elem: element.len() };
    let mut out = element.repeat(chunk_shape.iter().product::<u64>() as usize);
    let origin = vec![0; count.len()];
    copy_block(block, layout(count), &origin, &mut out, layout(chunk_shape), &origin, count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ravel_and_unravel_are_inverse() {
        let grid = [3, 1, 4];
        for flat in 0..12 {
            assert_eq!(ravel(&unravel(flat, &grid), &grid), flat);
        }
        assert_eq!(unravel(7, &grid), [1, 0, 3]);
        assert_eq!(ravel(&[], &[]), 0);
    }

    #[test]
    fn blocks_are_padded_at_the_origin() {
        assert_eq!(pad(&[1, 2, 3, 4, 5, 6], &[2, 3], &[3, 4], &[0]), [1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
        assert_eq!(pad(&[1, 2, 3, 4], &[2, 1, 2], &[2, 2, 2], &[9]), [1, 2, 9, 9, 3, 4, 9, 9]);
        assert_eq!(pad(&[7, 8], &[1], &[2], &[0, 1]), [7, 8, 0, 1]);
        assert_eq!(pad(&[5], &[], &[], &[0]), [5]);
    }
}

//! A rendered store's arrays written into an Icechunk session: chunks stored as byte ranges
//! of files become virtual references, the others native chunks. `virtualize` writes files
//! this way, the `/icechunk/` export a dataset of the server.

use bytes::Bytes;
use cloudify_sdk::{hyperslab::unravel, ChunkRef, ErrorKind};
use cloudify_zarr_store::{ChunkAccess, Format, Store as Rendered};
use icechunk::{
    format::{
        manifest::{Checksum, VirtualChunkLocation, VirtualChunkRef},
        ChunkIndices, Path,
    },
    store::SetVirtualRefsResult,
    Store,
};

/// Chunks written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Virtual references.
    pub(crate) virtual_chunks: u64,
    /// Native chunks.
    pub(crate) native_chunks: u64,
}

/// Every chunk of array `name` of `rendered` into `writer`: stored byte ranges of at least
/// `inline_threshold` bytes as virtual references at the location (and checksum) `place`
/// gives for their URL (none: clients cannot reach it, the bytes are copied); the others native (stored or inline bytes, or the values encoded with
/// the declared v3 chain); never-written chunks left out (the fill value). `offset` shifts the
/// chunk indices along an axis (appended files).
pub(crate) async fn write_array(
    writer: &Store,
    rendered: &Rendered,
    name: &str,
    access: &impl ChunkAccess,
    place: &mut impl FnMut(String) -> Result<Option<(String, Option<Checksum>)>, String>,
    offset: Option<(usize, u64)>,
    inline_threshold: u64,
) -> Result<Counts, String> {
    let array = rendered.arrays.get(name).ok_or_else(|| format!("no array '{name}'"))?;
    let in_array = |e: &dyn std::fmt::Display| format!("'{name}': {e}");
    let grid = array.grid();
    let mut counts = Counts::default();
    let mut references = Vec::new();
    // The last file's URL and where it was placed: runs of chunks come from one file, whose
    // location is worked out (and parsed) once.
    let mut placed: Option<(String, Placement)> = None;
    for flat in 0..grid.iter().product::<u64>() {
        let index = unravel(flat, &grid);
        let mut target: Vec<u32> = index
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| in_array(&"chunk grid too large")))
            .collect::<Result<_, _>>()?;
        if let Some((axis, by)) = offset {
            target[axis] =
                u32::try_from(u64::from(target[axis]) + by).map_err(|_| in_array(&"chunk grid too large"))?;
        }
        let located = match access.locate(name, &index).await {
            // Sources without chunk references have no stored bytes to point at.
            Err(err) if err.kind() == ErrorKind::UNSUPPORTED => ChunkRef::Computed,
            located => located.map_err(|e| in_array(&e))?,
        };
        let native = match located {
            ChunkRef::Range { url, offset, length } if array.stored_bytes && length >= inline_threshold => {
                let url = url.into_string();
                if placed.as_ref().is_none_or(|(seen, _)| *seen != url) {
                    let location = match place(url.clone())? {
                        Some((location, checksum)) => {
                            Some((VirtualChunkLocation::from_url(&location).map_err(|e| in_array(&e))?, checksum))
                        }
                        None => None,
                    };
                    placed = Some((url, location));
                }
                match placed.as_ref().and_then(|(_, location)| location.clone()) {
                    Some((location, checksum)) => {
                        let reference = VirtualChunkRef { location, offset, length, checksum };
                        references.push((ChunkIndices(target), reference));
                        continue;
                    }
                    None => access.stored(name, &index).await.map_err(|e| in_array(&e))?,
                }
            }
            ChunkRef::Range { .. } if array.stored_bytes => {
                access.stored(name, &index).await.map_err(|e| in_array(&e))?
            }
            ChunkRef::Inline(bytes) if array.stored_bytes => bytes.into_vec(),
            // Zarr v3 metadata always declares the fill value absent chunks read as.
            ChunkRef::Missing => continue,
            _ => access.encoded(name, &index, Format::V3).await.map_err(|e| in_array(&e))?,
        };
        writer.set(&chunk_key(name, &target), Bytes::from(native)).await.map_err(|e| in_array(&e))?;
        counts.native_chunks += 1;
    }
    counts.virtual_chunks = references.len() as u64;
    let path = Path::new(&format!("/{name}")).map_err(|e| in_array(&e))?;
    match writer.set_virtual_refs(&path, true, references).await.map_err(|e| in_array(&e))? {
        SetVirtualRefsResult::Done => Ok(counts),
        SetVirtualRefsResult::FailedRefs(failed) => {
            Err(in_array(&format!("{} chunks lie outside every virtual chunk container", failed.len())))
        }
    }
}

/// Where a file's chunks point and their checksum; `None` when their bytes are copied in.
type Placement = Option<(VirtualChunkLocation, Option<Checksum>)>;

/// The chunk key of grid index `index` (Zarr v3's default encoding).
pub(crate) fn chunk_key(name: &str, index: &[u32]) -> String {
    let mut key = format!("{name}/c");
    for i in index {
        key.push('/');
        key.push_str(&i.to_string());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_follow_zarr_v3_default_encoding() {
        assert_eq!(chunk_key("tas", &[1, 0, 2]), "tas/c/1/0/2");
        assert_eq!(chunk_key("height", &[]), "height/c");
    }
}

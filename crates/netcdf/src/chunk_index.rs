//! Every stored chunk of an HDF5 dataset in one walk of its chunk index, with the pure-Rust
//! `hdf5-reader`. libhdf5 1.10 (Debian's) has no `H5Dchunk_iter`: it finds chunks one at a
//! time, each lookup walking the index from its start, so locating a variable's chunks took
//! time quadratic in their number (0.15 s for 3,650 chunks, minutes for 36,500); one walk
//! takes about 1 ms for 3,650. libhdf5 stays the authority for everything else and the
//! fallback when this reader cannot walk an index.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
};

use hdf5_reader::{
    btree_v1::{collect_btree_v1_leaves_storage, BTreeV1Key},
    chunk_index::{collect_implicit_chunk_entries, collect_v2_chunk_entries_storage, single_chunk_entry, ChunkEntry},
    extensible_array::collect_extensible_array_chunk_entries_storage,
    fixed_array::collect_fixed_array_chunk_entries_storage,
    messages::{
        layout::{ChunkIndexing, DataLayout},
        HdfMessage,
    },
    Hdf5File,
};

/// Where a stored chunk is.
pub(crate) struct FoundChunk {
    /// Its first element.
    pub offset: Vec<u64>,
    pub addr: u64,
    pub size: u64,
    pub filter_mask: u32,
}

/// One HDF5 file, opened to walk the chunk indexes of its datasets.
pub(crate) struct ChunkIndexes {
    file: Hdf5File,
}

impl ChunkIndexes {
    /// `None` when this reader cannot open the file (libhdf5 then looks chunks up itself).
    pub(crate) fn open(path: &Path) -> Option<Self> {
        match guarded(|| Hdf5File::open(path).map_err(|e| e.to_string())) {
            Ok(file) => Some(Self { file }),
            Err(reason) => {
                tracing::debug!(file = %path.display(), "chunk indexes left to libhdf5: {reason}");
                None
            }
        }
    }

    /// The stored chunks of the chunked dataset at `path` (`group/variable`), in index order,
    /// or why its index cannot be walked here.
    pub(crate) fn chunks(&self, path: &str) -> Result<Vec<FoundChunk>, String> {
        guarded(|| self.walk(path).map_err(|e| e.to_string()))
    }

    fn walk(&self, path: &str) -> hdf5_reader::error::Result<Vec<FoundChunk>> {
        use hdf5_reader::error::Error;
        let dataset = self.file.dataset(path)?;
        let header = self.file.get_or_parse_header(dataset.address())?;
        let layout = header.messages.iter().find_map(|message| match message {
            HdfMessage::DataLayout(message) => Some(&message.layout),
            _ => None,
        });
        let (Some(DataLayout::Chunked { address, dims: stored_dims, element_size, chunk_indexing }), Some(dims)) =
            (layout, dataset.chunks())
        else {
            return Err(Error::InvalidData("not a chunked dataset".into()));
        };
        // Older layout messages end the chunk shape with the element size (`dataset.chunks()`
        // has it dropped).
        let element_size = match stored_dims.get(dims.len()) {
            Some(&size) if *element_size == 0 => size,
            _ => *element_size,
        };
        let dims = &dims;
        let (storage, superblock) = (self.file.storage(), self.file.superblock());
        let (offset_size, length_size) = (superblock.offset_size, superblock.length_size);
        if hdf5_reader::io::Cursor::is_undefined_offset(*address, offset_size) {
            return Ok(Vec::new()); // nothing written yet
        }
        let shape = dataset.shape();
        let entries = match chunk_indexing {
            None => {
                let rank = u32::try_from(shape.len()).map_err(|_| Error::InvalidData("rank".into()))?;
                let leaves = collect_btree_v1_leaves_storage(
                    storage,
                    *address,
                    offset_size,
                    length_size,
                    Some(rank),
                    dims,
                    None,
                )?;
                let mut entries = Vec::with_capacity(leaves.len());
                for (key, addr) in leaves {
                    let BTreeV1Key::RawData { chunk_size, filter_mask, offsets } = key else {
                        return Err(Error::InvalidData("a chunk B-tree key is not a chunk's".into()));
                    };
                    let offset = offsets.get(..shape.len()).ok_or_else(|| Error::InvalidData("short key".into()))?;
                    entries.push(ChunkEntry {
                        address: addr,
                        size: u64::from(chunk_size),
                        filter_mask,
                        offsets: offset.to_vec(),
                    });
                }
                entries
            }
            Some(ChunkIndexing::SingleChunk { filtered_size, filters }) => {
                vec![single_chunk_entry(*address, *filtered_size, *filters, shape.len())]
            }
            Some(ChunkIndexing::Implicit) => {
                let element_size =
                    usize::try_from(element_size).map_err(|_| Error::InvalidData("element size".into()))?;
                collect_implicit_chunk_entries(*address, shape, dims, element_size, None, storage.len())?
            }
            Some(ChunkIndexing::FixedArray { .. }) => collect_fixed_array_chunk_entries_storage(
                storage,
                *address,
                offset_size,
                length_size,
                shape,
                dims,
                None,
            )?,
            Some(ChunkIndexing::ExtensibleArray { .. }) => collect_extensible_array_chunk_entries_storage(
                storage,
                *address,
                offset_size,
                length_size,
                shape,
                dataset.max_dims(),
                dims,
                None,
            )?,
            Some(ChunkIndexing::BTreeV2) => {
                let rank = u32::try_from(shape.len()).map_err(|_| Error::InvalidData("rank".into()))?;
                collect_v2_chunk_entries_storage(storage, *address, offset_size, length_size, rank, dims, None)?
            }
        };
        Ok(entries
            .into_iter()
            .map(|entry| FoundChunk {
                offset: entry.offsets,
                addr: entry.address,
                size: entry.size,
                filter_mask: entry.filter_mask,
            })
            .collect())
    }
}

/// A third-party parser over bytes from anywhere: a panic in it is a file it cannot read.
fn guarded<T>(walk: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(walk)).unwrap_or_else(|_| Err("the chunk index reader panicked".to_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    use hdf5_metno::{plist::dataset_create::AllocTime, File};

    use super::*;

    /// Datasets of 12 × 6 `f32` in each kind of chunk index libhdf5 writes, named after the
    /// kind, in `earliest.h5` (the oldest file format) and `latest.h5`.
    pub(crate) const CASES: [&str; 7] = [
        "btree_v1",
        "extensible_array",
        "btree_v2",
        "fixed_array",
        "fixed_array_part_written",
        "single_chunk",
        "implicit",
    ];

    pub(crate) fn write_cases(dir: &Path) {
        let values: Vec<f32> = (0..72).map(|i| i as f32).collect();
        // (chunk shape, rows written, resizable dimensions, filtered, allocated early): the
        // index libhdf5 picks follows from these.
        let settings = [
            ([1, 6], 12, [true, false], true, false),
            ([1, 6], 12, [true, false], true, false),
            ([2, 4], 12, [true, true], true, false),
            ([2, 3], 12, [false, false], true, false),
            ([2, 3], 5, [false, false], true, false),
            ([12, 6], 12, [false, false], true, false),
            ([2, 3], 12, [false, false], false, true),
        ];
        let earliest = File::create(dir.join("earliest.h5")).unwrap();
        let latest = File::with_options().with_fapl(|p| p.libver_latest()).create(dir.join("latest.h5")).unwrap();
        for (name, (chunk, rows, resizable, filtered, early)) in CASES.into_iter().zip(settings) {
            let h5 = if name == "btree_v1" { &earliest } else { &latest };
            let extent = |n: usize, grows: bool| if grows { hdf5_metno::Extent::resizable(n) } else { n.into() };
            let mut builder = h5.new_dataset::<f32>().shape([extent(12, resizable[0]), extent(6, resizable[1])]);
            builder = builder.chunk(chunk);
            if filtered {
                builder = builder.shuffle().deflate(1);
            }
            if early {
                builder = builder.alloc_time(Some(AllocTime::Early));
            }
            let ds = builder.create(name).unwrap();
            let written = ndarray::Array2::from_shape_vec((rows, 6), values[..rows * 6].to_vec()).unwrap();
            ds.write_slice(&written, (0..rows, ..)).unwrap();
        }
        // Every handle (datasets, builders) is gone: closing flushes the files.
        earliest.close().unwrap();
        latest.close().unwrap();
    }

    pub(crate) fn file_of(name: &str) -> &'static str {
        if name == "btree_v1" {
            "earliest.h5"
        } else {
            "latest.h5"
        }
    }

    /// Every kind of chunk index, walked here, equals libhdf5's own answer chunk by chunk
    /// (address, size, filter mask, first element).
    #[test]
    fn walks_agree_with_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path());
        for name in CASES {
            let path = dir.path().join(file_of(name));
            let indexes = ChunkIndexes::open(&path).unwrap();
            assert_eq!(index_kind(&indexes.file, name), name.trim_end_matches("_part_written"));
            let walked = indexes.chunks(name).unwrap();
            let h5 = File::open(&path).unwrap();
            let ds = h5.dataset(name).unwrap();
            let mut expected: Vec<(Vec<u64>, u64, u64, u32)> = (0..ds.num_chunks().unwrap())
                .map(|i| ds.chunk_info(i).unwrap())
                .map(|c| (c.offset, c.addr, c.size, c.filter_mask))
                .collect();
            let mut found: Vec<_> = walked.into_iter().map(|c| (c.offset, c.addr, c.size, c.filter_mask)).collect();
            expected.sort();
            found.sort();
            assert!(!expected.is_empty(), "{name}: libhdf5 found no chunks");
            assert_eq!(found, expected, "{name}");
        }
    }

    /// Fuzz target (`cargo bolero test -p cloudify-netcdf fuzz_chunk_index_walk`): the files
    /// above with any bytes overwritten walk to chunks or to a refusal; never an abort, a
    /// hang, or a panic escaping the walk.
    #[test]
    fn fuzz_chunk_index_walk() {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path());
        let originals: Vec<Vec<u8>> =
            ["earliest.h5", "latest.h5"].iter().map(|f| std::fs::read(dir.path().join(f)).unwrap()).collect();
        let mutated = dir.path().join("mutated.h5");
        bolero::check!().with_type::<(bool, Vec<(u16, u8)>)>().for_each(|(latest, edits)| {
            let mut bytes = originals[usize::from(*latest)].clone();
            let len = bytes.len();
            for &(at, byte) in edits {
                bytes[usize::from(at) % len] = byte;
            }
            std::fs::write(&mutated, &bytes).unwrap();
            if let Some(indexes) = ChunkIndexes::open(&mutated) {
                for name in CASES {
                    if let Ok(chunks) = indexes.chunks(name) {
                        assert!(chunks.len() as u64 <= bytes.len() as u64, "{name}: more chunks than bytes");
                    }
                }
            }
        });
    }

    /// The kind of `name`'s chunk index, named as the cases are.
    fn index_kind(file: &Hdf5File, name: &str) -> &'static str {
        let header = file.get_or_parse_header(file.dataset(name).unwrap().address()).unwrap();
        let layout = header.messages.iter().find_map(|m| match m {
            HdfMessage::DataLayout(message) => Some(message.layout.clone()),
            _ => None,
        });
        match layout {
            Some(DataLayout::Chunked { chunk_indexing, .. }) => match chunk_indexing {
                None => "btree_v1",
                Some(ChunkIndexing::SingleChunk { .. }) => "single_chunk",
                Some(ChunkIndexing::Implicit) => "implicit",
                Some(ChunkIndexing::FixedArray { .. }) => "fixed_array",
                Some(ChunkIndexing::ExtensibleArray { .. }) => "extensible_array",
                Some(ChunkIndexing::BTreeV2) => "btree_v2",
            },
            _ => "not chunked",
        }
    }
}

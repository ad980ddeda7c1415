//! NetCDF4 / HDF5 files: metadata through libnetcdf, chunk addresses through libhdf5.

use std::path::Path;

use cloudify_dataset::{
    hyperslab::{ravel, unravel},
    DataType, DatasetMeta, Limits, StoredChunk, VariableChunks, VariableMeta, VirtualDataset,
};
use hdf5_metno::{dataset::Layout, filters::Filter, Dataset};
use indexmap::IndexMap;
use netcdf::{
    types::{FloatType, IntType, NcVariableType},
    AttributeValue, Endianness,
};
use serde_json::{json, Map, Value};

use crate::{
    attrs,
    chunk_index::{ChunkIndexes, FoundChunk},
    Error, Result, Scan,
};

fn dtype(vartype: &NcVariableType) -> Option<DataType> {
    Some(match vartype {
        NcVariableType::Int(IntType::I8) => DataType::Int8,
        NcVariableType::Int(IntType::I16) => DataType::Int16,
        NcVariableType::Int(IntType::I32) => DataType::Int32,
        NcVariableType::Int(IntType::I64) => DataType::Int64,
        NcVariableType::Int(IntType::U8) => DataType::Uint8,
        NcVariableType::Int(IntType::U16) => DataType::Uint16,
        NcVariableType::Int(IntType::U32) => DataType::Uint32,
        NcVariableType::Int(IntType::U64) => DataType::Uint64,
        NcVariableType::Float(FloatType::F32) => DataType::Float32,
        NcVariableType::Float(FloatType::F64) => DataType::Float64,
        NcVariableType::Char => DataType::Char,
        NcVariableType::String => DataType::String,
        _ => return None,
    })
}

fn value(value: AttributeValue) -> Value {
    use AttributeValue as A;
    let ints = |v: Vec<i64>| attrs::scalar_or_list(v.into_iter().map(Value::from).collect());
    let uints = |v: Vec<u64>| attrs::scalar_or_list(v.into_iter().map(Value::from).collect());
    let floats = |v: Vec<f64>| attrs::scalar_or_list(v.into_iter().map(attrs::float).collect());
    match value {
        A::Str(s) => Value::String(s),
        A::Strs(v) => attrs::scalar_or_list(v.into_iter().map(Value::String).collect()),
        A::Schar(x) => json!(x),
        A::Schars(v) => ints(v.into_iter().map(i64::from).collect()),
        A::Short(x) => json!(x),
        A::Shorts(v) => ints(v.into_iter().map(i64::from).collect()),
        A::Int(x) => json!(x),
        A::Ints(v) => ints(v.into_iter().map(i64::from).collect()),
        A::Longlong(x) => json!(x),
        A::Longlongs(v) => ints(v),
        A::Uchar(x) => json!(x),
        A::Uchars(v) => uints(v.into_iter().map(u64::from).collect()),
        A::Ushort(x) => json!(x),
        A::Ushorts(v) => uints(v.into_iter().map(u64::from).collect()),
        A::Uint(x) => json!(x),
        A::Uints(v) => uints(v.into_iter().map(u64::from).collect()),
        A::Ulonglong(x) => json!(x),
        A::Ulonglongs(v) => uints(v),
        A::Float(x) => attrs::float(f64::from(x)),
        A::Floats(v) => floats(v.into_iter().map(f64::from).collect()),
        A::Double(x) => attrs::float(x),
        A::Doubles(v) => floats(v),
    }
}

fn attributes<'a>(list: impl Iterator<Item = netcdf::Attribute<'a>>, path: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for attr in list {
        match attr.value() {
            Ok(v) => {
                out.insert(attr.name().to_owned(), value(v));
            }
            Err(err) => tracing::warn!(file = path, attribute = attr.name(), "attribute skipped: {err}"),
        }
    }
    out
}

/// The Zarr v3 codec of each HDF5 filter, or why there is none.
fn codecs(filters: &[Filter], dtype: DataType, big_endian: bool) -> Result<Vec<Value>, String> {
    let mut chain = vec![attrs::bytes_codec(dtype, big_endian)];
    for filter in filters {
        chain.push(match filter {
            Filter::Shuffle => json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": dtype.size()}}),
            Filter::Deflate(level) => json!({"name": "numcodecs.zlib", "configuration": {"level": level}}),
            // numcodecs' Fletcher32 is HDF5's: the checksum of the bytes, appended.
            Filter::Fletcher32 => json!({"name": "numcodecs.fletcher32", "configuration": {}}),
            other => return Err(format!("HDF5 filter {other:?} has no codec here")),
        });
    }
    Ok(chain)
}

/// Where each chunk of `ds` (at `path` in the file) is, in C order over `var`'s chunk grid of
/// `count` chunks (checked against the limits by the caller).
fn locate(ds: &Dataset, indexes: Option<&ChunkIndexes>, path: &str, var: &VariableMeta, count: u64) -> VariableChunks {
    let fallback = |reason: &str| VariableChunks::Fallback { reason: reason.to_owned() };
    let grid = var.chunk_grid();
    let Ok(count) = usize::try_from(count) else {
        return fallback("too many chunks");
    };
    match ds.layout() {
        Layout::Contiguous => {
            let chunk = match ds.offset() {
                Some(addr) => StoredChunk::Range { file: 0, offset: addr, length: ds.storage_size() },
                None => StoredChunk::Missing,
            };
            VariableChunks::Stored(vec![chunk; count])
        }
        Layout::Chunked => {
            if var.chunks.len() != ds.ndim() {
                return fallback("chunk rank differs from the dataset's");
            }
            let walked = indexes.map(|indexes| indexes.chunks(path));
            if let Some(Err(reason)) = &walked {
                tracing::debug!(variable = path, "chunks looked up one by one: {reason}");
            }
            let found = match walked {
                Some(Ok(found)) => found,
                _ => match look_up_each(ds, var, count) {
                    Ok(found) => found,
                    Err(reason) => return fallback(reason),
                },
            };
            let mut chunks = vec![StoredChunk::Missing; count];
            for found in found {
                if found.filter_mask != 0 {
                    return fallback("some chunks skip filters");
                }
                if found.offset.len() != grid.len()
                    || found.offset.iter().zip(&var.chunks).any(|(o, c)| o.checked_rem(*c) != Some(0))
                {
                    return fallback("a chunk off the chunk grid");
                }
                let index: Vec<u64> =
                    found.offset.iter().zip(&var.chunks).map(|(offset, size)| offset / size).collect();
                // HDF5 keeps the chunks of a dataset shrunk since they were written.
                if index.iter().zip(&grid).any(|(i, n)| i >= n) {
                    continue;
                }
                if let Some(slot) = chunks.get_mut(ravel(&index, &grid) as usize) {
                    *slot = StoredChunk::Range { file: 0, offset: found.addr, length: found.size };
                }
            }
            VariableChunks::Stored(chunks)
        }
        #[allow(unreachable_patterns)]
        _ => fallback("virtual layout"),
    }
}

/// The stored chunks of `ds` through libhdf5, one lookup per chunk: for files the pure-Rust
/// index walk cannot read. Each lookup walks the chunk index (libhdf5 1.10): by coordinate
/// when most chunks exist, the faster walk; by position when few do (fewer lookups).
fn look_up_each(ds: &Dataset, var: &VariableMeta, count: usize) -> Result<Vec<FoundChunk>, &'static str> {
    let stored = ds.num_chunks().unwrap_or(0);
    if stored > count {
        return Err("the chunk index holds more chunks than the grid");
    }
    let grid = var.chunk_grid();
    let dense = stored.saturating_mul(2) >= count;
    let mut found = Vec::with_capacity(stored);
    for i in 0..if dense { count } else { stored } {
        let chunk = if dense {
            let start: Vec<u64> = unravel(i as u64, &grid).iter().zip(&var.chunks).map(|(i, c)| i * c).collect();
            match chunk_at(ds, &start) {
                Some(Some(chunk)) => Some(chunk),
                Some(None) => continue,
                None => None,
            }
        } else {
            ds.chunk_info(i).map(|info| FoundChunk {
                offset: info.offset,
                addr: info.addr,
                size: info.size,
                filter_mask: info.filter_mask,
            })
        };
        found.push(chunk.ok_or("chunk index unreadable")?);
    }
    Ok(found)
}

/// The chunk of `ds` starting at element `start` (one coordinate per dimension): `Some(None)`
/// when it was never written, `None` when the index cannot be read. `hdf5-metno` wraps the
/// lookup by position only.
#[allow(unsafe_code)]
fn chunk_at(ds: &Dataset, start: &[u64]) -> Option<Option<FoundChunk>> {
    use hdf5_metno_sys::{h5::HADDR_UNDEF, h5d::H5Dget_chunk_info_by_coord};
    let mut found = FoundChunk { offset: start.to_vec(), addr: 0, size: 0, filter_mask: 0 };
    // SAFETY: `start` holds one coordinate per dimension of `ds` (checked by the caller),
    // the out-pointers are fields of a live local, and hdf5-metno's lock serializes the call
    // with every other use of libhdf5.
    let status = hdf5_metno::sync::sync(|| unsafe {
        H5Dget_chunk_info_by_coord(ds.id(), start.as_ptr(), &mut found.filter_mask, &mut found.addr, &mut found.size)
    });
    if status < 0 {
        return None;
    }
    Some((found.addr != HADDR_UNDEF).then_some(found))
}

pub(crate) fn scan(path: &Path, location: &str, id: &str, limits: &Limits) -> Result<Scan> {
    let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt { path: location.to_owned(), reason: e.to_string() };
    let _library = crate::one_handle_at_a_time();
    // libhdf5 prints an error stack for every failed probe (libnetcdf probes attributes that
    // may not exist); errors reach us as values anyway.
    hdf5_metno::silence_errors(true);
    let nc = netcdf::open(path).map_err(|e| corrupt(&e))?;
    let h5 = hdf5_metno::File::open(path).map_err(|e| corrupt(&e))?;
    let root = nc.root().ok_or_else(|| corrupt(&"no root group"))?;
    let indexes = ChunkIndexes::open(path);
    let mut scanner = Scanner {
        h5: &h5,
        indexes: indexes.as_ref(),
        location,
        id,
        limits,
        chunks: 0,
        skipped: Vec::new(),
        groups: Vec::new(),
    };
    let dataset = scanner.group(&root, "", id)?;
    scanner.subgroups(&root, "")?;
    Ok(Scan { dataset, skipped: scanner.skipped, groups: scanner.groups })
}

/// One file's groups being scanned, and what the scan found so far.
struct Scanner<'a> {
    h5: &'a hdf5_metno::File,
    /// The same file for walking chunk indexes, where the pure-Rust reader opens it.
    indexes: Option<&'a ChunkIndexes>,
    location: &'a str,
    /// The root's dataset id.
    id: &'a str,
    limits: &'a Limits,
    /// Chunks located so far, in all groups.
    chunks: u64,
    /// Variables left out, by path, with the reason.
    skipped: Vec<(String, String)>,
    /// Sub-groups by path.
    groups: Vec<(String, VirtualDataset)>,
}

impl Scanner<'_> {
    /// Every group below `group` (at `prefix`), depth first, each as a dataset of its own.
    fn subgroups(&mut self, group: &netcdf::Group<'_>, prefix: &str) -> Result<()> {
        for child in group.groups() {
            let path = if prefix.is_empty() { child.name() } else { format!("{prefix}/{}", child.name()) };
            let dataset = self.group(&child, &path, &crate::group_id(self.id, &path))?;
            self.groups.push((path.clone(), dataset));
            self.subgroups(&child, &path)?;
        }
        Ok(())
    }

    /// The variables of one group (at `prefix`, empty for the root) as dataset `id`.
    fn group(&mut self, group: &netcdf::Group<'_>, prefix: &str, id: &str) -> Result<VirtualDataset> {
        let (h5, location) = (self.h5, self.location);
        let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt { path: location.to_owned(), reason: e.to_string() };
        let in_group = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let mut variables = IndexMap::new();
        let mut chunks = IndexMap::new();
        // The group's own dimensions, then those its variables take from enclosing groups.
        let mut dimensions: IndexMap<String, u64> = group.dimensions().map(|d| (d.name(), d.len() as u64)).collect();
        let mut unlimited: Vec<String> =
            group.dimensions().filter(netcdf::Dimension::is_unlimited).map(|d| d.name()).collect();
        for var in group.variables() {
            let name = var.name();
            for dim in var.dimensions() {
                if !dimensions.contains_key(&dim.name()) {
                    dimensions.insert(dim.name(), dim.len() as u64);
                    if dim.is_unlimited() {
                        unlimited.push(dim.name());
                    }
                }
            }
            let Some(dtype) = dtype(&var.vartype()) else {
                self.skipped.push((in_group(&name), format!("type {:?} is not served yet", var.vartype())));
                continue;
            };
            let shape: Vec<u64> = var.dimensions().iter().map(|d| d.len() as u64).collect();
            let chunk_shape = match var.chunking().map_err(|e| corrupt(&e))? {
                Some(c) => c.into_iter().map(|n| n as u64).collect(),
                None => shape.clone(),
            };
            let big_endian = match var.endianness().map_err(|e| corrupt(&e))? {
                Endianness::Big => true,
                Endianness::Little => false,
                Endianness::Native => cfg!(target_endian = "big"),
            };
            let attributes = attributes(var.attributes(), location);
            let fill_value = attributes.get("_FillValue").cloned().unwrap_or_else(|| attrs::default_fill(dtype));
            let mut meta = VariableMeta {
                dtype,
                dimensions: var.dimensions().iter().map(netcdf::Dimension::name).collect(),
                shape,
                chunks: chunk_shape,
                attributes,
                fill_value,
                codecs: Vec::new(),
            };
            // Checked before anything is sized by the shape: an 8 KB file can declare a
            // dimension of 2^36 with chunks of one element.
            let count = match self.limits.check_variable(&name, &meta) {
                Ok(count) => count,
                Err(reason) => {
                    self.skipped.push((in_group(&name), reason));
                    continue;
                }
            };
            self.chunks += count;
            if self.chunks > self.limits.max_chunks_per_dataset {
                let reason = format!("more than {} chunks in all", self.limits.max_chunks_per_dataset);
                return Err(Error::OverLimit { path: location.to_owned(), reason });
            }
            let located = match h5.dataset(&in_group(&name)) {
                // The chunks hold references into the file's global heap, not the strings.
                Ok(_) if dtype.is_variable_length() => {
                    VariableChunks::Fallback { reason: "variable-length strings".to_owned() }
                }
                // Compact data lives in the object header (64 KiB at most): kept inline, as the
                // little-endian values libnetcdf reads.
                Ok(ds) if matches!(ds.layout(), Layout::Compact) => {
                    meta.codecs = vec![attrs::bytes_codec(dtype, false)];
                    let values = var.get_raw_values(..).map_err(|e| corrupt(&e))?;
                    VariableChunks::Stored(vec![StoredChunk::Inline(values); count.min(1) as usize])
                }
                Ok(ds) => match codecs(&ds.filters(), dtype, big_endian) {
                    Ok(chain) => {
                        meta.codecs = chain;
                        locate(&ds, self.indexes, &in_group(&name), &meta, count)
                    }
                    Err(reason) => VariableChunks::Fallback { reason },
                },
                Err(err) => VariableChunks::Fallback { reason: format!("no HDF5 dataset: {err}") },
            };
            if let VariableChunks::Fallback { reason } = &located {
                tracing::debug!(file = location, variable = name, "read through libnetcdf: {reason}");
                // Decoded values come from libnetcdf: declare plain little-endian bytes.
                meta.codecs = vec![attrs::bytes_codec(dtype, false)];
            }
            chunks.insert(name.clone(), located);
            variables.insert(name, meta);
        }
        let meta = DatasetMeta {
            id: id.to_owned(),
            attributes: attributes(group.attributes(), location),
            dimensions,
            unlimited,
            last_modified: None,
            variables,
        };
        Ok(VirtualDataset { meta, files: vec![location.to_owned()], chunks })
    }
}

#[cfg(test)]
mod tests {
    use cloudify_dataset::DataType;

    use super::*;
    use crate::chunk_index::tests::{file_of, write_cases, CASES};

    /// libhdf5's lookups, the fallback when the index walk fails, place every chunk where the
    /// walk does, on every kind of chunk index.
    #[test]
    fn lookups_place_chunks_where_the_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path());
        for name in CASES {
            let path = dir.path().join(file_of(name));
            let indexes = ChunkIndexes::open(&path).unwrap();
            let h5 = hdf5_metno::File::open(&path).unwrap();
            let ds = h5.dataset(name).unwrap();
            let var = VariableMeta {
                dtype: DataType::Float32,
                dimensions: vec!["y".into(), "x".into()],
                shape: ds.shape().iter().map(|&n| n as u64).collect(),
                chunks: ds.chunk().unwrap().iter().map(|&n| n as u64).collect(),
                attributes: Map::new(),
                fill_value: Value::Null,
                codecs: Vec::new(),
            };
            let count = var.chunk_grid().iter().product();
            let walked = locate(&ds, Some(&indexes), name, &var, count);
            let looked_up = locate(&ds, None, name, &var, count);
            let VariableChunks::Stored(chunks) = &walked else { panic!("{name}: {walked:?}") };
            assert!(chunks.iter().any(|c| matches!(c, StoredChunk::Range { .. })), "{name}: no chunk located");
            assert_eq!(walked, looked_up, "{name}");
        }
    }
}

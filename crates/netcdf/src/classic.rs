//! NetCDF classic files: the header parser gives every offset; data is big-endian, uncompressed.

use std::{io::Read, path::Path};

use cloudify_dataset::{DataType, DatasetMeta, Limits, StoredChunk, VariableChunks, VariableMeta, VirtualDataset};
use cloudify_netcdf3::{AttrValue, Attribute, NcType};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::{attrs, Error, Result, Scan};

fn dtype(nc: NcType) -> DataType {
    match nc {
        NcType::Byte => DataType::Int8,
        NcType::Char => DataType::Char,
        NcType::Short => DataType::Int16,
        NcType::Int => DataType::Int32,
        NcType::Float => DataType::Float32,
        NcType::Double => DataType::Float64,
        NcType::UByte => DataType::Uint8,
        NcType::UShort => DataType::Uint16,
        NcType::UInt => DataType::Uint32,
        NcType::Int64 => DataType::Int64,
        NcType::UInt64 => DataType::Uint64,
    }
}

fn value(attr: &Attribute) -> Value {
    match &attr.value {
        AttrValue::Text(text) => Value::String(text.clone()),
        AttrValue::Ints(v) => attrs::scalar_or_list(v.iter().map(|&x| Value::from(x)).collect()),
        AttrValue::UInts(v) => attrs::scalar_or_list(v.iter().map(|&x| Value::from(x)).collect()),
        AttrValue::Floats(v) => attrs::scalar_or_list(v.iter().map(|&x| attrs::float(x)).collect()),
    }
}

fn attributes(list: &[Attribute]) -> Map<String, Value> {
    list.iter().map(|a| (a.name.clone(), value(a))).collect()
}

/// The largest header read: far over any real file's (attributes included), and a bound on
/// what a header that claims huge names or attribute lists makes the server read.
pub(crate) const MAX_HEADER_BYTES: u64 = 64 << 20;

/// How many bytes to read next for a header of which `have` bytes were read and that needed
/// `needed` more at `at`, out of a file of `file_len` bytes.
///
/// # Errors
/// [`Error::Corrupt`] naming `location` when the file cannot hold that, or the header would be
/// over [`MAX_HEADER_BYTES`].
pub(crate) fn grow_header_read(location: &str, have: u64, at: usize, needed: usize, file_len: u64) -> Result<u64> {
    let end = (at as u64).checked_add(needed as u64).filter(|&end| end <= file_len.min(MAX_HEADER_BYTES));
    match end {
        Some(end) if end > have => Ok(end.max(have.saturating_mul(4)).min(file_len).min(MAX_HEADER_BYTES)),
        _ => Err(Error::Corrupt {
            path: location.to_owned(),
            reason: format!("the header needs {needed} bytes at offset {at}: past the end of the file or over {MAX_HEADER_BYTES} bytes"),
        }),
    }
}

/// Reads as much of the file as the header needs, growing the read until it parses.
fn header(path: &Path, file_len: u64) -> Result<cloudify_netcdf3::Header> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Io { path: shown.clone(), reason: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let mut want = file_len.min(64 * 1024);
    loop {
        let have = bytes.len() as u64;
        (&mut file).take(want - have).read_to_end(&mut bytes).map_err(io)?;
        match cloudify_netcdf3::parse(&bytes) {
            Err(cloudify_netcdf3::Error::Truncated { at, needed }) => {
                want = grow_header_read(&shown, bytes.len() as u64, at, needed, file_len)?
            }
            Err(err) => return Err(Error::Corrupt { path: shown, reason: err.to_string() }),
            Ok(header) => return Ok(header),
        }
    }
}

pub(crate) fn scan(path: &Path, location: &str, id: &str, limits: &Limits) -> Result<Scan> {
    let file_len =
        std::fs::metadata(path).map_err(|e| Error::Io { path: location.to_owned(), reason: e.to_string() })?.len();
    let header = header(path, file_len)?;
    from_header(&header, file_len, location, id, limits)
}

/// The virtual dataset of a file of `file_len` bytes at `location` with `header`. Variables
/// over `limits` are left out.
pub(crate) fn from_header(
    header: &cloudify_netcdf3::Header,
    file_len: u64,
    location: &str,
    id: &str,
    limits: &Limits,
) -> Result<Scan> {
    let corrupt = |reason: String| Error::Corrupt { path: location.to_owned(), reason };
    let mut variables = IndexMap::new();
    let mut chunks = IndexMap::new();
    let mut skipped = Vec::new();
    let mut total = 0u64;
    for var in &header.variables {
        // Checked before anything is sized by the record count: a 144-byte file may claim
        // four billion records.
        let end = header.data_end(var).ok_or_else(|| corrupt(format!("variable {} overflows", var.name)))?;
        if end > file_len {
            return Err(corrupt(format!(
                "variable {} ends at byte {end} of a {file_len}-byte file (truncated?)",
                var.name
            )));
        }
        let dtype = dtype(var.nc_type);
        let shape = header.shape(var);
        let mut chunk_shape = shape.clone();
        if var.is_record {
            chunk_shape[0] = 1;
        }
        let attributes = attributes(&var.attributes);
        let fill_value = attributes.get("_FillValue").cloned().unwrap_or_else(|| attrs::default_fill(dtype));
        let meta = VariableMeta {
            dtype,
            dimensions: var.dim_ids.iter().map(|&d| header.dims[d].name.clone()).collect(),
            shape: shape.clone(),
            chunks: chunk_shape,
            attributes,
            fill_value,
            codecs: vec![attrs::bytes_codec(dtype, true)],
        };
        let count = match limits.check_variable(&var.name, &meta) {
            Ok(count) => count,
            Err(reason) => {
                skipped.push((var.name.clone(), reason));
                continue;
            }
        };
        total += count;
        if total > limits.max_chunks_per_dataset {
            let reason = format!("more than {} chunks in all", limits.max_chunks_per_dataset);
            return Err(Error::OverLimit { path: location.to_owned(), reason });
        }
        // Every record range lies before `end`, which was checked without overflow.
        let stored: Vec<StoredChunk> = (0..count)
            .filter_map(|record| header.range(var, record))
            .map(|(offset, length)| StoredChunk::Range { file: 0, offset, length })
            .collect();
        chunks.insert(var.name.clone(), VariableChunks::Stored(stored));
        variables.insert(var.name.clone(), meta);
    }
    let meta = DatasetMeta {
        id: id.to_owned(),
        attributes: attributes(&header.attributes),
        dimensions: header.dims.iter().map(|d| (d.name.clone(), d.len)).collect(),
        unlimited: header.dims.iter().filter(|d| d.is_record).map(|d| d.name.clone()).collect(),
        last_modified: None,
        variables,
    };
    Ok(Scan { dataset: VirtualDataset { meta, files: vec![location.to_owned()], chunks }, skipped, groups: Vec::new() })
}

//! NetCDF classic files: the header parser gives every offset; data is big-endian, uncompressed.

use std::{io::Read, path::Path};

use cloudify_dataset::{DataType, DatasetMeta, StoredChunk, VariableChunks, VariableMeta, VirtualDataset};
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

/// Reads as much of the file as the header needs, growing the read until it parses.
fn header(path: &Path) -> Result<cloudify_netcdf3::Header> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Io { path: shown.clone(), reason: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let mut want = 64 * 1024;
    loop {
        let have = bytes.len();
        (&mut file).take((want - have) as u64).read_to_end(&mut bytes).map_err(io)?;
        match cloudify_netcdf3::parse(&bytes) {
            Err(cloudify_netcdf3::Error::Truncated { .. }) if bytes.len() == want => want *= 4,
            Err(err) => return Err(Error::Corrupt { path: shown, reason: err.to_string() }),
            Ok(header) => return Ok(header),
        }
    }
}

pub(crate) fn scan(path: &Path, location: &str, id: &str) -> Result<Scan> {
    let header = header(path)?;
    let file_len = std::fs::metadata(path).map_err(|e| Error::Io { path: location.to_owned(), reason: e.to_string() })?.len();
    from_header(&header, file_len, location, id)
}

/// The virtual dataset of a file of `file_len` bytes at `location` with `header`.
pub(crate) fn from_header(header: &cloudify_netcdf3::Header, file_len: u64, location: &str, id: &str) -> Result<Scan> {
    let mut variables = IndexMap::new();
    let mut chunks = IndexMap::new();
    for var in &header.variables {
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
        let count: u64 = meta.chunk_grid().iter().product();
        let stored: Vec<StoredChunk> = (0..count)
            .map(|record| {
                let (offset, length) = header.range(var, record);
                StoredChunk::Range { file: 0, offset, length }
            })
            .collect();
        if let Some(StoredChunk::Range { offset, length, .. }) = stored.last() {
            if offset + length > file_len {
                return Err(Error::Corrupt {
                    path: location.to_owned(),
                    reason: format!("variable {} ends at byte {} of a {file_len}-byte file (truncated?)", var.name, offset + length),
                });
            }
        }
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
    Ok(Scan { dataset: VirtualDataset { meta, files: vec![location.to_owned()], chunks }, skipped: Vec::new(), groups: Vec::new() })
}

//! Writing a dataset held in memory as a NetCDF4 file (the demo dataset, derived datasets).

use std::{collections::HashMap, ops::Range, path::Path};

use cloudify_dataset::{DataType, DatasetMeta, VariableMeta};
use netcdf::{AttributeValue, FileMut, NcTypeDescriptor};
use serde_json::Value;

use crate::{Error, Result};

fn attribute(value: &Value) -> Option<AttributeValue> {
    Some(match value {
        Value::String(s) => AttributeValue::Str(s.clone()),
        Value::Bool(b) => AttributeValue::Schar(i8::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i32::try_from(i).map_or(AttributeValue::Longlong(i), AttributeValue::Int),
            (None, Some(u)) => AttributeValue::Ulonglong(u),
            _ => AttributeValue::Double(n.as_f64()?),
        },
        Value::Array(items) if items.iter().all(Value::is_string) => {
            AttributeValue::Strs(items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        }
        Value::Array(items) if items.iter().all(|v| v.is_i64()) => {
            AttributeValue::Longlongs(items.iter().filter_map(Value::as_i64).collect())
        }
        Value::Array(items) => AttributeValue::Doubles(items.iter().map(|v| v.as_f64()).collect::<Option<_>>()?),
        Value::Null | Value::Object(_) => return None,
    })
}

/// The first `N` bytes of `bytes` (callers pass exactly one element).
fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn typed<T: Copy>(bytes: &[u8], from_le: fn(&[u8]) -> T) -> Vec<T> {
    bytes.chunks_exact(std::mem::size_of::<T>()).map(from_le).collect()
}

fn add<T>(
    file: &mut FileMut,
    name: &str,
    var: &VariableMeta,
    data: &[u8],
    from_le: fn(&[u8]) -> T,
) -> netcdf::Result<()>
where
    T: NcTypeDescriptor + Copy,
{
    let dims: Vec<&str> = var.dimensions.iter().map(String::as_str).collect();
    let mut nc = file.add_variable::<T>(name, &dims)?;
    let chunked = !var.shape.is_empty() && var.chunks != var.shape;
    if chunked {
        let chunks: Vec<usize> = var.chunks.iter().map(|&c| c as usize).collect();
        nc.set_chunking(&chunks)?;
        nc.set_compression(1, true)?;
    }
    if let Some(fill) = var.attributes.get("_FillValue") {
        let element = cloudify_dataset::fill_element(&VariableMeta { fill_value: fill.clone(), ..var.clone() });
        nc.set_fill_value(from_le(&element))?;
    }
    for (key, value) in &var.attributes {
        if key != "_FillValue" {
            if let Some(value) = attribute(value) {
                nc.put_attribute(key, value)?;
            }
        }
    }
    let extents: Vec<Range<usize>> = var.shape.iter().map(|&n| 0..n as usize).collect();
    nc.put_values(&typed(data, from_le), extents.as_slice())
}

/// A variable-length string variable from a chunk of [`cloudify_dataset::strings`]' layout.
fn add_strings(file: &mut FileMut, name: &str, var: &VariableMeta, data: &[u8]) -> netcdf::Result<()> {
    let dims: Vec<&str> = var.dimensions.iter().map(String::as_str).collect();
    let items = cloudify_dataset::strings::decode(data).map_err(|e| netcdf::Error::Str(e.to_string()))?;
    let mut nc = file.add_string_variable(name, &dims)?;
    for (key, value) in &var.attributes {
        let value = match (key.as_str(), value) {
            // A string variable's fill value is a string (NC_STRING), not text (NC_CHAR).
            ("_FillValue", serde_json::Value::String(fill)) => Some(AttributeValue::Strs(vec![fill.clone()])),
            _ => attribute(value),
        };
        if let Some(value) = value {
            nc.put_attribute(key, value)?;
        }
    }
    for (i, item) in items.iter().enumerate() {
        let index = cloudify_dataset::hyperslab::unravel(i as u64, &var.shape);
        let extents: Vec<Range<usize>> = index.iter().map(|&at| at as usize..at as usize + 1).collect();
        nc.put_string(&String::from_utf8_lossy(item), extents.as_slice())?;
    }
    Ok(())
}

/// Writes `meta` with the little-endian C-order `arrays` (one per variable) as a NetCDF4 file
/// at `path`; chunked variables are compressed with shuffle + zlib.
///
/// # Errors
/// [`Error::Io`] when libnetcdf fails or an array is missing.
pub fn write_netcdf4(path: &Path, meta: &DatasetMeta, arrays: &HashMap<String, Vec<u8>>) -> Result<()> {
    let fail = |reason: String| Error::Io { path: path.display().to_string(), reason };
    let nc = |e: netcdf::Error| fail(e.to_string());
    let mut file = netcdf::create(path).map_err(nc)?;
    for (key, value) in &meta.attributes {
        if let Some(value) = attribute(value) {
            file.add_attribute(key, value).map_err(nc)?;
        }
    }
    for (name, &len) in &meta.dimensions {
        if meta.unlimited.contains(name) {
            file.add_unlimited_dimension(name).map_err(nc)?;
        } else {
            file.add_dimension(name, len as usize).map_err(nc)?;
        }
    }
    for (name, var) in &meta.variables {
        let data = arrays.get(name).ok_or_else(|| fail(format!("no values for {name}")))?;
        match var.dtype {
            DataType::Bool | DataType::Uint8 => add::<u8>(&mut file, name, var, data, |b| b[0]),
            DataType::Int8 => add::<i8>(&mut file, name, var, data, |b| b[0] as i8),
            DataType::Int16 => add::<i16>(&mut file, name, var, data, |b| i16::from_le_bytes(word(b))),
            DataType::Uint16 => add::<u16>(&mut file, name, var, data, |b| u16::from_le_bytes(word(b))),
            DataType::Int32 => add::<i32>(&mut file, name, var, data, |b| i32::from_le_bytes(word(b))),
            DataType::Uint32 => add::<u32>(&mut file, name, var, data, |b| u32::from_le_bytes(word(b))),
            DataType::Float32 => add::<f32>(&mut file, name, var, data, |b| f32::from_le_bytes(word(b))),
            DataType::Int64 => add::<i64>(&mut file, name, var, data, |b| i64::from_le_bytes(word(b))),
            DataType::Uint64 => add::<u64>(&mut file, name, var, data, |b| u64::from_le_bytes(word(b))),
            DataType::Float64 => add::<f64>(&mut file, name, var, data, |b| f64::from_le_bytes(word(b))),
            DataType::String => add_strings(&mut file, name, var, data),
            DataType::Char => return Err(fail(format!("{name}: character arrays are not written"))),
        }
        .map_err(nc)?;
    }
    file.close().map_err(nc)
}

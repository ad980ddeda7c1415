//! kerchunk reference sets as parquet, in the layout of fsspec's `LazyReferenceMapper`: a
//! `.zmetadata` JSON document (`{"metadata": {...}, "record_size": N}`) holding the Zarr v2
//! metadata, and per array `{var}/refs.{k}.parq` files of `record_size` rows in C order over
//! the chunk grid, with columns `path`, `offset`, `size` and `raw`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use cloudify_sdk::hyperslab::unravel;
use indexmap::IndexMap;
use parquet::{
    basic::{Compression, ZstdLevel},
    data_type::{ByteArray, ByteArrayType, Int64Type},
    file::{
        properties::WriterProperties,
        reader::{FileReader, SerializedFileReader},
        writer::SerializedFileWriter,
    },
    record::Field,
    schema::parser::parse_message_type,
};
use serde_json::{json, Map, Value};

/// fsspec's default number of references per parquet file.
pub const RECORD_SIZE: u64 = 10_000;

/// The columns fsspec reads; `path` and `raw` are null where unused.
const SCHEMA: &str = "message schema {
    OPTIONAL BYTE_ARRAY path (UTF8);
    REQUIRED INT64 offset;
    REQUIRED INT64 size;
    OPTIONAL BYTE_ARRAY raw;
}";

/// One row: where a chunk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// No reference: the chunk is absent (fill value).
    Missing,
    /// The chunk's bytes.
    Inline(Vec<u8>),
    /// `length` bytes at `offset` of `url`; `None` for the whole object.
    Range {
        /// Path or URL.
        url: String,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        length: Option<u64>,
    },
}

/// A parquet reference set: the `.zmetadata` document and the parquet files by path.
#[derive(Debug, Clone, Default)]
pub struct ParquetSet {
    /// The `.zmetadata` document.
    pub zmetadata: Vec<u8>,
    /// `{var}/refs.{k}.parq` files.
    pub files: IndexMap<String, Vec<u8>>,
}

/// Chunks per axis of an array from its `.zarray` (`[1]` for scalars, as fsspec counts).
fn grid(zarray: &Value) -> Vec<u64> {
    let numbers = |key: &str| -> Vec<u64> {
        zarray[key].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
    };
    let grid: Vec<u64> = numbers("shape").iter().zip(numbers("chunks")).map(|(s, c)| s.div_ceil(c.max(1))).collect();
    if grid.is_empty() {
        vec![1]
    } else {
        grid
    }
}

/// The v2 key of flat chunk `flat` of `var` over `grid`.
fn chunk_key(var: &str, flat: u64, grid: &[u64], separator: &str) -> String {
    let parts: Vec<String> = unravel(flat, grid).iter().map(u64::to_string).collect();
    format!("{var}/{}", parts.join(separator))
}

/// A reference of a kerchunk JSON set (`"base64:..."`, text, `[url]`, `[url, offset, length]`).
fn row_of(value: Option<&Value>) -> Row {
    match value {
        None | Some(Value::Null) => Row::Missing,
        Some(Value::String(text)) => match text.strip_prefix("base64:") {
            Some(encoded) => Row::Inline(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default()),
            None => Row::Inline(text.as_bytes().to_vec()),
        },
        Some(Value::Array(parts)) => Row::Range {
            url: parts.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            offset: parts.get(1).and_then(Value::as_u64).unwrap_or(0),
            length: parts.get(2).and_then(Value::as_u64),
        },
        Some(other) => Row::Inline(other.to_string().into_bytes()),
    }
}

/// One parquet file of `rows`.
///
/// # Errors
/// A parquet writer failure.
pub fn write_rows(rows: &[Row]) -> Result<Vec<u8>, String> {
    let err = |e: parquet::errors::ParquetError| e.to_string();
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(err)?);
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props)).map_err(err)?;
    let mut group = writer.next_row_group().map_err(err)?;
    let (mut paths, mut path_levels, mut raws, mut raw_levels) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut offsets, mut sizes) = (Vec::new(), Vec::new());
    for row in rows {
        let (path, offset, size, raw) = match row {
            Row::Missing => (None, 0, 0, None),
            Row::Inline(bytes) => (None, 0, 0, Some(bytes.clone())),
            // fsspec reads offset and size 0 as "the whole object".
            Row::Range { url, offset, length } => (Some(url.clone()), *offset, length.unwrap_or(0), None),
        };
        path_levels.push(i16::from(path.is_some()));
        paths.extend(path.map(|p| ByteArray::from(p.into_bytes())));
        raw_levels.push(i16::from(raw.is_some()));
        raws.extend(raw.map(ByteArray::from));
        offsets.push(offset as i64);
        sizes.push(size as i64);
    }
    let mut column = 0;
    while let Some(mut writer) = group.next_column().map_err(err)? {
        match column {
            0 => writer.typed::<ByteArrayType>().write_batch(&paths, Some(&path_levels), None),
            1 => writer.typed::<Int64Type>().write_batch(&offsets, None, None),
            2 => writer.typed::<Int64Type>().write_batch(&sizes, None, None),
            _ => writer.typed::<ByteArrayType>().write_batch(&raws, Some(&raw_levels), None),
        }
        .map_err(err)?;
        writer.close().map_err(err)?;
        column += 1;
    }
    group.close().map_err(err)?;
    writer.into_inner().map_err(err)
}

/// The rows of one parquet file, as fsspec reads them: `raw` first, then `path` (with offset
/// and size 0 meaning the whole object), else missing.
///
/// # Errors
/// Bytes that are no parquet file of that layout.
pub fn read_rows(file: Bytes) -> Result<Vec<Row>, String> {
    // The parquet reader panics on some corrupt files (a dictionary-encoded page without its
    // dictionary, found by fuzz_parquet_records): a corrupt set is an error, not a crash.
    std::panic::catch_unwind(move || rows_of(file))
        .unwrap_or_else(|_| Err("corrupt parquet file (the parquet reader failed)".to_owned()))
}

fn rows_of(file: Bytes) -> Result<Vec<Row>, String> {
    let err = |e: parquet::errors::ParquetError| e.to_string();
    let reader = SerializedFileReader::new(file).map_err(err)?;
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).map_err(err)? {
        let row = row.map_err(err)?;
        let (mut path, mut offset, mut size, mut raw) = (None, 0u64, 0u64, None);
        for (name, field) in row.get_column_iter() {
            let number = |field: &Field| match field {
                Field::Long(n) => u64::try_from(*n).ok(),
                Field::Int(n) => u64::try_from(*n).ok(),
                _ => None,
            };
            match (name.as_str(), field) {
                ("path", Field::Str(text)) => path = Some(text.clone()),
                ("path", Field::Bytes(bytes)) => path = Some(String::from_utf8_lossy(bytes.data()).into_owned()),
                ("raw", Field::Bytes(bytes)) => raw = Some(bytes.data().to_vec()),
                ("raw", Field::Str(text)) => raw = Some(text.as_bytes().to_vec()),
                ("offset", field) => offset = number(field).unwrap_or(0),
                ("size", field) => size = number(field).unwrap_or(0),
                _ => {}
            }
        }
        rows.push(match (raw, path) {
            (Some(bytes), _) => Row::Inline(bytes),
            (None, Some(url)) if offset == 0 && size == 0 => Row::Range { url, offset: 0, length: None },
            (None, Some(url)) => Row::Range { url, offset, length: Some(size) },
            (None, None) => Row::Missing,
        });
    }
    Ok(rows)
}

/// The parquet form of a kerchunk JSON reference map (`refs` of spec version 1).
///
/// # Errors
/// A parquet writer failure.
pub fn write(refs: &IndexMap<String, Value>, record_size: u64) -> Result<ParquetSet, String> {
    let record_size = record_size.max(1);
    let mut metadata = Map::new();
    for (key, value) in refs {
        let last = key.rsplit('/').next().unwrap_or_default();
        if last.starts_with(".z") && last != ".zmetadata" {
            let document = match value {
                Value::String(text) => serde_json::from_str(text).map_err(|e| format!("{key}: {e}"))?,
                other => other.clone(),
            };
            metadata.insert(key.clone(), document);
        }
    }
    let mut files = IndexMap::new();
    for (key, zarray) in &metadata {
        let Some(var) = key.strip_suffix("/.zarray") else { continue };
        let grid = grid(zarray);
        let separator = zarray["dimension_separator"].as_str().unwrap_or(".");
        let total: u64 = grid.iter().product();
        for record in 0..total.div_ceil(record_size) {
            let flats = record * record_size..(record * record_size + record_size).min(total);
            let rows: Vec<Row> = flats.map(|flat| row_of(refs.get(&chunk_key(var, flat, &grid, separator)))).collect();
            files.insert(format!("{var}/refs.{record}.parq"), write_rows(&rows)?);
        }
    }
    let zmetadata = json!({"metadata": metadata, "record_size": record_size}).to_string().into_bytes();
    Ok(ParquetSet { zmetadata, files })
}

/// The `.zmetadata` document of a parquet set: the metadata documents by key, and the
/// record size.
///
/// # Errors
/// Text that is no such document.
pub fn read_zmetadata(text: &[u8]) -> Result<(Map<String, Value>, u64), String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| format!(".zmetadata is not JSON: {e}"))?;
    let metadata = doc["metadata"].as_object().cloned().ok_or(".zmetadata has no metadata")?;
    let record_size = doc["record_size"].as_u64().filter(|&n| n > 0).ok_or(".zmetadata has no record_size")?;
    Ok((metadata, record_size))
}

/// How many chunks the array whose `.zarray` is `zarray` has; `None` when the count overflows.
pub fn chunk_count(zarray: &Value) -> Option<u64> {
    grid(zarray).iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))
}

/// How many parquet files hold the references of the array whose `.zarray` is `zarray`;
/// `None` when its chunk count overflows.
pub fn record_count(zarray: &Value, record_size: u64) -> Option<u64> {
    Some(chunk_count(zarray)?.div_ceil(record_size.max(1)))
}

/// The references of array `var` (whose `.zarray` is `zarray`) by chunk key, from its
/// parquet files `records` (record 0 first; `None` for a file the set does not have, as
/// kerchunk writes none for an array without references); absent chunks are left out.
///
/// # Errors
/// A file of another layout.
pub fn array_rows(
    var: &str,
    zarray: &Value,
    record_size: u64,
    records: &[Option<Bytes>],
) -> Result<Vec<(String, Row)>, String> {
    let grid = grid(zarray);
    let total = chunk_count(zarray).ok_or_else(|| format!("array {var}: its chunk count overflows"))?;
    let separator = zarray["dimension_separator"].as_str().unwrap_or(".");
    let mut rows = Vec::new();
    for (record, file) in (0u64..).zip(records) {
        let Some(file) = file else { continue };
        let first = record.saturating_mul(record_size);
        for (flat, row) in (first..total).zip(read_rows(file.clone())?) {
            if row != Row::Missing {
                rows.push((chunk_key(var, flat, &grid, separator), row));
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_sets_split_into_records() {
        let rows = vec![
            Row::Range { url: "/data/f.nc".to_owned(), offset: 10, length: Some(20) },
            Row::Missing,
            Row::Inline(vec![0, 1, 255]),
            Row::Range { url: "s3://b/whole".to_owned(), offset: 0, length: None },
        ];
        assert_eq!(read_rows(Bytes::from(write_rows(&rows).unwrap())).unwrap(), rows);

        let zarray = json!({"shape": [5, 2], "chunks": [2, 2], "dtype": "<i2", "zarr_format": 2});
        let mut refs = IndexMap::new();
        refs.insert(".zgroup".to_owned(), Value::from(r#"{"zarr_format": 2}"#));
        refs.insert("v/.zarray".to_owned(), Value::from(zarray.to_string()));
        refs.insert("v/0.0".to_owned(), json!(["/f", 1, 2]));
        refs.insert("v/2.0".to_owned(), Value::from("base64:AAE="));
        let set = write(&refs, 2).unwrap();
        let (metadata, record_size) = read_zmetadata(&set.zmetadata).unwrap();
        assert_eq!((record_size, &metadata["v/.zarray"]), (2, &zarray));
        assert_eq!(set.files.keys().collect::<Vec<_>>(), ["v/refs.0.parq", "v/refs.1.parq"]);
        assert_eq!(record_count(&zarray, 2), Some(2));
        assert_eq!(record_count(&serde_json::json!({"shape": [u64::MAX, u64::MAX], "chunks": [1, 1]}), 2), None);
        let mut files: Vec<Option<Bytes>> = set.files.values().map(|f| Some(Bytes::from(f.clone()))).collect();
        let read = array_rows("v", &zarray, 2, &files).unwrap();
        let expected = [
            ("v/0.0", Row::Range { url: "/f".to_owned(), offset: 1, length: Some(2) }),
            ("v/2.0", Row::Inline(vec![0, 1])),
        ];
        assert_eq!(read, expected.clone().map(|(k, r)| (k.to_owned(), r)));
        // A record file the set lacks holds no references.
        files[0] = None;
        assert_eq!(array_rows("v", &zarray, 2, &files).unwrap(), [(expected[1].0.to_owned(), expected[1].1.clone())]);
        assert!(read_rows(Bytes::from_static(b"not parquet")).is_err());
    }

    /// Fuzz target (`cargo bolero test -p cloudify-parquet-refs fuzz_parquet_records`): a
    /// record file of any bytes gives rows or an error, never a panic.
    #[test]
    fn fuzz_parquet_records() {
        let seed = write_rows(&[
            Row::Range { url: "/f".to_owned(), offset: 1, length: Some(2) },
            Row::Missing,
            Row::Inline(vec![1]),
        ])
        .unwrap();
        let zarray = json!({"shape": [10, 4], "chunks": [2, 2]});
        bolero::check!().for_each(|input: &[u8]| {
            // Inputs starting with an even byte overwrite bytes of a valid file (position,
            // value triples), to get past its footer; the others are the file themselves.
            let file = match input.split_first() {
                Some((first, edits)) if first % 2 == 0 => {
                    let mut file = seed.clone();
                    for edit in edits.chunks_exact(3) {
                        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % file.len();
                        file[at] = edit[2];
                    }
                    file
                }
                _ => input.to_vec(),
            };
            let _ = array_rows("v", &zarray, 4, &[Some(Bytes::from(file))]);
        });
    }
}

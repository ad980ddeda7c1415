//! Reference sets as parquet, in the layout of fsspec's `LazyReferenceMapper`: a `.zmetadata`
//! JSON document (`{"metadata": {...}, "record_size": N}`) holding the Zarr v2 metadata, and
//! per array `{var}/refs.{k}.parq` files of `record_size` rows in C order over the chunk
//! grid, with columns `path`, `offset`, `size` and `raw`. A row is an `Option<Reference>`:
//! `None` for a chunk the set does not have.

use std::sync::Arc;

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

use crate::{v2_chunk_key, Error, Reference, ReferenceSet, Result};

/// fsspec's default number of references per parquet file.
pub const RECORD_SIZE: u64 = 10_000;

/// The columns fsspec reads; `path` and `raw` are null where unused.
const SCHEMA: &str = "message schema {
    OPTIONAL BYTE_ARRAY path (UTF8);
    REQUIRED INT64 offset;
    REQUIRED INT64 size;
    OPTIONAL BYTE_ARRAY raw;
}";

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

/// The key of flat chunk `flat` of `var` over `grid`, with the array's separator.
fn chunk_key(var: &str, flat: u64, grid: &[u64], zarray: &Value) -> String {
    let separator = zarray["dimension_separator"].as_str().unwrap_or(".");
    v2_chunk_key(var, &unravel(flat, grid), separator)
}

fn write_failed(e: parquet::errors::ParquetError) -> Error {
    Error::Write { reason: e.to_string() }
}

/// One parquet file of `rows`.
///
/// # Errors
/// [`Error::Write`]: a parquet writer failure.
pub fn write_rows(rows: &[Option<Reference>]) -> Result<Vec<u8>> {
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(write_failed)?);
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props)).map_err(write_failed)?;
    let mut group = writer.next_row_group().map_err(write_failed)?;
    let (mut paths, mut path_levels, mut raws, mut raw_levels) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut offsets, mut sizes) = (Vec::new(), Vec::new());
    for row in rows {
        let (path, offset, size, raw) = match row {
            None => (None, 0, 0, None),
            Some(Reference::Inline(bytes)) => (None, 0, 0, Some(bytes.clone())),
            // fsspec reads offset and size 0 as "the whole object".
            Some(Reference::Range { url, offset, length }) => (Some(url.clone()), *offset, length.unwrap_or(0), None),
        };
        path_levels.push(i16::from(path.is_some()));
        paths.extend(path.map(|p| ByteArray::from(p.into_bytes())));
        raw_levels.push(i16::from(raw.is_some()));
        raws.extend(raw.map(ByteArray::from));
        offsets.push(offset as i64);
        sizes.push(size as i64);
    }
    let mut column = 0;
    while let Some(mut writer) = group.next_column().map_err(write_failed)? {
        match column {
            0 => writer.typed::<ByteArrayType>().write_batch(&paths, Some(&path_levels), None),
            1 => writer.typed::<Int64Type>().write_batch(&offsets, None, None),
            2 => writer.typed::<Int64Type>().write_batch(&sizes, None, None),
            _ => writer.typed::<ByteArrayType>().write_batch(&raws, Some(&raw_levels), None),
        }
        .map_err(write_failed)?;
        writer.close().map_err(write_failed)?;
        column += 1;
    }
    group.close().map_err(write_failed)?;
    writer.into_inner().map_err(write_failed)
}

/// The rows of one parquet file, as fsspec reads them: `raw` first, then `path` (with offset
/// and size 0 meaning the whole object), else absent.
///
/// # Errors
/// [`Error::Invalid`]: bytes that are no parquet file of that layout.
pub fn read_rows(file: Bytes) -> Result<Vec<Option<Reference>>> {
    // The parquet reader panics on some corrupt files (a dictionary-encoded page without its
    // dictionary, found by fuzz_parquet_records): a corrupt set is an error, not a crash.
    std::panic::catch_unwind(move || rows_of(file))
        .unwrap_or_else(|_| Err("corrupt parquet file (the parquet reader failed)".to_owned()))
        .map_err(Error::invalid)
}

fn rows_of(file: Bytes) -> Result<Vec<Option<Reference>>, String> {
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
            (Some(bytes), _) => Some(Reference::Inline(bytes)),
            (None, Some(url)) if offset == 0 && size == 0 => Some(Reference::Range { url, offset: 0, length: None }),
            (None, Some(url)) => Some(Reference::Range { url, offset, length: Some(size) }),
            (None, None) => None,
        });
    }
    Ok(rows)
}

impl ReferenceSet {
    /// The set in parquet form, `record_size` references per file.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a metadata document that is no JSON; [`Error::Write`].
    pub fn to_parquet(&self, record_size: u64) -> Result<ParquetSet> {
        let record_size = record_size.max(1);
        let mut metadata = Map::new();
        for (key, reference) in self.iter() {
            let last = key.rsplit('/').next().unwrap_or_default();
            if let (true, Reference::Inline(text)) = (last.starts_with(".z") && last != ".zmetadata", reference) {
                let document = serde_json::from_slice(text).map_err(|e| Error::invalid(format!("{key}: {e}")))?;
                metadata.insert(key.to_owned(), document);
            }
        }
        let mut files = IndexMap::new();
        for (key, zarray) in &metadata {
            let Some(var) = key.strip_suffix("/.zarray") else { continue };
            let grid = grid(zarray);
            let total: u64 = grid.iter().product();
            for record in 0..total.div_ceil(record_size) {
                let flats = record * record_size..(record * record_size + record_size).min(total);
                let rows: Vec<Option<Reference>> =
                    flats.map(|flat| self.get(&chunk_key(var, flat, &grid, zarray)).cloned()).collect();
                files.insert(format!("{var}/refs.{record}.parq"), write_rows(&rows)?);
            }
        }
        let zmetadata = json!({"metadata": metadata, "record_size": record_size}).to_string().into_bytes();
        Ok(ParquetSet { zmetadata, files })
    }
}

/// The `.zmetadata` document of a parquet set: the metadata documents by key, and the
/// record size.
///
/// # Errors
/// [`Error::Invalid`]: text that is no such document.
pub fn read_zmetadata(text: &[u8]) -> Result<(Map<String, Value>, u64)> {
    let doc: Value =
        serde_json::from_slice(text).map_err(|e| Error::invalid(format!(".zmetadata is not JSON: {e}")))?;
    let metadata = doc["metadata"].as_object().cloned().ok_or_else(|| Error::invalid(".zmetadata has no metadata"))?;
    let record_size = doc["record_size"]
        .as_u64()
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::invalid(".zmetadata has no record_size"))?;
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
/// [`Error::Invalid`]: a file of another layout.
pub fn array_references(
    var: &str,
    zarray: &Value,
    record_size: u64,
    records: &[Option<Bytes>],
) -> Result<Vec<(String, Reference)>> {
    let grid = grid(zarray);
    let total = chunk_count(zarray).ok_or_else(|| Error::invalid(format!("array {var}: its chunk count overflows")))?;
    let mut references = Vec::new();
    for (record, file) in (0u64..).zip(records) {
        let Some(file) = file else { continue };
        let first = record.saturating_mul(record_size);
        for (flat, row) in (first..total).zip(read_rows(file.clone())?) {
            if let Some(reference) = row {
                references.push((chunk_key(var, flat, &grid, zarray), reference));
            }
        }
    }
    Ok(references)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_sets_split_into_records() {
        let rows = vec![
            Some(Reference::Range { url: "/data/f.nc".to_owned(), offset: 10, length: Some(20) }),
            None,
            Some(Reference::Inline(vec![0, 1, 255])),
            Some(Reference::Range { url: "s3://b/whole".to_owned(), offset: 0, length: None }),
        ];
        assert_eq!(read_rows(Bytes::from(write_rows(&rows).unwrap())).unwrap(), rows);

        let zarray = json!({"shape": [5, 2], "chunks": [2, 2], "dtype": "<i2", "zarr_format": 2});
        let mut set = ReferenceSet::new();
        set.insert(".zgroup", Reference::Inline(br#"{"zarr_format": 2}"#.to_vec()));
        set.insert("v/.zarray", Reference::Inline(zarray.to_string().into_bytes()));
        set.insert("v/0.0", Reference::Range { url: "/f".to_owned(), offset: 1, length: Some(2) });
        set.insert("v/2.0", Reference::Inline(vec![0, 1]));
        let parquet = set.to_parquet(2).unwrap();
        let (metadata, record_size) = read_zmetadata(&parquet.zmetadata).unwrap();
        assert_eq!((record_size, &metadata["v/.zarray"]), (2, &zarray));
        assert_eq!(parquet.files.keys().collect::<Vec<_>>(), ["v/refs.0.parq", "v/refs.1.parq"]);
        assert_eq!(record_count(&zarray, 2), Some(2));
        assert_eq!(record_count(&json!({"shape": [u64::MAX, u64::MAX], "chunks": [1, 1]}), 2), None);
        let mut files: Vec<Option<Bytes>> = parquet.files.values().map(|f| Some(Bytes::from(f.clone()))).collect();
        let read = array_references("v", &zarray, 2, &files).unwrap();
        let expected = [
            ("v/0.0".to_owned(), set.get("v/0.0").unwrap().clone()),
            ("v/2.0".to_owned(), Reference::Inline(vec![0, 1])),
        ];
        assert_eq!(read, expected);
        // A record file the set lacks holds no references.
        files[0] = None;
        assert_eq!(array_references("v", &zarray, 2, &files).unwrap(), expected[1..]);
        assert!(read_rows(Bytes::from_static(b"not parquet")).is_err());
    }

    /// Fuzz target (`cargo bolero test -p cloudify-kerchunk parquet::tests::fuzz_parquet_records`):
    /// a record file of any bytes gives rows or an error, never a panic.
    #[test]
    fn fuzz_parquet_records() {
        let seed = write_rows(&[
            Some(Reference::Range { url: "/f".to_owned(), offset: 1, length: Some(2) }),
            None,
            Some(Reference::Inline(vec![1])),
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
            let _ = array_references("v", &zarray, 4, &[Some(Bytes::from(file))]);
        });
    }
}

//! Zarr v2 and v3 stores as cloudify dataset sources: the root group's arrays, read through
//! zarrs over `object_store` (local folders, and HTTP or S3 where the store crate enables them).
//! Dimension names come from `dimension_names` (v3) or `_ARRAY_DIMENSIONS` (v2, as xarray
//! writes them).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use cloudify_dataset::{
    check_chunk_index, variable, ChunkRef, DataType, DatasetMeta, Error as DataError, Limits, Result as DataResult,
    Source, VariableMeta,
};
use cloudify_store::Stores;
use object_store::prefix::PrefixStore;
use serde_json::{Map, Value};
use zarrs::{
    array::{Array, ArrayBytes, ArrayMetadataOptions},
    config::MetadataConvertVersion,
    group::{Group, GroupMetadataOptions},
    storage::AsyncReadableListableStorage,
};
use zarrs_object_store::AsyncObjectStore;

/// What can go wrong opening a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The location cannot be reached or is not a Zarr group.
    #[error("{location} is not a readable Zarr group: {reason}")]
    Open {
        /// Path or URL.
        location: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn dtype(name: &str) -> Option<DataType> {
    Some(match name {
        "bool" => DataType::Bool,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::Uint8,
        "uint16" => DataType::Uint16,
        "uint32" => DataType::Uint32,
        "uint64" => DataType::Uint64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "string" => DataType::String,
        _ => return None,
    })
}

/// A zarrs store that can list its keys.
pub type Storage = AsyncReadableListableStorage;

/// A Zarr store served as a dataset.
pub struct ZarrSource {
    location: String,
    meta: Arc<DatasetMeta>,
    arrays: Arrays,
    utf32: Utf32,
    /// Where chunk references point (stores opened by location); `None` for a store given as
    /// zarrs storage, whose chunks have no location of their own.
    stores: Option<Arc<Stores>>,
}

/// The array as Zarr v3 metadata JSON, whatever version it is stored in.
fn v3_json(array: &Array<dyn zarrs::storage::AsyncReadableListableStorageTraits>) -> Value {
    let options = ArrayMetadataOptions::default().with_metadata_convert_version(MetadataConvertVersion::V3);
    serde_json::to_value(array.metadata_opt(&options)).unwrap_or_default()
}

/// The variable as the data core describes it. `_FillValue` is made a plain CF attribute the
/// way xarray reads each format: from a v2 array's `fill_value` (`v2_fill`), or from a v3 attribute that
/// xarray writes base64-encoded for floats.
fn variable_meta(name: &str, json: &Value, v2_fill: Option<Value>) -> std::result::Result<VariableMeta, String> {
    let utf32 = utf32_length(json).is_some();
    let dtype = if utf32 {
        DataType::String
    } else {
        json["data_type"]
            .as_str()
            .and_then(dtype)
            .ok_or_else(|| format!("data type {} is not served yet", json["data_type"]))?
    };
    let shape: Vec<u64> = serde_json::from_value(json["shape"].clone()).map_err(|e| e.to_string())?;
    let chunks: Vec<u64> = serde_json::from_value(json["chunk_grid"]["configuration"]["chunk_shape"].clone())
        .map_err(|_| "only regular chunk grids are served".to_owned())?;
    let mut attributes: Map<String, Value> = json["attributes"].as_object().cloned().unwrap_or_default();
    let from_attrs = attributes.remove("_ARRAY_DIMENSIONS");
    // zarrs records v2 details here when it converts v2 metadata to v3; not the data's.
    attributes.remove("_zarrs");
    let names = json.get("dimension_names").filter(|v| !v.is_null()).cloned().or(from_attrs);
    let dimensions: Vec<String> = match names {
        Some(names) => serde_json::from_value(names).map_err(|e| e.to_string())?,
        None => (0..shape.len()).map(|d| format!("{name}_dim_{d}")).collect(),
    };
    if let Some(fill) = v2_fill.filter(|f| !f.is_null()) {
        attributes.entry("_FillValue").or_insert(fill);
    }
    if let Some(Value::String(encoded)) = attributes.get("_FillValue") {
        if let Some(value) = decode_float_fill(encoded) {
            attributes.insert("_FillValue".to_owned(), value);
        }
    }
    let (fill_value, codecs) = if utf32 {
        // Served as strings converted on read: the chunks are those strings, not stored bytes.
        (
            Value::from(json["fill_value"].as_str().unwrap_or_default()),
            vec![serde_json::json!({"name": "vlen-utf8", "configuration": {}})],
        )
    } else {
        (json["fill_value"].clone(), canonical_order(json["codecs"].as_array().cloned().unwrap_or_default()))
    };
    Ok(VariableMeta { dtype, dimensions, shape, chunks, attributes, fill_value, codecs })
}

/// Bytes per element of a fixed-length unicode array (numpy's `<U`, Zarr's
/// `fixed_length_utf32`, what xarray writes for text), which is served as strings.
fn utf32_length(json: &Value) -> Option<usize> {
    let data_type = &json["data_type"];
    (data_type["name"] == "fixed_length_utf32")
        .then(|| data_type["configuration"]["length_bytes"].as_u64().unwrap_or(4) as usize)
}

/// Fixed-length UTF-32 elements of `length` bytes (NUL-padded) as a chunk of strings.
fn utf32_to_strings(bytes: &[u8], length: usize) -> DataResult<Vec<u8>> {
    let mut items = Vec::with_capacity(bytes.len() / length.max(1));
    for element in bytes.chunks(length.max(1)) {
        let text: String = element
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .take_while(|&c| c != 0)
            .map(|c| {
                char::from_u32(c).ok_or_else(|| DataError::Inconsistent(format!("{c:#x} is no unicode character")))
            })
            .collect::<DataResult<_>>()?;
        items.push(text);
    }
    Ok(cloudify_dataset::strings::encode(items))
}

/// Codecs that turn bytes into bytes (compressors, shuffles, checksums).
const BYTES_TO_BYTES: [&str; 14] = [
    "gzip",
    "zstd",
    "blosc",
    "crc32c",
    "numcodecs.zlib",
    "numcodecs.gzip",
    "numcodecs.zstd",
    "numcodecs.blosc",
    "numcodecs.lz4",
    "numcodecs.bz2",
    "numcodecs.lzma",
    "numcodecs.shuffle",
    "numcodecs.fletcher32",
    "numcodecs.crc32",
];

/// The chain in Zarr v3's order: zarrs converts v2 `filters` such as shuffle and zlib to
/// codecs placed before `bytes`; declared that way, clients (and the v2 declaration of the
/// stored chain) would not recognise it.
fn canonical_order(mut codecs: Vec<Value>) -> Vec<Value> {
    let Some(bytes) = codecs.iter().position(|c| c["name"] == "bytes") else {
        return codecs;
    };
    let moved = codecs[..bytes].iter().rposition(|c| !BYTES_TO_BYTES.contains(&c["name"].as_str().unwrap_or_default()));
    let first = moved.map_or(0, |i| i + 1);
    if first < bytes {
        let codec = codecs.remove(bytes);
        codecs.insert(first, codec);
    }
    codecs
}

/// xarray's `FillValueCoder` writes a float `_FillValue` as base64 of a little-endian double;
/// non-finite values become the strings the data core uses for them.
fn decode_float_fill(encoded: &str) -> Option<Value> {
    use base64::Engine as _;
    let bytes: [u8; 8] = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?.try_into().ok()?;
    let value = f64::from_le_bytes(bytes);
    Some(match value {
        v if v.is_nan() => Value::from("NaN"),
        v if v.is_infinite() => Value::from(if v > 0.0 { "Infinity" } else { "-Infinity" }),
        v => Value::from(v),
    })
}

/// Names of the root group's arrays from consolidated metadata: Zarr v3's inline
/// `consolidated_metadata`, or zarr-python's v2 `.zmetadata` file.
async fn consolidated_names(
    group_json: &Value,
    location: &str,
    stores: &Stores,
    limits: &Limits,
) -> Option<Vec<String>> {
    let direct_child = |key: &str| !key.trim_start_matches('/').contains('/');
    if let Some(nodes) = group_json.pointer("/consolidated_metadata/metadata").and_then(Value::as_object) {
        let names = nodes.iter().filter(|(k, v)| direct_child(k) && v["node_type"] == "array").map(|(k, _)| k.clone());
        return Some(names.collect());
    }
    let zmetadata = format!("{}/.zmetadata", location.trim_end_matches('/'));
    let text = stores.read_all_at_most(&zmetadata, limits.max_reference_set_bytes).await.ok()?;
    let doc: Value = serde_json::from_slice(&text).ok()?;
    let keys = doc["metadata"].as_object()?.keys();
    Some(keys.filter_map(|k| k.strip_suffix("/.zarray")).filter(|k| direct_child(k)).map(str::to_owned).collect())
}

/// The zarrs arrays of a store by name.
type Arrays = HashMap<String, Array<dyn zarrs::storage::AsyncReadableListableStorageTraits>>;

/// Element bytes of the fixed-length unicode arrays by name (served as strings).
type Utf32 = HashMap<String, usize>;

/// The dataset a store's root group describes: arrays `names` opened from `storage` (those
/// of types not served yet left out with a warning), their dimensions, and `group_json`'s
/// attributes.
/// The arrays of the group at `group` (`/` for the root) named `names`.
async fn describe(
    storage: &Storage,
    group: &str,
    group_json: &Value,
    names: Vec<String>,
    location: &str,
    id: &str,
    limits: &Limits,
) -> (DatasetMeta, Arrays, Utf32) {
    let mut variables = cloudify_dataset::VariableMap::new();
    let mut arrays = HashMap::new();
    let mut utf32 = HashMap::new();
    let mut dimensions = Vec::<(String, u64)>::new();
    for name in names {
        let path = format!("{}/{name}", group.trim_end_matches('/'));
        let array = match Array::async_open(Arc::clone(storage), &path).await {
            Ok(array) => array,
            // One array zarrs cannot open (e.g. v2 `<U` text with a null fill value) leaves
            // the others served.
            Err(err) => {
                tracing::warn!(store = location, array = name, "array not served: {err}");
                continue;
            }
        };
        // A v2 array's own fill value: null stays null (v3 conversion would make it 0).
        let v2_fill = match array.metadata() {
            zarrs::array::ArrayMetadata::V2(v2) => {
                Some(serde_json::to_value(v2).unwrap_or_default()["fill_value"].take())
            }
            _ => None,
        };
        let json = v3_json(&array);
        match variable_meta(&name, &json, v2_fill).and_then(|var| limits.check_variable(&name, &var).map(|_| var)) {
            Ok(var) => {
                if let Some(length) = utf32_length(&json) {
                    utf32.insert(name.clone(), length);
                }
                for (dim, &len) in var.dimensions.iter().zip(&var.shape) {
                    if !dimensions.iter().any(|(d, _)| d == dim) {
                        dimensions.push((dim.clone(), len));
                    }
                }
                variables.insert(name.clone(), var);
                arrays.insert(name, array);
            }
            Err(reason) => tracing::warn!(store = location, array = name, "array not served: {reason}"),
        }
    }
    let meta = DatasetMeta {
        id: id.to_owned(),
        attributes: group_json["attributes"].as_object().cloned().unwrap_or_default(),
        dimensions: dimensions.into_iter().collect(),
        unlimited: Vec::new(),
        last_modified: None,
        variables,
    };
    (meta, arrays, utf32)
}

/// The dataset described by the Zarr v2 or v3 metadata documents in `storage` (a store that
/// can list its keys), without its chunks: what a kerchunk reference set declares.
///
/// # Errors
/// [`Error::Open`] when the documents are no readable Zarr group.
pub async fn describe_storage(storage: Storage, location: &str, id: &str, limits: &Limits) -> Result<DatasetMeta> {
    let fail = |reason: String| Error::Open { location: location.to_owned(), reason };
    let group = Group::async_open(Arc::clone(&storage), "/").await.map_err(|e| fail(e.to_string()))?;
    let options = GroupMetadataOptions::default().with_metadata_convert_version(MetadataConvertVersion::V3);
    let group_json = serde_json::to_value(group.metadata_opt(&options)).unwrap_or_default();
    let paths = group.async_child_array_paths().await.map_err(|e| fail(e.to_string()))?;
    let names = paths.iter().map(|p| p.as_str().trim_start_matches('/').to_owned()).collect();
    let (mut meta, _, utf32) = describe(&storage, "/", &group_json, names, location, id, limits).await;
    // References name stored bytes; text converted on read has none.
    for name in utf32.keys() {
        tracing::warn!(store = location, array = name, "array not served: fixed-length unicode in a reference set");
        meta.variables.shift_remove(name);
    }
    Ok(meta)
}

impl ZarrSource {
    /// Opens the root group at `location` (a folder path or URL) as dataset `id`. Arrays of
    /// types not served yet, or over `limits`, are left out with a warning; sub-groups too.
    ///
    /// # Errors
    /// [`Error::Open`] when the location is not a readable Zarr group.
    pub async fn open(location: &str, id: &str, stores: Arc<Stores>, limits: &Limits) -> Result<Self> {
        let fail = |reason: String| Error::Open { location: location.to_owned(), reason };
        let (store, prefix) = stores.resolve(location).map_err(|e| fail(e.to_string()))?;
        let storage: Storage = Arc::new(AsyncObjectStore::new(PrefixStore::new(store, prefix)));
        let group = Group::async_open(Arc::clone(&storage), "/").await.map_err(|e| fail(e.to_string()))?;
        let options = GroupMetadataOptions::default().with_metadata_convert_version(MetadataConvertVersion::V3);
        let group_json = serde_json::to_value(group.metadata_opt(&options)).unwrap_or_default();
        let names = match group.async_child_array_paths().await {
            Ok(paths) => paths.iter().map(|p| p.as_str().trim_start_matches('/').to_owned()).collect(),
            // Plain HTTP cannot list: consolidated metadata names the arrays instead.
            Err(err) => consolidated_names(&group_json, location, &stores, limits)
                .await
                .ok_or_else(|| fail(format!("cannot list the store ({err}) and it has no consolidated metadata")))?,
        };
        let (meta, arrays, utf32) = describe(&storage, "/", &group_json, names, location, id, limits).await;
        let location = location.trim_end_matches('/').to_owned();
        Ok(Self { location, meta: Arc::new(meta), arrays, utf32, stores: Some(stores) })
    }

    /// Opens the group at `group` (`/`, `/a/b`) of `storage` as dataset `id`; `location` names
    /// the store in messages. Its chunks are read through `storage`; they have no location a
    /// chunk reference could name.
    ///
    /// # Errors
    /// [`Error::Open`] when the group is not readable or cannot list its arrays.
    pub async fn from_storage(
        storage: Storage,
        group: &str,
        location: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Self> {
        let fail = |reason: String| Error::Open { location: format!("{location}{group}"), reason };
        let opened = Group::async_open(Arc::clone(&storage), group).await.map_err(|e| fail(e.to_string()))?;
        let options = GroupMetadataOptions::default().with_metadata_convert_version(MetadataConvertVersion::V3);
        let group_json = serde_json::to_value(opened.metadata_opt(&options)).unwrap_or_default();
        let paths = opened.async_child_array_paths().await.map_err(|e| fail(e.to_string()))?;
        let names = paths.iter().filter_map(|p| p.as_str().rsplit('/').next().map(str::to_owned)).collect();
        let (meta, arrays, utf32) = describe(&storage, group, &group_json, names, location, id, limits).await;
        Ok(Self { location: location.to_owned(), meta: Arc::new(meta), arrays, utf32, stores: None })
    }

    fn array(
        &self,
        name: &str,
        index: &[u64],
    ) -> DataResult<&Array<dyn zarrs::storage::AsyncReadableListableStorageTraits>> {
        check_chunk_index(name, variable(&self.meta, name)?, index)?;
        self.arrays.get(name).ok_or_else(|| DataError::Inconsistent(format!("array {name} not open")))
    }
}

#[async_trait]
impl Source for ZarrSource {
    fn metadata(&self) -> DataResult<Arc<DatasetMeta>> {
        Ok(Arc::clone(&self.meta))
    }

    async fn read_chunk(&self, name: &str, index: &[u64]) -> DataResult<Vec<u8>> {
        let array = self.array(name, index)?;
        let bytes: ArrayBytes<'static> = array
            .async_retrieve_chunk(index)
            .await
            .map_err(|e| DataError::Library { location: format!("{}/{name}", self.location), reason: e.to_string() })?;
        match bytes {
            ArrayBytes::Fixed(bytes) if self.utf32.contains_key(name) => utf32_to_strings(&bytes, self.utf32[name]),
            ArrayBytes::Variable(strings) => {
                let (bytes, offsets) = strings.into_parts();
                Ok(cloudify_dataset::strings::from_offsets(&bytes, &offsets))
            }
            other => Ok(other
                .into_fixed()
                .map_err(|e| DataError::Library {
                    location: format!("{}/{name}", self.location),
                    reason: e.to_string(),
                })?
                .into_owned()),
        }
    }

    async fn read_raw_chunk(&self, name: &str, index: &[u64]) -> DataResult<Vec<u8>> {
        let array = self.array(name, index)?;
        if self.utf32.contains_key(name) {
            return Err(DataError::Unsupported {
                what: format!("raw chunks of '{name}', whose text is converted on read"),
            });
        }
        let encoded = array
            .async_retrieve_encoded_chunk(index)
            .await
            .map_err(|e| DataError::Library { location: format!("{}/{name}", self.location), reason: e.to_string() })?;
        encoded.map(|b| b.to_vec()).ok_or_else(|| DataError::Unsupported {
            what: format!("chunk {index:?} of '{name}' was never written (it is all fill value)"),
        })
    }

    async fn chunk_ref(&self, name: &str, index: &[u64]) -> DataResult<ChunkRef> {
        let array = self.array(name, index)?;
        if self.utf32.contains_key(name) {
            return Ok(ChunkRef::Computed);
        }
        let Some(stores) = &self.stores else { return Ok(ChunkRef::Computed) };
        let url = format!("{}/{}", self.location, array.chunk_key(index).as_str());
        match stores.stat(&url).await {
            Ok(stat) => Ok(ChunkRef::Range { url: url.into(), offset: 0, length: stat.size }),
            Err(cloudify_store::Error::NotFound { .. }) => Ok(ChunkRef::Missing),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::canonical_order;

    #[test]
    fn fixed_length_unicode_becomes_strings() {
        let utf32: Vec<u8> = ["Bonn", "Zürich"]
            .iter()
            .flat_map(|s| s.chars().map(u32::from).chain(std::iter::repeat(0)).take(6))
            .flat_map(u32::to_le_bytes)
            .collect();
        let chunk = super::utf32_to_strings(&utf32, 24).unwrap();
        assert_eq!(cloudify_dataset::strings::decode(&chunk).unwrap(), [&b"Bonn"[..], "Zürich".as_bytes()]);
        assert!(super::utf32_to_strings(&0xD800u32.to_le_bytes(), 4).is_err(), "a lone surrogate");
        let json = json!({"data_type": {"name": "fixed_length_utf32", "configuration": {"length_bytes": 24}}});
        assert_eq!(super::utf32_length(&json), Some(24));
    }

    #[test]
    fn bytes_codec_goes_before_bytes_to_bytes_filters() {
        let kerchunk = vec![
            json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}}),
            json!({"name": "numcodecs.zlib", "configuration": {"level": 1}}),
            json!({"name": "bytes", "configuration": {"endian": "little"}}),
        ];
        let names = |chain: &[serde_json::Value]| {
            chain.iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(&canonical_order(kerchunk)), ["bytes", "numcodecs.shuffle", "numcodecs.zlib"]);
        let with_transpose =
            vec![json!({"name": "transpose"}), json!({"name": "numcodecs.zlib"}), json!({"name": "bytes"})];
        assert_eq!(names(&canonical_order(with_transpose)), ["transpose", "bytes", "numcodecs.zlib"]);
        let canonical = vec![json!({"name": "bytes"}), json!({"name": "zstd"})];
        assert_eq!(canonical_order(canonical.clone()), canonical);
    }
}

//! One dataset seen as a Zarr store: every metadata document of both formats rendered once,
//! and per array what serving its chunks needs (served chunk shape, codecs).

use std::{collections::HashMap, num::NonZeroU64, sync::Arc, time::SystemTime};

use base64::Engine as _;
use cloudify_codec::ChunkCodec;
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host, HostExt, RVec, Request,
};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use zarrs_metadata::{
    v2::{ArrayMetadataV2, DataTypeMetadataV2, MetadataV2},
    v3::FillValueMetadataV3,
};

use crate::{
    codecs::{v2_declaration, ServedCodec},
    keys::{chunk_index, parse as parse_key, Format, Key},
    rechunk::Rechunk,
};

/// A response body with its validator.
#[derive(Debug)]
pub struct Document {
    /// The bytes served.
    pub body: RVec<u8>,
    /// Strong `ETag` value, quotes included.
    pub etag: String,
}

impl Document {
    /// `body`, with its `ETag` computed from the bytes.
    pub fn new(body: RVec<u8>) -> Self {
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body));
        Self::with_etag(body, etag)
    }

    /// `body` with an `ETag` known without reading it (e.g. from where the bytes are stored).
    pub fn with_etag(mut body: RVec<u8>, etag: String) -> Self {
        // Encoders over-allocate; cached bodies should cost what they weigh.
        body.shrink_to_fit();
        Self { body, etag }
    }
}

impl AsRef<[u8]> for Document {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

/// What serving one array's chunks needs.
pub struct Array {
    /// Element type.
    pub dtype: DataType,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape served (the stored one unless rechunked).
    pub chunks: Vec<u64>,
    /// Whether `chunks` differs from the stored chunk shape (chunks are read as regions).
    pub rechunked: bool,
    /// Whether chunks are served as stored (codec `source`); the encoders then hold the
    /// source chain, for chunks without stored bytes (never written, read by the library).
    pub stored_bytes: bool,
    /// Encoders of served chunks, v2 then v3 (the same encoder when the bytes agree).
    encoders: [Arc<ChunkCodec>; 2],
}

impl Array {
    /// The encoder of `format`'s chunks.
    pub fn encoder(&self, format: Format) -> &Arc<ChunkCodec> {
        &self.encoders[usize::from(format == Format::V3)]
    }

    /// Whether v2 and v3 chunks are the same bytes (and may share cache entries).
    pub fn formats_share_bytes(&self) -> bool {
        Arc::ptr_eq(&self.encoders[0], &self.encoders[1])
    }

    /// Bytes of one decoded chunk.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunks.iter().product::<u64>() * self.dtype.size() as u64
    }

    /// Number of chunks along each axis.
    pub fn grid(&self) -> Vec<u64> {
        self.shape.iter().zip(&self.chunks).map(|(n, c)| n.div_ceil(*c)).collect()
    }
}

/// A dataset as a Zarr store.
pub struct Store {
    /// Hash of the metadata it was built from: chunk cache entries of another build differ.
    pub generation: u64,
    /// When the source last changed.
    pub last_modified: Option<SystemTime>,
    /// Arrays by name.
    pub arrays: IndexMap<String, Array>,
    /// Metadata documents by store key (`.zmetadata`, `tas/zarr.json`, ...).
    pub docs: HashMap<String, Arc<Document>>,
}

impl Store {
    /// Renders `meta` (whose JSON text hashes to `generation`) with chunks served by `codec`
    /// and optionally rechunked.
    ///
    /// # Errors
    /// A variable whose served codec chain zarrs cannot build (a zero-length chunk, ...).
    pub fn new(
        meta: &DatasetMeta,
        generation: u64,
        codec: ServedCodec,
        rechunk: Option<&Rechunk>,
    ) -> Result<Self, String> {
        let mut arrays = IndexMap::new();
        let mut v2 = Map::new();
        let mut v3 = Map::new();
        let mut docs = HashMap::new();
        v2.insert(".zgroup".to_owned(), json!({"zarr_format": 2}));
        v2.insert(".zattrs".to_owned(), Value::Object(meta.attributes.clone()));
        for (name, var) in &meta.variables {
            let item = var.dtype.size();
            // Zarr has no zero-length chunks; an empty dimension keeps one-element chunks.
            let stored: Vec<u64> = var.chunks.iter().map(|&c| c.max(1)).collect();
            let chunks = match rechunk {
                // Strings are served in their stored chunks (regions need fixed-size values).
                Some(r) if !var.dtype.is_variable_length() => {
                    r.chunk_shape(&var.dimensions, &var.shape, &stored, item as u64)
                }
                _ => stored.clone(),
            };
            let rechunked = chunks != stored;
            let fill = fill_bytes(var);
            let build = |chain: &[Value]| {
                ChunkCodec::new(chain, var.dtype, &chunks, &fill)
                    .map(Arc::new)
                    .map_err(|err| format!("variable '{name}': {err}"))
            };
            let mut encoding = Encoding::of(var, codec, rechunked);
            let v2_encoder = match build(&encoding.v2_chain) {
                Ok(encoder) => encoder,
                // A stored chain zarrs cannot run (to encode never-written chunks): re-encode.
                Err(_) if encoding.stored_bytes => {
                    encoding = Encoding::reencoded(var, codec);
                    build(&encoding.v2_chain)?
                }
                Err(err) => return Err(err),
            };
            let v3_encoder = if encoding.v2_chain == encoding.v3_chain {
                Arc::clone(&v2_encoder)
            } else {
                build(&encoding.v3_chain)?
            };

            let in_var = |err: String| format!("variable '{name}': {err}");
            let (zarray, zattrs) = (v2_array(var, &chunks, &encoding).map_err(in_var)?, v2_attributes(var));
            let array_json = v3_array(var, &chunks, &encoding);
            docs.insert(format!("{name}/.zarray"), document(zarray.to_string().into_bytes()));
            docs.insert(format!("{name}/.zattrs"), document(zattrs.to_string().into_bytes()));
            docs.insert(format!("{name}/zarr.json"), document(array_json.to_string().into_bytes()));
            v2.insert(format!("{name}/.zarray"), zarray);
            v2.insert(format!("{name}/.zattrs"), zattrs);
            v3.insert(name.clone(), array_json);
            arrays.insert(
                name.clone(),
                Array {
                    dtype: var.dtype,
                    shape: var.shape.clone(),
                    rechunked,
                    stored_bytes: encoding.stored_bytes,
                    chunks,
                    encoders: [v2_encoder, v3_encoder],
                },
            );
        }
        let root_attrs = Value::Object(meta.attributes.clone());
        docs.insert(".zgroup".to_owned(), document(br#"{"zarr_format":2}"#.to_vec()));
        docs.insert(".zattrs".to_owned(), document(root_attrs.to_string().into_bytes()));
        let zmetadata = json!({"metadata": v2, "zarr_consolidated_format": 1});
        docs.insert(".zmetadata".to_owned(), document(zmetadata.to_string().into_bytes()));
        let root = json!({
            "zarr_format": 3,
            "node_type": "group",
            "attributes": root_attrs,
            "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": v3},
        });
        docs.insert("zarr.json".to_owned(), document(root.to_string().into_bytes()));
        let last_modified = meta
            .last_modified
            .and_then(|secs| u64::try_from(secs).ok())
            .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        Ok(Self { generation, last_modified, arrays, docs })
    }
}

/// What a request's store key names, checked against the store.
pub enum Resolved<'s, 'k> {
    /// A metadata document.
    Document(&'s Arc<Document>),
    /// One chunk of an array, inside its chunk grid.
    Chunk {
        /// Array name.
        var: &'k str,
        /// The array.
        array: &'s Array,
        /// Chunk grid index.
        index: Vec<u64>,
        /// Key syntax (v2 and v3 chunks may differ in bytes).
        format: Format,
    },
}

impl Store {
    /// The dataset `id` as a store, rendered from the host's metadata (whose text hashes to
    /// the generation).
    ///
    /// # Errors
    /// Unknown dataset (404), unreadable metadata, or an array zarrs cannot encode (500).
    pub fn from_host(host: &Host, id: &str, codec: ServedCodec, rechunk: Option<&Rechunk>) -> Result<Self, Error> {
        let json = host.metadata_json(id)?;
        let meta = serde_json::from_str(&json).map_err(Error::Json)?;
        let generation = xxhash_rust::xxh3::xxh3_64(json.as_bytes());
        Self::new(&meta, generation, codec, rechunk).map_err(Error::internal)
    }

    /// What the store key `key` of dataset `dataset` names.
    ///
    /// # Errors
    /// 404 for keys that are no Zarr key, unknown arrays, and chunk keys of the wrong rank or
    /// outside the grid.
    pub fn resolve<'s, 'k>(&'s self, dataset: &str, key: &'k str) -> Result<Resolved<'s, 'k>, Error> {
        let unknown_var = |var: &str| Error::not_found(format!("no variable '{var}' in dataset '{dataset}'"));
        match parse_key(key) {
            None => Err(Error::not_found(format!("'{key}' is no Zarr metadata or chunk key"))),
            Some(Key::Metadata { var }) => {
                self.docs.get(key).map(Resolved::Document).ok_or_else(|| unknown_var(var.unwrap_or_default()))
            }
            Some(Key::Chunk { var, index, format }) => {
                let array = self.arrays.get(var).ok_or_else(|| unknown_var(var))?;
                let grid = array.grid();
                let index = chunk_index(&index, format, grid.len()).ok_or_else(|| {
                    Error::not_found(format!("chunk key '{key}' does not fit the {} dimensions of '{var}'", grid.len()))
                })?;
                if index.iter().zip(&grid).any(|(i, n)| i >= n) {
                    return Err(Error::not_found(format!(
                        "chunk {index:?} is outside the chunk grid {grid:?} of '{var}'"
                    )));
                }
                Ok(Resolved::Chunk { var, array, index, format })
            }
        }
    }
}

/// A request's `{*key}` parameter (the host percent-decoded it, once: `%252e` is `%2e`).
pub fn request_key(req: &Request) -> String {
    req.param("key").unwrap_or_default().to_owned()
}

fn document(body: Vec<u8>) -> Arc<Document> {
    Arc::new(Document::new(body.into()))
}

/// `_FillValue` as a number: JSON numbers and the strings `NaN`, `Infinity`, `-Infinity`.
fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// The variable's `_FillValue` as a Zarr `fill_value` of its type, if it declares one
/// (netCDF's implicit default fill is not a mask xarray applies, so it is not advertised).
fn declared_fill(var: &VariableMeta) -> Option<Value> {
    let value = var.attributes.get("_FillValue")?;
    let value = match value {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    Some(match var.dtype {
        // Text: xarray masks with the `_FillValue` attribute, which stays one (see below).
        DataType::Char => return None,
        DataType::String => Value::from(value.as_str()?),
        DataType::Bool => Value::Bool(as_f64(value)? != 0.0),
        DataType::Float32 | DataType::Float64 => match value {
            Value::Number(_) => value.clone(),
            _ => {
                let f = as_f64(value)?;
                Value::from(if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                })
            }
        },
        _ => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            _ => Value::from(as_f64(value)? as i64),
        },
    })
}

/// How one array's chunks are encoded and declared in each format.
struct Encoding {
    /// v2 `dtype`, `filters` and `compressor`.
    v2_dtype: String,
    v2_filters: Value,
    v2_compressor: Value,
    /// The chains writing each format's bytes (v3's is declared as is).
    v2_chain: Vec<Value>,
    v3_chain: Vec<Value>,
    /// Stored chunks are served as they are.
    stored_bytes: bool,
}

impl Encoding {
    fn of(var: &VariableMeta, codec: ServedCodec, rechunked: bool) -> Self {
        if codec.passes_stored_bytes() && !rechunked {
            if let Some((v2_dtype, v2_filters, v2_compressor)) = v2_declaration(&var.codecs, var.dtype.numpy_le()) {
                let chain = var.codecs.clone();
                return Self {
                    v2_dtype,
                    v2_filters,
                    v2_compressor,
                    v2_chain: chain.clone(),
                    v3_chain: chain,
                    stored_bytes: true,
                };
            }
        }
        Self::reencoded(var, codec)
    }

    /// Chunks decoded and encoded with the served codec.
    fn reencoded(var: &VariableMeta, codec: ServedCodec) -> Self {
        let v2_chain = codec.chain(Format::V2, var.dtype);
        // Strings: the vlen-utf8 filter ahead of the compressor.
        let v2_filters = match v2_declaration(&v2_chain, var.dtype.numpy_le()) {
            Some((_, filters, _)) if var.dtype.is_variable_length() => filters,
            _ => Value::Null,
        };
        Self {
            v2_dtype: var.dtype.numpy_le().to_owned(),
            v2_filters,
            v2_compressor: codec.v2_compressor(),
            v2_chain,
            v3_chain: codec.chain(Format::V3, var.dtype),
            stored_bytes: false,
        }
    }
}

/// A Zarr v3 `fill_value` is required: the declared one, else zero of the type.
fn v3_fill(var: &VariableMeta) -> Value {
    declared_fill(var).unwrap_or_else(|| match var.dtype {
        DataType::Bool => Value::Bool(false),
        // zarr-python writes fixed-length bytes as base64: one zero byte.
        DataType::Char => json!("AA=="),
        DataType::String => json!(""),
        DataType::Float32 | DataType::Float64 => json!(0.0),
        _ => json!(0),
    })
}

/// One element of the served fill value, little-endian, for the encoder (a character
/// array's v3 fill value is base64 text of a zero byte).
fn fill_bytes(var: &VariableMeta) -> Vec<u8> {
    match var.dtype {
        DataType::Char => vec![0],
        dtype => dtype.element(&v3_fill(var)),
    }
}

/// Attributes without a `_FillValue` that the format carries as its fill value.
fn plain_attributes(var: &VariableMeta) -> Map<String, Value> {
    let keep_fill = declared_fill(var).is_none();
    var.attributes
        .iter()
        .filter(|(k, _)| keep_fill || *k != "_FillValue")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The v3 `data_type`: numpy's names, zarr-python's fixed-length bytes for characters, and
/// `string` for variable-length strings.
fn v3_data_type(dtype: DataType) -> Value {
    match dtype {
        DataType::Char => json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 1}}),
        DataType::String => json!("string"),
        other => Value::from(other.name()),
    }
}

/// A `.zarray` document, built with zarrs' v2 types.
fn v2_array(var: &VariableMeta, chunks: &[u64], encoding: &Encoding) -> Result<Value, String> {
    let compressor: Option<MetadataV2> = serde_json::from_value(encoding.v2_compressor.clone()).map_err(bad_codec)?;
    let filters: Option<Vec<MetadataV2>> = serde_json::from_value(encoding.v2_filters.clone()).map_err(bad_codec)?;
    let fill = fill_value_metadata(declared_fill(var).unwrap_or(Value::Null))?;
    let zarray = ArrayMetadataV2::new(
        var.shape.clone(),
        chunk_shape(chunks)?,
        DataTypeMetadataV2::Simple(encoding.v2_dtype.clone()),
        fill,
        compressor,
        filters,
    );
    serde_json::to_value(zarray).map_err(|err| err.to_string())
}

fn bad_codec(err: serde_json::Error) -> String {
    format!("codec declaration: {err}")
}

/// Chunk extents as Zarr requires them: none zero.
fn chunk_shape(chunks: &[u64]) -> Result<Vec<NonZeroU64>, String> {
    chunks.iter().map(|&c| NonZeroU64::new(c).ok_or_else(|| "a zero-length chunk".to_owned())).collect()
}

fn fill_value_metadata(fill: Value) -> Result<FillValueMetadataV3, String> {
    serde_json::from_value(fill).map_err(|err| format!("fill value: {err}"))
}

/// v2 attributes: xarray takes `_FillValue` from `.zarray` and dimension names from
/// `_ARRAY_DIMENSIONS`.
fn v2_attributes(var: &VariableMeta) -> Value {
    let mut attrs = plain_attributes(var);
    attrs.insert("_ARRAY_DIMENSIONS".to_owned(), json!(var.dimensions));
    Value::Object(attrs)
}

/// A v3 array's `zarr.json`. xarray reads `_FillValue` from the attributes, encoded as its
/// `FillValueCoder` writes it (floats as base64 of a little-endian double).
fn v3_array(var: &VariableMeta, chunks: &[u64], encoding: &Encoding) -> Value {
    let mut attrs = plain_attributes(var);
    if let (DataType::Char, Some(Value::String(text))) = (var.dtype, attrs.get("_FillValue")) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        attrs.insert("_FillValue".to_owned(), Value::from(encoded));
    }
    // xarray cannot decode a string `_FillValue` attribute from Zarr v3 (not even its own):
    // strings declare their fill in `fill_value` only, so that the store opens.
    if let Some(fill) = declared_fill(var).filter(|_| var.dtype != DataType::String) {
        let encoded = match var.dtype {
            DataType::Float32 | DataType::Float64 => {
                let f = as_f64(&fill).unwrap_or(f64::NAN);
                Value::from(base64::engine::general_purpose::STANDARD.encode(f.to_le_bytes()))
            }
            _ => fill,
        };
        attrs.insert("_FillValue".to_owned(), encoded);
    }
    // Written as JSON, not with zarrs' `ArrayMetadataV3`: zarrs writes a codec with an empty
    // configuration as `{"name": ...}`, and zarr-python refuses `numcodecs.*` codecs without
    // their `configuration` key; the source's codec objects are passed on as they are.
    json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": var.shape,
        "data_type": v3_data_type(var.dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": v3_fill(var),
        "codecs": encoding.v3_chain,
        "attributes": attrs,
        "dimension_names": var.dimensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::CodecName;

    fn meta() -> DatasetMeta {
        serde_json::from_value(json!({
            "id": "d",
            "attributes": {"title": "t"},
            "dimensions": {"time": 5, "lat": 3},
            "last_modified": 1_700_000_000,
            "variables": {
                "tas": {"dtype": "float32", "dimensions": ["time", "lat"], "shape": [5, 3], "chunks": [2, 3],
                        "attributes": {"units": "K", "_FillValue": 1e20}, "fill_value": 1e20},
                "mask": {"dtype": "float64", "dimensions": ["lat"], "shape": [3], "chunks": [3],
                         "attributes": {"_FillValue": "NaN"}, "fill_value": "NaN"},
                "packed": {"dtype": "int16", "dimensions": ["time"], "shape": [5], "chunks": [5],
                           "attributes": {"scale_factor": 0.5, "_FillValue": -999}, "fill_value": -999},
                "height": {"dtype": "float64", "dimensions": [], "shape": [], "chunks": [],
                           "attributes": {}, "fill_value": 9.969_209_968_386_869e36},
                "name": {"dtype": "char", "dimensions": ["strlen"], "shape": [5], "chunks": [5],
                         "attributes": {"_FillValue": "x"}, "fill_value": "x"},
            }
        }))
        .unwrap()
    }

    fn doc(store: &Store, key: &str) -> Value {
        serde_json::from_slice(&store.docs[key].body).unwrap()
    }

    #[test]
    fn v2_documents_carry_fill_value_and_dimensions_the_xarray_way() {
        let store = Store::new(&meta(), 1, ServedCodec::new(CodecName::BloscLz4, None), None).unwrap();
        let zarray = doc(&store, "tas/.zarray");
        assert_eq!((zarray["dtype"].as_str(), zarray["fill_value"].as_f64()), (Some("<f4"), Some(1e20)));
        assert_eq!(zarray["chunks"], json!([2, 3]));
        assert_eq!(doc(&store, "mask/.zarray")["fill_value"], "NaN");
        assert_eq!(doc(&store, "packed/.zarray")["fill_value"], -999);
        // No declared _FillValue: no mask, whatever netCDF's default fill is.
        assert_eq!(doc(&store, "height/.zarray")["fill_value"], Value::Null);
        let zattrs = doc(&store, "tas/.zattrs");
        assert_eq!(zattrs, json!({"units": "K", "_ARRAY_DIMENSIONS": ["time", "lat"]}));
        let consolidated = doc(&store, ".zmetadata");
        assert_eq!(consolidated["metadata"]["tas/.zarray"], zarray);
        assert_eq!(consolidated["metadata"][".zattrs"], json!({"title": "t"}));
        assert!(store.last_modified.is_some());
        // Characters: numpy's one-byte strings; xarray masks text with the attribute.
        let name = doc(&store, "name/.zarray");
        assert_eq!((name["dtype"].as_str(), &name["fill_value"]), (Some("|S1"), &Value::Null));
        assert_eq!(doc(&store, "name/.zattrs")["_FillValue"], "x");
    }

    #[test]
    fn v3_documents_encode_fill_values_in_attributes() {
        let store = Store::new(&meta(), 1, ServedCodec::new(CodecName::Zstd, None), None).unwrap();
        let tas = doc(&store, "tas/zarr.json");
        assert_eq!(tas["data_type"], "float32");
        assert_eq!(tas["dimension_names"], json!(["time", "lat"]));
        assert_eq!(tas["codecs"][1]["name"], "zstd");
        // base64 of the little-endian double 1e20, as xarray's FillValueCoder writes it.
        let expected = base64::engine::general_purpose::STANDARD.encode(1e20f64.to_le_bytes());
        assert_eq!(tas["attributes"]["_FillValue"], expected.as_str());
        assert_eq!(doc(&store, "packed/zarr.json")["attributes"]["_FillValue"], -999);
        assert_eq!(doc(&store, "height/zarr.json")["fill_value"], 0.0);
        assert_eq!(doc(&store, "height/zarr.json")["attributes"], json!({}));
        let name = doc(&store, "name/zarr.json");
        assert_eq!(name["data_type"], json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 1}}));
        assert_eq!(
            (name["fill_value"].as_str(), name["attributes"]["_FillValue"].as_str()),
            (Some("AA=="), Some("eA=="))
        );
        let root = doc(&store, "zarr.json");
        assert_eq!(root["consolidated_metadata"]["metadata"]["tas"], tas);
        assert_eq!(root["attributes"]["title"], "t");
    }

    #[test]
    fn the_source_codec_declares_stored_chains() {
        let mut meta = meta();
        let netcdf4 = vec![
            json!({"name": "bytes", "configuration": {"endian": "little"}}),
            json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}}),
            json!({"name": "numcodecs.zlib", "configuration": {"level": 4}}),
        ];
        meta.variables["tas"].codecs = netcdf4.clone();
        meta.variables["packed"].codecs = vec![json!({"name": "bytes", "configuration": {"endian": "big"}})];
        meta.variables["mask"].codecs = vec![json!({"name": "bytes"}), json!({"name": "crc32c"})];
        let store = Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), None).unwrap();
        assert!(store.arrays["tas"].stored_bytes);
        assert_eq!(doc(&store, "tas/zarr.json")["codecs"], json!(netcdf4));
        let zarray = doc(&store, "tas/.zarray");
        assert_eq!(
            (zarray["filters"][0]["id"].as_str(), zarray["compressor"]["id"].as_str()),
            (Some("shuffle"), Some("zlib"))
        );
        assert_eq!(doc(&store, "packed/.zarray")["dtype"], ">i2");
        // crc32c has no v2 form, and a chain zarrs cannot run is no use: both are re-encoded.
        assert!(!store.arrays["mask"].stored_bytes);
        meta.variables["mask"].codecs = vec![json!({"name": "bytes"}), json!({"name": "numcodecs.unheard_of"})];
        let store = Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), None).unwrap();
        assert!(!store.arrays["mask"].stored_bytes);
        assert_eq!(doc(&store, "mask/.zarray")["compressor"]["id"], "blosc");
        assert_eq!(doc(&store, "mask/.zarray")["compressor"]["id"], "blosc");
        // Rechunked arrays cannot pass stored chunks through.
        let rechunk = Rechunk { chunks: IndexMap::from([("time".to_owned(), 4)]), target_bytes: None };
        let store = Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), Some(&rechunk)).unwrap();
        assert!(!store.arrays["tas"].stored_bytes);
    }

    #[test]
    fn strings_are_v2_objects_and_v3_strings_in_their_stored_chunks() {
        let meta: DatasetMeta = serde_json::from_value(json!({
            "id": "d",
            "dimensions": {"station": 3},
            "variables": {
                "names": {"dtype": "string", "dimensions": ["station"], "shape": [3], "chunks": [2],
                          "attributes": {"_FillValue": "none"}, "fill_value": "none",
                          "codecs": [{"name": "vlen-utf8", "configuration": {}}]},
                "plain": {"dtype": "string", "dimensions": ["station"], "shape": [3], "chunks": [3], "fill_value": ""},
            }
        }))
        .unwrap();
        let rechunk = Rechunk { chunks: IndexMap::from([("station".to_owned(), 1)]), target_bytes: None };
        for codec in [CodecName::Zstd, CodecName::Source] {
            let store = Store::new(&meta, 1, ServedCodec::new(codec, None), Some(&rechunk)).unwrap();
            let zarray = doc(&store, "names/.zarray");
            assert_eq!(
                (zarray["dtype"].as_str(), &zarray["filters"]),
                (Some("|O"), &json!([{"id": "vlen-utf8"}])),
                "{codec:?}"
            );
            assert_eq!((&zarray["chunks"], &zarray["fill_value"]), (&json!([2]), &json!("none")), "not rechunked");
            assert_eq!(doc(&store, "plain/.zarray")["fill_value"], Value::Null);
            let v3 = doc(&store, "names/zarr.json");
            assert_eq!(
                (v3["data_type"].as_str(), v3["codecs"][0]["name"].as_str()),
                (Some("string"), Some("vlen-utf8"))
            );
            assert_eq!((&v3["fill_value"], v3["attributes"].get("_FillValue")), (&json!("none"), None));
            assert_eq!(doc(&store, "plain/zarr.json")["fill_value"], "");
            let chunk = cloudify_sdk::strings::encode(["Bonn", "Zürich"]);
            let encoder = store.arrays["names"].encoder(Format::V3);
            assert_eq!(encoder.decode(&encoder.encode(&chunk).unwrap()).unwrap(), chunk);
        }
        let source = Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), None).unwrap();
        assert!(source.arrays["names"].stored_bytes, "vlen-utf8 alone is a v2 object chain");
        assert_eq!(doc(&source, "names/.zarray")["compressor"], Value::Null);
    }

    #[test]
    fn rechunking_changes_the_served_chunk_shape() {
        let rechunk = Rechunk { chunks: IndexMap::from([("time".to_owned(), 4)]), target_bytes: None };
        let store = Store::new(&meta(), 1, ServedCodec::new(CodecName::BloscLz4, None), Some(&rechunk)).unwrap();
        assert_eq!(store.arrays["tas"].chunks, [4, 3]);
        assert!(store.arrays["tas"].rechunked);
        assert_eq!(store.arrays["tas"].grid(), [2, 1]);
        assert!(!store.arrays["mask"].rechunked);
        assert_eq!(doc(&store, "tas/.zarray")["chunks"], json!([4, 3]));
        assert!(store.arrays["tas"].formats_share_bytes());
    }

    /// Fuzz target (`cargo bolero test -p cloudify-zarr-store fuzz_store_keys`): any key
    /// resolves to a document or a chunk inside the grid, or is a 404.
    #[test]
    fn fuzz_store_keys() {
        let meta = meta();
        // Nothing is shared between inputs but what is read.
        let store =
            std::panic::AssertUnwindSafe(Store::new(&meta, 1, ServedCodec::new(CodecName::Zstd, None), None).unwrap());
        bolero::check!().with_type::<String>().for_each(|key| match store.resolve("d", key) {
            Ok(Resolved::Chunk { var, index, .. }) => {
                let grid = meta.variables[var].chunk_grid();
                assert!(
                    index.len() == grid.len() && index.iter().zip(&grid).all(|(i, n)| i < n),
                    "{key}: {index:?} in {grid:?}"
                );
            }
            Ok(Resolved::Document(_)) => {}
            Err(failure) => assert_eq!(failure.status(), 404, "{key}"),
        });
    }
}

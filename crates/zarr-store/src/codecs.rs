//! The codec chunks are served with, as Zarr v2 and v3 metadata declare it, and the zarrs
//! codec chain that writes exactly those bytes.

use cloudify_sdk::meta::DataType;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::keys::Format;

/// Codecs the server can encode chunks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodecName {
    /// Blosc with LZ4 and byte shuffle: fast to encode and decode.
    BloscLz4,
    /// Blosc with Zstandard and byte shuffle: smaller, slower.
    BloscZstd,
    /// Zstandard.
    Zstd,
    /// zlib (Zarr v2) / gzip (Zarr v3): what every client can read.
    Zlib,
    /// Uncompressed little-endian bytes.
    None,
    /// The stored chunks as they are, declared with the source's own codecs (NetCDF4's
    /// shuffle + zlib, NetCDF3's big-endian bytes): no decoding or encoding on the server.
    /// Arrays whose codecs Zarr cannot declare, or that are rechunked, get blosc-lz4.
    Source,
}

/// The configured codec and level.
#[derive(Debug, Clone, Copy)]
pub struct ServedCodec {
    name: CodecName,
    level: i32,
}

impl ServedCodec {
    /// `name` at `level`, or at the codec's usual fast level.
    pub fn new(name: CodecName, level: Option<i32>) -> Self {
        let default = match name {
            CodecName::BloscLz4 | CodecName::BloscZstd | CodecName::Source => 5,
            CodecName::Zstd | CodecName::Zlib | CodecName::None => 1,
        };
        Self { name, level: level.unwrap_or(default) }
    }

    /// Whether stored chunks are served as they are where possible.
    pub fn passes_stored_bytes(self) -> bool {
        self.name == CodecName::Source
    }

    /// The v2 `.zarray` `compressor` (blosc's element size is in each chunk's header).
    pub fn v2_compressor(self) -> Value {
        match self.name {
            CodecName::BloscLz4 | CodecName::BloscZstd | CodecName::Source => {
                json!({"id": "blosc", "cname": self.blosc_cname(), "clevel": self.level, "shuffle": 1, "blocksize": 0})
            }
            CodecName::Zstd => json!({"id": "zstd", "level": self.level}),
            CodecName::Zlib => json!({"id": "zlib", "level": self.level}),
            CodecName::None => Value::Null,
        }
    }

    /// The codec chain of `format` for `dtype` values, as Zarr v3 codec objects: for v3 it is
    /// declared as is in `zarr.json`; for v2 it is the chain that writes the bytes `.zarray`
    /// declares (strings: its `vlen-utf8` filter, then the compressor).
    pub fn chain(self, format: Format, dtype: DataType) -> Vec<Value> {
        let bytes = if dtype.is_variable_length() {
            json!({"name": "vlen-utf8", "configuration": {}})
        } else {
            json!({"name": "bytes", "configuration": {"endian": "little"}})
        };
        let item = dtype.size().max(1);
        let compressor = match self.name {
            CodecName::BloscLz4 | CodecName::BloscZstd | CodecName::Source => {
                Some(json!({"name": "blosc", "configuration": {
                "cname": self.blosc_cname(), "clevel": self.level, "shuffle": "shuffle",
                "typesize": item, "blocksize": 0}}))
            }
            CodecName::Zstd => Some(json!({"name": "zstd", "configuration": {"level": self.level, "checksum": false}})),
            // v3 has no zlib codec in its core set; gzip is the same DEFLATE in another wrapper.
            CodecName::Zlib if format == Format::V3 => {
                Some(json!({"name": "gzip", "configuration": {"level": self.level}}))
            }
            CodecName::Zlib => Some(json!({"name": "numcodecs.zlib", "configuration": {"level": self.level}})),
            CodecName::None => None,
        };
        std::iter::once(bytes).chain(compressor).collect()
    }

    fn blosc_cname(self) -> &'static str {
        if self.name == CodecName::BloscZstd {
            "zstd"
        } else {
            "lz4"
        }
    }
}

/// A Zarr v2 declaration of a Zarr v3 codec chain: the `.zarray` `dtype` (its byte order from
/// the `bytes` codec), `filters` and `compressor`; `None` when v2 has no equivalent. Strings
/// (`vlen-utf8`) are v2 objects whose first filter is `vlen-utf8`.
pub fn v2_declaration(chain: &[Value], numpy_le: &str) -> Option<(String, Value, Value)> {
    let (bytes, rest) = chain.split_first()?;
    if bytes["name"] == "vlen-utf8" {
        let mut codecs: Vec<Value> = rest.iter().map(v2_codec).collect::<Option<_>>()?;
        let compressor = take_compressor(&mut codecs);
        codecs.insert(0, json!({"id": "vlen-utf8"}));
        return Some(("|O".to_owned(), Value::from(codecs), compressor));
    }
    if bytes["name"] != "bytes" {
        return None;
    }
    let dtype = match (bytes["configuration"]["endian"].as_str(), numpy_le.split_at(1)) {
        (Some("big"), ("<", kind)) => format!(">{kind}"),
        _ => numpy_le.to_owned(),
    };
    let mut codecs: Vec<Value> = rest.iter().map(v2_codec).collect::<Option<_>>()?;
    let compressor = take_compressor(&mut codecs);
    let filters = if codecs.is_empty() { Value::Null } else { Value::from(codecs) };
    Some((dtype, filters, compressor))
}

/// The last of `codecs` when it is a compressor (v2 declares it apart from the filters).
fn take_compressor(codecs: &mut Vec<Value>) -> Value {
    match codecs.last() {
        Some(last) if COMPRESSORS.contains(&last["id"].as_str().unwrap_or_default()) => {
            codecs.pop().unwrap_or_default()
        }
        _ => Value::Null,
    }
}

/// numcodecs ids of compressors (the last codec of a v2 chain, declared as `compressor`).
const COMPRESSORS: [&str; 7] = ["zlib", "gzip", "zstd", "blosc", "bz2", "lzma", "lz4"];

/// One bytes-to-bytes codec in numcodecs' v2 form.
fn v2_codec(codec: &Value) -> Option<Value> {
    let name = codec["name"].as_str()?;
    let config = codec["configuration"].as_object().cloned().unwrap_or_default();
    let mut v2 = serde_json::Map::new();
    match name {
        "gzip" | "zstd" => {
            v2.insert("id".to_owned(), Value::from(name));
            v2.insert("level".to_owned(), config.get("level").cloned().unwrap_or(Value::from(1)));
        }
        "blosc" => {
            let shuffle = match config.get("shuffle").and_then(Value::as_str) {
                Some("noshuffle") => 0,
                Some("bitshuffle") => 2,
                _ => 1,
            };
            v2.insert("id".to_owned(), Value::from("blosc"));
            for key in ["cname", "clevel", "blocksize"] {
                v2.insert(key.to_owned(), config.get(key).cloned()?);
            }
            v2.insert("shuffle".to_owned(), Value::from(shuffle));
        }
        // zarr-python 3's wrappers of numcodecs: the v2 form is the numcodecs config itself.
        _ => {
            v2.insert("id".to_owned(), Value::from(name.strip_prefix("numcodecs.")?));
            v2.extend(config);
        }
    }
    Some(Value::Object(v2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v3_share_bytes_except_for_zlib() {
        let blosc = ServedCodec::new(CodecName::BloscLz4, None);
        assert_eq!(blosc.chain(Format::V2, DataType::Float32), blosc.chain(Format::V3, DataType::Float32));
        assert_eq!(blosc.v2_compressor()["cname"], "lz4");
        let zlib = ServedCodec::new(CodecName::Zlib, Some(3));
        assert_ne!(zlib.chain(Format::V2, DataType::Float32), zlib.chain(Format::V3, DataType::Float32));
        assert_eq!(zlib.v2_compressor(), json!({"id": "zlib", "level": 3}));
        assert_eq!(ServedCodec::new(CodecName::None, None).v2_compressor(), Value::Null);
    }

    #[test]
    fn netcdf_chains_have_v2_declarations() {
        let netcdf4 = [
            json!({"name": "bytes", "configuration": {"endian": "little"}}),
            json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}}),
            json!({"name": "numcodecs.zlib", "configuration": {"level": 4}}),
        ];
        let (dtype, filters, compressor) = v2_declaration(&netcdf4, "<f4").unwrap();
        assert_eq!(dtype, "<f4");
        assert_eq!(filters, json!([{"id": "shuffle", "elementsize": 4}]));
        assert_eq!(compressor, json!({"id": "zlib", "level": 4}));
        let netcdf3 = [json!({"name": "bytes", "configuration": {"endian": "big"}})];
        assert_eq!(v2_declaration(&netcdf3, "<i2"), Some((">i2".to_owned(), Value::Null, Value::Null)));
        assert_eq!(v2_declaration(&netcdf3, "|u1").unwrap().0, "|u1");
        let blosc = ServedCodec::new(CodecName::BloscLz4, None).chain(Format::V3, DataType::Float32);
        assert_eq!(
            v2_declaration(&blosc, "<f4").unwrap().2,
            ServedCodec::new(CodecName::BloscLz4, None).v2_compressor()
        );
        assert_eq!(v2_declaration(&[json!({"name": "bytes"}), json!({"name": "crc32c"})], "<f4"), None);
        assert_eq!(v2_declaration(&[json!({"name": "transpose"})], "<f4"), None);
        // Strings: objects with the vlen-utf8 filter, compressed or not.
        let strings = ServedCodec::new(CodecName::Zstd, None).chain(Format::V2, DataType::String);
        let (dtype, filters, compressor) = v2_declaration(&strings, "|O").unwrap();
        assert_eq!(
            (dtype.as_str(), filters, compressor["id"].as_str()),
            ("|O", json!([{"id": "vlen-utf8"}]), Some("zstd"))
        );
        let plain = v2_declaration(&[json!({"name": "vlen-utf8"})], "|O").unwrap();
        assert_eq!((plain.1, plain.2), (json!([{"id": "vlen-utf8"}]), Value::Null));
    }

    #[test]
    fn chains_build_in_zarrs_and_round_trip() {
        let values: Vec<u8> = (0..600u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        for name in [CodecName::BloscLz4, CodecName::BloscZstd, CodecName::Zstd, CodecName::Zlib, CodecName::None] {
            for format in [Format::V2, Format::V3] {
                let chain = ServedCodec::new(name, None).chain(format, DataType::Float32);
                let codec = cloudify_codec::ChunkCodec::new(&chain, DataType::Float32, &[20, 30], &[0; 4]).unwrap();
                let encoded = codec.encode(&values).unwrap();
                assert_eq!(codec.decode(&encoded).unwrap(), values, "{name:?} {format:?}");
                let text = cloudify_sdk::strings::encode(["a", "", "Zürich", "b"]);
                let chain = ServedCodec::new(name, None).chain(format, DataType::String);
                let codec = cloudify_codec::ChunkCodec::new(&chain, DataType::String, &[2, 2], b"").unwrap();
                assert_eq!(codec.decode(&codec.encode(&text).unwrap()).unwrap(), text, "strings {name:?} {format:?}");
            }
        }
    }
}

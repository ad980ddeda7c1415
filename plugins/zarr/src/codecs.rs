//! The codec chunks are served with, as Zarr v2 and v3 metadata declare it, and the zarrs
//! codec chain that writes exactly those bytes.

use serde_json::{json, Value};

use crate::{config::CodecName, keys::Format};

/// The configured codec and level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServedCodec {
    name: CodecName,
    level: i32,
}

impl ServedCodec {
    /// `name` at `level`, or at the codec's usual fast level.
    pub(crate) fn new(name: CodecName, level: Option<i32>) -> Self {
        let default = match name {
            CodecName::BloscLz4 | CodecName::BloscZstd => 5,
            CodecName::Zstd | CodecName::Zlib | CodecName::None => 1,
        };
        Self { name, level: level.unwrap_or(default) }
    }

    /// The v2 `.zarray` `compressor` (blosc's element size is in each chunk's header).
    pub(crate) fn v2_compressor(self) -> Value {
        match self.name {
            CodecName::BloscLz4 | CodecName::BloscZstd => {
                json!({"id": "blosc", "cname": self.blosc_cname(), "clevel": self.level, "shuffle": 1, "blocksize": 0})
            }
            CodecName::Zstd => json!({"id": "zstd", "level": self.level}),
            CodecName::Zlib => json!({"id": "zlib", "level": self.level}),
            CodecName::None => Value::Null,
        }
    }

    /// The codec chain of `format`, as Zarr v3 codec objects: for v3 it is declared as is in
    /// `zarr.json`; for v2 it is the chain that writes the bytes `.zarray` declares.
    pub(crate) fn chain(self, format: Format, item: usize) -> Vec<Value> {
        let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
        let compressor = match self.name {
            CodecName::BloscLz4 | CodecName::BloscZstd => Some(json!({"name": "blosc", "configuration": {
                "cname": self.blosc_cname(), "clevel": self.level, "shuffle": "shuffle",
                "typesize": item, "blocksize": 0}})),
            CodecName::Zstd => Some(json!({"name": "zstd", "configuration": {"level": self.level, "checksum": false}})),
            // v3 has no zlib codec in its core set; gzip is the same DEFLATE in another wrapper.
            CodecName::Zlib if format == Format::V3 => Some(json!({"name": "gzip", "configuration": {"level": self.level}})),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v3_share_bytes_except_for_zlib() {
        let blosc = ServedCodec::new(CodecName::BloscLz4, None);
        assert_eq!(blosc.chain(Format::V2, 4), blosc.chain(Format::V3, 4));
        assert_eq!(blosc.v2_compressor()["cname"], "lz4");
        let zlib = ServedCodec::new(CodecName::Zlib, Some(3));
        assert_ne!(zlib.chain(Format::V2, 4), zlib.chain(Format::V3, 4));
        assert_eq!(zlib.v2_compressor(), json!({"id": "zlib", "level": 3}));
        assert_eq!(ServedCodec::new(CodecName::None, None).v2_compressor(), Value::Null);
    }

    #[test]
    fn chains_build_in_zarrs_and_round_trip() {
        use cloudify_sdk::meta::DataType;
        let values: Vec<u8> = (0..600u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        for name in [CodecName::BloscLz4, CodecName::BloscZstd, CodecName::Zstd, CodecName::Zlib, CodecName::None] {
            for format in [Format::V2, Format::V3] {
                let chain = ServedCodec::new(name, None).chain(format, 4);
                let codec = cloudify_codec::ChunkCodec::new(&chain, DataType::Float32, &[20, 30], &[0; 4]).unwrap();
                let encoded = codec.encode(&values).unwrap();
                assert_eq!(codec.decode(&encoded).unwrap(), values, "{name:?} {format:?}");
            }
        }
    }
}

//! Reference sets as dataset sources: a set (kerchunk JSON, or a parquet folder; local, HTTP
//! or S3) is a [`VirtualDataset`]: its Zarr metadata documents describe the arrays, its
//! references say where each chunk's bytes are.

use std::sync::Arc;

use cloudify_dataset::{
    hyperslab::unravel, DataType, DatasetMeta, Limits, StoredChunk, VariableChunks, VirtualDataset,
};
use cloudify_store::{Confinement, Stores};
use indexmap::IndexMap;
use object_store::{memory::InMemory, path::Path as StorePath, ObjectStoreExt as _, PutPayload};
use serde_json::Value;
use zarrs_object_store::AsyncObjectStore;

use crate::{is_document, parquet, v2_chunk_key, Error, ReadLimits, Reference, ReferenceSet, Result};

/// Whether `location` is a parquet reference set (a folder or URL prefix).
pub fn is_parquet(location: &str) -> bool {
    let location = location.trim_end_matches('/');
    location.ends_with(".parq") || location.ends_with(".parquet")
}

/// Why reading failed, without the "not a usable reference set" that [`Error::Open`] adds.
fn reason(err: Error) -> String {
    match err {
        Error::Invalid { reason } | Error::Write { reason } | Error::Open { reason, .. } => reason,
    }
}

/// The parquet reference set at `root`: its `.zmetadata` documents, then each array's
/// references from its `refs.{k}.parq` files.
async fn read_parquet(root: &str, stores: &Stores, limits: &Limits) -> Result<ReferenceSet, String> {
    let max_bytes = limits.max_reference_set_bytes;
    let text = stores.read_all_at_most(&format!("{root}/.zmetadata"), max_bytes).await.map_err(|e| e.to_string())?;
    let (metadata, record_size) = parquet::read_zmetadata(&text).map_err(reason)?;
    let mut set = ReferenceSet::new();
    for (key, doc) in &metadata {
        set.insert(key.clone(), Reference::Inline(doc.to_string().into_bytes()));
    }
    for (key, zarray) in &metadata {
        let Some(var) = key.strip_suffix("/.zarray") else { continue };
        // Checked before the loop over record files: the shape is the set's to choose.
        let chunks = parquet::chunk_count(zarray).filter(|&n| n <= limits.max_chunks_per_variable);
        let chunks = chunks
            .ok_or_else(|| format!("array {var}: more chunks than the limit of {}", limits.max_chunks_per_variable))?;
        let mut files = Vec::new();
        for record in 0..chunks.div_ceil(record_size) {
            match stores.read_all_at_most(&format!("{root}/{var}/refs.{record}.parq"), max_bytes).await {
                Ok(file) => files.push(Some(file)),
                Err(cloudify_store::Error::NotFound { .. }) => files.push(None),
                Err(err) => return Err(err.to_string()),
            }
        }
        let references = parquet::array_references(var, zarray, record_size, &files).map_err(reason)?;
        for (chunk, reference) in references {
            set.insert(chunk, reference);
        }
    }
    Ok(set)
}

/// The chunk key of `index` in the reference set, as its metadata writes keys.
fn chunk_key(name: &str, index: &[u64], set: &ReferenceSet) -> String {
    let zarray = set.inline(&format!("{name}/.zarray")).and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok());
    match zarray {
        Some(zarray) => v2_chunk_key(name, index, zarray["dimension_separator"].as_str().unwrap_or(".")),
        None if index.is_empty() => format!("{name}/c"),
        None => {
            let joined: Vec<String> = index.iter().map(u64::to_string).collect();
            format!("{name}/c/{}", joined.join("/"))
        }
    }
}

/// Where `url` points, read from a reference set at `location`: relative paths are relative
/// to the set's folder.
fn resolve(url: &str, location: &str) -> String {
    if url.contains("://") || url.starts_with('/') {
        return url.to_owned();
    }
    match location.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{url}"),
        None => url.to_owned(),
    }
}

/// Opens the reference set at `location` (a path or URL) as dataset `id`, within `limits`,
/// reading only targets `confinement` allows.
///
/// # Errors
/// [`Error::Open`]: unreadable, no reference set, no Zarr group, a set over the limits, a
/// target outside the confinement, or a whole-object reference whose size cannot be found.
pub async fn open(
    location: &str,
    id: &str,
    stores: &Arc<Stores>,
    limits: &Limits,
    confinement: &Confinement,
) -> Result<VirtualDataset> {
    let fail = |reason: String| Error::Open { location: location.to_owned(), reason };
    let set = if is_parquet(location) {
        read_parquet(location.trim_end_matches('/'), stores, limits).await.map_err(fail)?
    } else {
        let text =
            stores.read_all_at_most(location, limits.max_reference_set_bytes).await.map_err(|e| fail(e.to_string()))?;
        let read_limits =
            ReadLimits { max_references: limits.max_references, max_template_steps: limits.max_template_steps };
        ReferenceSet::from_json(&text, read_limits).map_err(|e| fail(reason(e)))?
    };
    let mut meta = describe(&set, location, id, limits).await?;
    meta.last_modified = stores.stat(location).await.ok().map(|stat| stat.modified);
    // Checked before the loops below, which the shapes size.
    limits.check_dataset(&meta.variables).map_err(fail)?;

    // Targets as written, and what each is read as (checked once).
    let mut targets: IndexMap<String, usize> = IndexMap::new();
    let mut files: Vec<String> = Vec::new();
    let mut chunks = IndexMap::new();
    for (name, var) in &meta.variables {
        let grid = var.chunk_grid();
        let mut stored = Vec::new();
        for flat in 0..cloudify_dataset::product(&grid).unwrap_or(0) {
            let index = unravel(flat, &grid);
            stored.push(match set.get(&chunk_key(name, &index, &set)) {
                None => StoredChunk::Missing,
                Some(Reference::Inline(bytes)) => StoredChunk::Inline(bytes.clone()),
                Some(Reference::Range { url, offset, length }) => {
                    let file = match targets.get(url) {
                        Some(&file) => file,
                        None => {
                            let checked = confinement.check(&resolve(url, location)).map_err(fail)?;
                            let file = files.iter().position(|f| *f == checked).unwrap_or_else(|| {
                                files.push(checked);
                                files.len() - 1
                            });
                            targets.insert(url.clone(), file);
                            file
                        }
                    };
                    let length = match length {
                        Some(length) => *length,
                        None => {
                            let size = stores.stat(&files[file]).await.map_err(|e| fail(e.to_string()))?.size;
                            size.checked_sub(*offset)
                                .ok_or_else(|| fail(format!("{}: offset {offset} past its end", files[file])))?
                        }
                    };
                    limits.check_stored(name, length).map_err(fail)?;
                    StoredChunk::Range {
                        file: u32::try_from(file).map_err(|_| fail("too many files".to_owned()))?,
                        offset: *offset,
                        length,
                    }
                }
            });
        }
        chunks.insert(name.clone(), VariableChunks::Stored(stored));
    }
    Ok(VirtualDataset { meta, files, chunks })
}

/// The dataset the set's metadata documents describe, read by zarrs from an in-memory store.
async fn describe(set: &ReferenceSet, location: &str, id: &str, limits: &Limits) -> Result<DatasetMeta> {
    let fail = |reason: String| Error::Open { location: location.to_owned(), reason };
    let memory = InMemory::new();
    let mut characters = Vec::new();
    for (key, reference) in set.iter() {
        if let (true, Reference::Inline(bytes)) = (is_document(key), reference) {
            let mut bytes = bytes.clone();
            if let Some(name) = key.strip_suffix("/.zarray") {
                if let Some(as_bytes) = characters_as_bytes(&bytes) {
                    characters.push(name.to_owned());
                    bytes = as_bytes;
                }
            }
            memory.put(&StorePath::from(key), PutPayload::from(bytes)).await.map_err(|e| fail(e.to_string()))?;
        }
    }
    let storage = Arc::new(AsyncObjectStore::new(memory));
    let mut meta =
        cloudify_zarr::describe_storage(storage, location, id, limits).await.map_err(|e| fail(e.to_string()))?;
    for name in characters {
        if let Some(var) = meta.variables.get_mut(&name) {
            var.dtype = DataType::Char;
        }
    }
    Ok(meta)
}

/// kerchunk declares NetCDF characters as numpy's `|S1`, which zarrs does not read: the
/// `.zarray` as one-byte integers (the same bytes), or `None` for other types.
fn characters_as_bytes(zarray: &[u8]) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(zarray).ok()?;
    if doc["dtype"] != "|S1" {
        return None;
    }
    doc["dtype"] = Value::from("|u1");
    // A text fill value ("", base64) has no integer form; xarray masks text with `_FillValue`.
    doc["fill_value"] = Value::Null;
    Some(doc.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets_resolve_against_the_set() {
        assert_eq!(resolve("f.nc", "/refs/set.json"), "/refs/f.nc");
        assert_eq!(resolve("/abs/f.nc", "/refs/set.json"), "/abs/f.nc");
        assert_eq!(resolve("s3://b/f.nc", "https://h/set.json"), "s3://b/f.nc");
    }

    /// A reference set from fuzzed parts: shapes, chunk shapes, a data type, references of
    /// every kind (ranges, whole objects, inline data, targets inside and outside the set's
    /// folder) and a `gen` entry with a template.
    fn fuzzed_set(
        shape: &[u16],
        chunks: &[u16],
        dtype: u8,
        refs: &[(Vec<u8>, u32, u32, u8)],
        gen_stop: i32,
        template: &str,
    ) -> Value {
        const DTYPES: [&str; 8] = ["<i2", ">f4", "|u1", "<f8", "|S1", "<U4", "|O", "bogus"];
        const URLS: [&str; 4] = ["data.bin", "../outside.bin", "/etc/passwd", "http://127.0.0.1:9/x"];
        let shape: Vec<u64> = shape.iter().take(4).map(|&n| u64::from(n)).collect();
        let chunks: Vec<u64> = chunks.iter().take(shape.len()).map(|&n| u64::from(n)).collect();
        let dims: Vec<String> = (0..shape.len()).map(|d| format!("d{d}")).collect();
        let zarray = serde_json::json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": DTYPES[usize::from(dtype) % 8],
            "compressor": null, "fill_value": 0, "filters": null, "order": "C"});
        let mut all = serde_json::json!({".zgroup": "{\"zarr_format\":2}", "v/.zarray": zarray.to_string(),
            "v/.zattrs": serde_json::json!({"_ARRAY_DIMENSIONS": dims}).to_string()});
        for (index, offset, length, kind) in refs.iter().take(64) {
            let key = format!("v/{}", index.iter().take(4).map(u8::to_string).collect::<Vec<_>>().join("."));
            let url = URLS[usize::from(*kind / 4) % 4];
            all[key] = match kind % 4 {
                0 => serde_json::json!([url, offset, length]),
                1 => serde_json::json!([url]),
                2 => Value::from("base64:AAEC/w=="),
                _ => Value::from(template),
            };
        }
        serde_json::json!({"version": 1, "templates": {"u": "data.bin"}, "refs": all,
            "gen": [{"key": "v/{{i}}", "url": template, "offset": "{{i * 2}}", "length": "2", "dimensions": {"i": {"stop": gen_stop}}}]})
    }

    /// Fuzz target (`cargo bolero test -p cloudify-kerchunk --features source source::tests::fuzz_reference_sets`): a reference set
    /// of any shape opens within the limits and reads only its own folder, or is refused.
    #[test]
    fn fuzz_reference_sets() {
        // Inputs share only the runtime and the stores; a panic fails the test anyway.
        let runtime =
            std::panic::AssertUnwindSafe(tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("sets");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("data.bin"), [7u8; 64]).unwrap();
        std::fs::write(dir.path().join("outside.bin"), [9u8; 64]).unwrap();
        let set = folder.join("set.json");
        let location = set.to_str().unwrap().to_owned();
        let stores = std::panic::AssertUnwindSafe(Arc::new(Stores::new()));
        let limits = Limits {
            max_chunk_bytes: 1 << 16,
            max_chunks_per_variable: 1 << 10,
            max_chunks_per_dataset: 1 << 12,
            max_references: 1 << 12,
            max_template_steps: 10_000,
            ..Limits::default()
        };
        let confinement = Confinement::of_set(&location, &[]).unwrap();
        let outside = std::fs::canonicalize(dir.path().join("outside.bin")).unwrap();
        bolero::check!().with_type::<(Vec<u16>, Vec<u16>, u8, Vec<(Vec<u8>, u32, u32, u8)>, i32, String)>().for_each(
            |(shape, chunks, dtype, refs, gen_stop, template)| {
                std::fs::write(&set, fuzzed_set(shape, chunks, *dtype, refs, *gen_stop, template).to_string()).unwrap();
                let Ok(dataset) = runtime.block_on(open(&location, "f", &stores, &limits, &confinement)) else {
                    return;
                };
                assert!(limits.check_dataset(&dataset.meta.variables).is_ok());
                assert!(
                    dataset
                        .files
                        .iter()
                        .all(|f| f.starts_with(std::fs::canonicalize(&folder).unwrap().to_str().unwrap())),
                    "{:?}",
                    dataset.files
                );
                assert!(!dataset.files.iter().any(|f| std::path::Path::new(f) == outside));
            },
        );
    }

    #[tokio::test]
    async fn a_reference_set_becomes_a_virtual_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.bin");
        std::fs::write(&data, [0u8, 0, 0, 1, 0, 2, 0, 3, 0, 4]).unwrap();
        let zarray = r#"{"zarr_format":2,"shape":[5],"chunks":[2],"dtype":">i2","compressor":null,"fill_value":-1,"filters":null,"order":"C"}"#;
        let set = serde_json::json!({"version": 1, "refs": {
            ".zgroup": "{\"zarr_format\":2}",
            "v/.zarray": zarray,
            "v/.zattrs": "{\"_ARRAY_DIMENSIONS\":[\"x\"]}",
            "v/0": ["data.bin", 0, 4],
            "v/1": "base64:AAIAAw==",
        }});
        let path = dir.path().join("set.json");
        std::fs::write(&path, set.to_string()).unwrap();
        let stores = Arc::new(Stores::new());
        let (limits, location) = (Limits::default(), path.to_str().unwrap());
        let confinement = Confinement::of_set(location, &[]).unwrap();
        let dataset = open(location, "d", &stores, &limits, &confinement).await.unwrap();
        let var = &dataset.meta.variables["v"];
        assert_eq!((var.shape.as_slice(), var.dimensions.as_slice()), ([5u64].as_slice(), ["x".to_owned()].as_slice()));
        assert_eq!(dataset.files, [std::fs::canonicalize(&data).unwrap().to_str().unwrap()]);
        let VariableChunks::Stored(chunks) = &dataset.chunks["v"] else { panic!("stored chunks expected") };
        assert_eq!(chunks[0], StoredChunk::Range { file: 0, offset: 0, length: 4 });
        assert_eq!(chunks[1], StoredChunk::Inline(vec![0, 2, 0, 3]));
        assert_eq!(chunks[2], StoredChunk::Missing);
        let missing = dir.path().join("nothing.json");
        assert!(open(missing.to_str().unwrap(), "d", &stores, &limits, &confinement).await.is_err());
    }
}

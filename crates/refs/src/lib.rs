//! kerchunk reference sets as dataset sources: JSON of spec version 0 and 1 (templates and
//! `gen` entries expanded, inline data as text or `base64:`) and parquet sets (fsspec's
//! `LazyReferenceMapper` layout), whose targets are local files, HTTP or S3 objects. A reference set is a [`VirtualDataset`]: its Zarr metadata documents
//! describe the arrays, its references say where each chunk's bytes are.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use base64::Engine as _;
use cloudify_dataset::{
    hyperslab::unravel, DataType, DatasetMeta, Limits, StoredChunk, VariableChunks, VirtualDataset,
};
use cloudify_parquet_refs::Row;
use cloudify_store::{Confinement, Stores};
use indexmap::IndexMap;
use object_store::{memory::InMemory, path::Path as StorePath, ObjectStoreExt as _, PutPayload};
use serde_json::{Map, Value};
use zarrs_object_store::AsyncObjectStore;

/// What can go wrong opening a reference set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Unreadable, not a reference set, or describing no Zarr group.
    #[error("{location} is not a usable kerchunk reference set: {reason}")]
    Open {
        /// Path or URL of the reference set.
        location: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One key of a reference set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The value itself (metadata documents, small chunks).
    Inline(Vec<u8>),
    /// Bytes of another object: `length` bytes at `offset`, or the whole object.
    Range {
        /// Path or URL.
        url: String,
        /// Byte offset.
        offset: u64,
        /// Byte count; `None` for the whole object.
        length: Option<u64>,
    },
}

/// Inline data: `base64:` text, else the text's own bytes.
fn inline(text: &str) -> Result<Vec<u8>, String> {
    match text.strip_prefix("base64:") {
        Some(encoded) => {
            base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("bad base64: {e}"))
        }
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// jinja2 rendering of kerchunk's `{{name}}` templates and `gen` expressions, each bounded by
/// the evaluation steps `Limits::max_template_steps` allows (minijinja fuel).
struct Templates {
    env: minijinja::Environment<'static>,
    values: Map<String, Value>,
}

impl Templates {
    fn new(values: Map<String, Value>, limits: &Limits) -> Self {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(limits.max_template_steps));
        Self { env, values }
    }
}

impl Templates {
    fn render(&self, text: &str, extra: &Map<String, Value>) -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_owned());
        }
        let mut context = self.values.clone();
        context.extend(extra.clone());
        self.env.render_str(text, &context).map_err(|e| format!("template {text:?}: {e}"))
    }
}

fn integer(value: &Value, what: &str) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{what} is not a byte count: {n}")),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{what} is not a byte count: {s:?}")),
        other => Err(format!("{what} is not a byte count: {other}")),
    }
}

fn entry(value: &Value, templates: &Templates) -> Result<Entry, String> {
    let none = Map::new();
    match value {
        Value::String(text) => inline(text).map(Entry::Inline),
        // Some writers keep metadata documents as JSON objects.
        Value::Object(_) => Ok(Entry::Inline(value.to_string().into_bytes())),
        Value::Array(parts) => {
            let url = parts.first().and_then(Value::as_str).ok_or("a reference without a URL")?;
            let url = templates.render(url, &none)?;
            match parts.as_slice() {
                [_] => Ok(Entry::Range { url, offset: 0, length: None }),
                [_, offset, length] => Ok(Entry::Range {
                    url,
                    offset: integer(offset, "offset")?,
                    length: Some(integer(length, "length")?),
                }),
                _ => Err(format!("a reference of {} parts", parts.len())),
            }
        }
        other => Err(format!("unexpected reference {other}")),
    }
}

/// The values a `gen` dimension takes: `{start, stop, step}` or a list, at most `max`.
fn dimension_values(spec: &Value, max: u64) -> Result<Vec<Value>, String> {
    let too_many = |n: u64| format!("a gen dimension of {n} values, over the limit of {max} references");
    match spec {
        Value::Array(values) if values.len() as u64 > max => Err(too_many(values.len() as u64)),
        Value::Array(values) => Ok(values.clone()),
        Value::Object(range) => {
            let get = |key: &str, default: i64| range.get(key).and_then(Value::as_i64).unwrap_or(default);
            let (start, stop, step) = (get("start", 0), get("stop", 0), get("step", 1));
            if step <= 0 {
                return Err("a gen dimension with a step below 1".to_owned());
            }
            let span = (i128::from(stop) - i128::from(start)).max(0);
            let count = (span + i128::from(step) - 1) / i128::from(step);
            if count > i128::from(max) {
                return Err(too_many(u64::try_from(count).unwrap_or(u64::MAX)));
            }
            Ok((start..stop).step_by(usize::try_from(step).unwrap_or(usize::MAX)).map(Value::from).collect())
        }
        other => Err(format!("unexpected gen dimension {other}")),
    }
}

/// Expands one `gen` entry: a key, URL, offset and length template over the product of its
/// dimensions.
fn expand_gen(
    gen: &Value,
    templates: &Templates,
    out: &mut IndexMap<String, Entry>,
    limits: &Limits,
) -> Result<(), String> {
    let text = |key: &str| -> String {
        match &gen[key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let dims: Vec<(String, Vec<Value>)> = gen["dimensions"]
        .as_object()
        .ok_or("a gen entry without dimensions")?
        .iter()
        .map(|(name, spec)| Ok((name.clone(), dimension_values(spec, limits.max_references)?)))
        .collect::<Result<_, String>>()?;
    let grid: Vec<u64> = dims.iter().map(|(_, values)| values.len() as u64).collect();
    let count = cloudify_dataset::product(&grid)
        .filter(|&n| n.saturating_add(out.len() as u64) <= limits.max_references)
        .ok_or_else(|| format!("gen entries of {grid:?} are over the limit of {} references", limits.max_references))?;
    for flat in 0..count {
        let position = unravel(flat, &grid);
        let context: Map<String, Value> =
            dims.iter().zip(&position).map(|((name, values), &i)| (name.clone(), values[i as usize].clone())).collect();
        let key = templates.render(&text("key"), &context)?;
        let url = templates.render(&text("url"), &context)?;
        let entry = match (gen.get("offset"), gen.get("length")) {
            (Some(_), Some(_)) => Entry::Range {
                url,
                offset: integer(&Value::from(templates.render(&text("offset"), &context)?), "offset")?,
                length: Some(integer(&Value::from(templates.render(&text("length"), &context)?), "length")?),
            },
            _ => Entry::Range { url, offset: 0, length: None },
        };
        out.insert(key, entry);
    }
    Ok(())
}

/// Parses kerchunk JSON: version 1 (`refs`, `templates`, `gen`) or version 0 (the
/// references themselves), within `limits` (references, template steps).
///
/// # Errors
/// Text that is no reference set, or a set over the limits.
pub fn parse_json(text: &[u8], limits: &Limits) -> Result<IndexMap<String, Entry>, String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let (refs, template_values, gens) = match doc.get("version") {
        Some(version) if version == 1 => (
            doc["refs"].as_object().ok_or("version 1 without refs")?,
            doc.get("templates").and_then(Value::as_object).cloned().unwrap_or_default(),
            doc.get("gen").and_then(Value::as_array).cloned().unwrap_or_default(),
        ),
        Some(other) => return Err(format!("unknown version {other}")),
        None => (doc.as_object().ok_or("not a JSON object")?, Map::new(), Vec::new()),
    };
    let templates = Templates::new(template_values, limits);
    let mut entries = IndexMap::new();
    for gen in &gens {
        expand_gen(gen, &templates, &mut entries, limits)?;
    }
    if (entries.len() + refs.len()) as u64 > limits.max_references {
        return Err(format!("{} references, over the limit of {}", entries.len() + refs.len(), limits.max_references));
    }
    for (key, value) in refs {
        entries.insert(key.clone(), entry(value, &templates).map_err(|e| format!("key {key}: {e}"))?);
    }
    Ok(entries)
}

/// Whether `location` is a parquet reference set (a folder or URL prefix).
pub fn is_parquet(location: &str) -> bool {
    let location = location.trim_end_matches('/');
    location.ends_with(".parq") || location.ends_with(".parquet")
}

/// The entries of the parquet reference set at `root`: its `.zmetadata` documents, then each
/// array's references from its `refs.{k}.parq` files.
async fn read_parquet(root: &str, stores: &Stores, limits: &Limits) -> Result<IndexMap<String, Entry>, String> {
    let max_bytes = limits.max_reference_set_bytes;
    let text = stores.read_all_at_most(&format!("{root}/.zmetadata"), max_bytes).await.map_err(|e| e.to_string())?;
    let (metadata, record_size) = cloudify_parquet_refs::read_zmetadata(&text)?;
    let mut entries: IndexMap<String, Entry> =
        metadata.iter().map(|(key, doc)| (key.clone(), Entry::Inline(doc.to_string().into_bytes()))).collect();
    for (key, zarray) in &metadata {
        let Some(var) = key.strip_suffix("/.zarray") else { continue };
        // Checked before the loop over record files: the shape is the set's to choose.
        let chunks = cloudify_parquet_refs::chunk_count(zarray).filter(|&n| n <= limits.max_chunks_per_variable);
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
        for (chunk, row) in cloudify_parquet_refs::array_rows(var, zarray, record_size, &files)? {
            let entry = match row {
                Row::Inline(bytes) => Entry::Inline(bytes),
                Row::Range { url, offset, length } => Entry::Range { url, offset, length },
                Row::Missing => continue,
            };
            entries.insert(chunk, entry);
        }
    }
    Ok(entries)
}

/// Metadata document names of Zarr v2 and v3.
const DOCUMENTS: [&str; 5] = [".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json"];

/// The chunk key of `index` in the reference set, as its metadata writes keys.
fn chunk_key(name: &str, index: &[u64], entries: &IndexMap<String, Entry>) -> String {
    let zarray = match entries.get(&format!("{name}/.zarray")) {
        Some(Entry::Inline(bytes)) => serde_json::from_slice::<Value>(bytes).ok(),
        _ => None,
    };
    let joined = |sep: &str| index.iter().map(u64::to_string).collect::<Vec<_>>().join(sep);
    match zarray {
        Some(_) if index.is_empty() => format!("{name}/0"),
        Some(zarray) => format!("{name}/{}", joined(zarray["dimension_separator"].as_str().unwrap_or("."))),
        None if index.is_empty() => format!("{name}/c"),
        None => format!("{name}/c/{}", joined("/")),
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
    let entries = if is_parquet(location) {
        read_parquet(location.trim_end_matches('/'), stores, limits).await.map_err(fail)?
    } else {
        let text =
            stores.read_all_at_most(location, limits.max_reference_set_bytes).await.map_err(|e| fail(e.to_string()))?;
        parse_json(&text, limits).map_err(fail)?
    };
    let mut meta = describe(&entries, location, id, limits).await?;
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
            stored.push(match entries.get(&chunk_key(name, &index, &entries)) {
                None => StoredChunk::Missing,
                Some(Entry::Inline(bytes)) => StoredChunk::Inline(bytes.clone()),
                Some(Entry::Range { url, offset, length }) => {
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
async fn describe(entries: &IndexMap<String, Entry>, location: &str, id: &str, limits: &Limits) -> Result<DatasetMeta> {
    let fail = |reason: String| Error::Open { location: location.to_owned(), reason };
    let memory = InMemory::new();
    let mut characters = Vec::new();
    for (key, entry) in entries {
        let document = key.rsplit('/').next().is_some_and(|last| DOCUMENTS.contains(&last));
        if let (true, Entry::Inline(bytes)) = (document, entry) {
            let mut bytes = bytes.clone();
            if let Some(name) = key.strip_suffix("/.zarray") {
                if let Some(as_bytes) = characters_as_bytes(&bytes) {
                    characters.push(name.to_owned());
                    bytes = as_bytes;
                }
            }
            memory
                .put(&StorePath::from(key.as_str()), PutPayload::from(bytes))
                .await
                .map_err(|e| fail(e.to_string()))?;
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
    fn versions_templates_and_gen() {
        let v1 = br#"{"version": 1,
            "templates": {"u": "https://h/data/f.nc"},
            "gen": [{"key": "x/{{i}}", "url": "{{u}}", "offset": "{{1000 + i * 10}}", "length": "10",
                     "dimensions": {"i": {"stop": 3}}}],
            "refs": {".zgroup": "{\"zarr_format\": 2}", "y/0": ["{{u}}", 5, 6], "y/1": "base64:AAH/",
                     "z/0": ["/data/whole.bin"], "w/.zattrs": {"a": 1}}}"#;
        let limits = Limits::default();
        let entries = parse_json(v1, &limits).unwrap();
        assert_eq!(
            entries["x/2"],
            Entry::Range { url: "https://h/data/f.nc".to_owned(), offset: 1020, length: Some(10) }
        );
        assert_eq!(entries["y/0"], Entry::Range { url: "https://h/data/f.nc".to_owned(), offset: 5, length: Some(6) });
        assert_eq!(entries["y/1"], Entry::Inline(vec![0, 1, 255]));
        assert_eq!(entries["z/0"], Entry::Range { url: "/data/whole.bin".to_owned(), offset: 0, length: None });
        assert_eq!(entries[".zgroup"], Entry::Inline(br#"{"zarr_format": 2}"#.to_vec()));
        assert_eq!(entries["w/.zattrs"], Entry::Inline(br#"{"a":1}"#.to_vec()));
        let v0 = parse_json(br#"{".zgroup": "{}", "a/0": ["s3://b/k", 1, 2]}"#, &limits).unwrap();
        assert_eq!(v0.len(), 2);
        assert!(parse_json(br#"{"version": 2, "refs": {}}"#, &limits).is_err());
        assert!(parse_json(br#"{"a/0": ["u", 1]}"#, &limits).is_err());
        assert!(parse_json(b"[1]", &limits).is_err());
    }

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

    /// Fuzz target (`cargo bolero test -p cloudify-refs fuzz_reference_sets`): a reference set
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

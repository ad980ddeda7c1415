//! Intake catalogs as the dataset list, as DKRZ's EERIE service is configured: a catalog tree
//! (intake v1 `sources:` or v2 `entries:` YAML) walked recursively, each dataset entry named by
//! its dotted path (`model.experiment.version.realm.grid.freq`), entries with user parameters
//! expanded into one dataset per combination of allowed values (`<name>.<v1>_<v2>`).
//!
//! What an entry opens is told by its URL as for `[[datasets]]`: a kerchunk reference set
//! (`reference::/…/x.parq`, `reference://` with `storage_options.fo`, or a `.json`/`.parq`
//! path), a Zarr store, a NetCDF file. Paths are relative to the catalog file that names them
//! (`{{CATALOG_DIR}}` in v1). Entries of other kinds are skipped with a warning.
//!
//! A catalog may be at a URL (HTTP, S3): what it names relative to itself is then at URLs too,
//! and it may not name local files.

use std::path::{Path, PathBuf};

use cloudify_store::Stores;
use serde_norway::Value;
use url::Url;

use crate::Entry;

/// Catalog files larger than this are not read.
const MAX_CATALOG_BYTES: u64 = 16 << 20;

/// Catalog files nested deeper than this are not read (a cycle, or a hostile tree).
const MAX_DEPTH: usize = 16;

/// The most entries one catalog tree yields (parameter combinations multiply).
const MAX_ENTRIES: usize = 100_000;

/// Where a catalog tree starts and which of its datasets are served.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The root catalog file.
    pub path: PathBuf,
    /// Prepended to every id.
    pub prefix: String,
    /// Glob patterns on ids (after the prefix): only matching datasets (all when empty).
    pub include: Vec<String>,
    /// Glob patterns on ids: datasets left out.
    pub exclude: Vec<String>,
    /// Where the reference sets it names may point besides their own folders.
    pub allow_targets: Vec<String>,
}

/// One dataset entry found in a catalog tree, before the include/exclude filter.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    id: String,
    location: String,
}

/// The datasets of the catalog tree at `catalog.path` (a path or a URL, read through
/// `stores`), with a warning per entry or file skipped. Blocking: call it on a blocking thread
/// of a tokio runtime (catalogs at URLs are read on the runtime).
pub fn catalog_entries(catalog: &Catalog, stores: &Stores) -> (Vec<Entry>, Vec<String>) {
    let mut walk = Walk { stores, found: Vec::new(), warnings: Vec::new(), visited: Vec::new() };
    walk.file(&catalog.path.to_string_lossy(), "", 0);
    let patterns = |globs: &[String], warnings: &mut Vec<String>| -> Vec<glob::Pattern> {
        globs
            .iter()
            .filter_map(|g| glob::Pattern::new(g).map_err(|e| warnings.push(format!("pattern {g:?}: {e}"))).ok())
            .collect()
    };
    let include = patterns(&catalog.include, &mut walk.warnings);
    let exclude = patterns(&catalog.exclude, &mut walk.warnings);
    let entries = walk
        .found
        .into_iter()
        .map(|found| (format!("{}{}", catalog.prefix, found.id), found.location))
        .filter(|(id, _)| include.is_empty() || include.iter().any(|p| p.matches(id)))
        .filter(|(id, _)| !exclude.iter().any(|p| p.matches(id)))
        .map(|(id, location)| Entry {
            id,
            path: PathBuf::from(location),
            concat_dim: None,
            allow_targets: catalog.allow_targets.clone(),
        })
        .collect();
    (entries, walk.warnings)
}

struct Walk<'s> {
    stores: &'s Stores,
    found: Vec<Found>,
    warnings: Vec<String>,
    /// Catalog files read (canonical paths, URLs).
    visited: Vec<String>,
}

/// The text of the catalog file at `location`.
fn read(location: &str, stores: &Stores) -> Result<String, String> {
    if !Stores::is_remote(location) {
        return std::fs::read_to_string(location).map_err(|e| e.to_string());
    }
    let handle = tokio::runtime::Handle::current();
    let size = handle.block_on(stores.stat(location)).map_err(|e| e.to_string())?.size;
    if size > MAX_CATALOG_BYTES {
        return Err(format!("over {MAX_CATALOG_BYTES} bytes: not a catalog"));
    }
    let bytes = handle.block_on(stores.read_range(location, 0, size)).map_err(|e| e.to_string())?;
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

impl Walk<'_> {
    /// The catalog file at `location`, its entries named under `name`.
    fn file(&mut self, location: &str, name: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.warnings.push(format!("{location}: catalogs nested deeper than {MAX_DEPTH}: not read"));
            return;
        }
        let real = if Stores::is_remote(location) {
            location.to_owned()
        } else {
            std::fs::canonicalize(location).map_or_else(|_| location.to_owned(), |p| p.to_string_lossy().into_owned())
        };
        if self.visited.contains(&real) {
            self.warnings.push(format!("{location}: already read (a cycle): not read again"));
            return;
        }
        self.visited.push(real);
        let text = match read(location, self.stores) {
            Ok(text) => text,
            Err(err) => return self.warnings.push(format!("{location}: {err}")),
        };
        let doc: Value = match serde_norway::from_str(&text) {
            Ok(doc) => doc,
            Err(err) => return self.warnings.push(format!("{location}: {err}")),
        };
        let folder = folder_of(location);
        if doc.get("version").and_then(Value::as_u64) == Some(2) || doc.get("entries").is_some() {
            self.version2(&doc, &folder, name, depth);
        } else if let Some(sources) = doc.get("sources").and_then(Value::as_mapping) {
            for (key, source) in sources {
                let Some(key) = key.as_str() else { continue };
                self.version1(source, &folder, &join(name, key), depth);
            }
        } else {
            self.warnings.push(format!("{location}: neither an intake v1 (sources) nor v2 (entries) catalog"));
        }
    }

    /// `path` named by a catalog in `folder`, or a warning naming `id`.
    fn resolve(&mut self, id: &str, folder: &str, path: &str) -> Option<String> {
        relative_to(folder, path).map_err(|reason| self.warnings.push(format!("{id}: {reason}"))).ok()
    }

    /// An intake v1 source: `driver` and `args`, `parameters` with `allowed` values.
    fn version1(&mut self, source: &Value, folder: &str, name: &str, depth: usize) {
        let driver = source.get("driver").and_then(Value::as_str).unwrap_or_default();
        let args = source.get("args").cloned().unwrap_or(Value::Null);
        let parameters = parameters(source.get("parameters"), "allowed");
        let catalog_dir = folder.trim_end_matches('/').to_owned();
        for (suffix, values) in combinations(&parameters) {
            let fill = |text: &str| {
                let mut out = jinja(text, "CATALOG_DIR", &catalog_dir);
                for (key, value) in &values {
                    out = jinja(&out, key, value);
                }
                out
            };
            let id = join(name, &suffix);
            match driver {
                "yaml_file_cat" | "intake.catalog.local.YAMLFileCatalog" => {
                    match args.get("path").or_else(|| args.get("urlpath")).and_then(Value::as_str) {
                        Some(path) => {
                            if let Some(location) = self.resolve(&id, folder, &fill(path)) {
                                self.file(&location, &id, depth + 1);
                            }
                        }
                        None => self.warnings.push(format!("{id}: a nested catalog without a path")),
                    }
                }
                "zarr"
                | "netcdf"
                | "opendap"
                | "intake_xarray.xzarr.ZarrSource"
                | "intake_xarray.netcdf.NetCDFSource"
                | "intake_xarray.xarray.XArraySource"
                | "xarray"
                | "kerchunk" => {
                    let url = args.get("urlpath").and_then(Value::as_str).map(&fill);
                    let fo = args.get("storage_options").and_then(|o| o.get("fo")).and_then(Value::as_str).map(&fill);
                    self.dataset(&id, folder, url.as_deref(), fo.as_deref());
                }
                other => self.warnings.push(format!("{id}: driver {other:?} is not served")),
            }
        }
    }

    /// An intake v2 catalog: `data` descriptions referred to from `entries` as
    /// `{data(token)}`, user parameters on the catalog, the entries and the data.
    fn version2(&mut self, doc: &Value, folder: &str, name: &str, depth: usize) {
        let Some(entries) = doc.get("entries").and_then(Value::as_mapping) else { return };
        let catalog_parameters = parameters(doc.get("user_parameters"), "options");
        for (key, entry) in entries {
            let Some(key) = key.as_str() else { continue };
            let id = join(name, key);
            let reader = entry.get("reader").and_then(Value::as_str).unwrap_or_default();
            let kwargs = entry.get("kwargs").cloned().unwrap_or(Value::Null);
            let data = kwargs
                .get("data")
                .or_else(|| kwargs.get("args").and_then(|a| a.get(0)))
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix("{data(")?.strip_suffix(")}"))
                .and_then(|token| doc.get("data")?.get(token));
            let Some(data) = data else {
                self.warnings.push(format!("{id}: reader {reader:?} without a data description is not served"));
                continue;
            };
            let mut params = catalog_parameters.clone();
            params.extend(parameters(data.get("user_parameters"), "options"));
            params.extend(parameters(entry.get("user_parameters"), "options"));
            let data_kwargs = data.get("kwargs").cloned().unwrap_or(Value::Null);
            for (suffix, values) in combinations(&params) {
                let fill =
                    |text: &str| values.iter().fold(text.to_owned(), |t, (k, v)| t.replace(&format!("{{{k}}}"), v));
                let url = data_kwargs.get("url").and_then(Value::as_str).map(&fill);
                let fo =
                    data_kwargs.get("storage_options").and_then(|o| o.get("fo")).and_then(Value::as_str).map(&fill);
                let id = join(&id, &suffix);
                if reader.ends_with(":YAMLCatalogReader") {
                    match url {
                        Some(url) => {
                            if let Some(location) = self.resolve(&id, folder, &url) {
                                self.file(&location, &id, depth + 1);
                            }
                        }
                        None => self.warnings.push(format!("{id}: a nested catalog without a url")),
                    }
                } else if reader.ends_with(":XArrayDatasetReader") {
                    self.dataset(&id, folder, url.as_deref(), fo.as_deref());
                } else {
                    self.warnings.push(format!("{id}: reader {reader:?} is not served"));
                }
            }
        }
    }

    /// A dataset entry at `url` (`fo`: a `reference://` set's file).
    fn dataset(&mut self, id: &str, folder: &str, url: Option<&str>, fo: Option<&str>) {
        if self.found.len() >= MAX_ENTRIES {
            if self.found.len() == MAX_ENTRIES {
                self.warnings.push(format!("more than {MAX_ENTRIES} datasets: the rest are not read"));
            }
            return;
        }
        let location = match (url, fo) {
            (Some(url), Some(fo)) if url.starts_with("reference://") => fo,
            (Some(url), _) => url.strip_prefix("reference::").unwrap_or(url),
            (None, _) => return self.warnings.push(format!("{id}: no url")),
        };
        if location.contains("::") {
            return self.warnings.push(format!("{id}: chained URL {location:?} is not served"));
        }
        if let Some(location) = self.resolve(id, folder, location) {
            self.found.push(Found { id: id.to_owned(), location });
        }
    }
}

fn join(name: &str, key: &str) -> String {
    match (name.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => name.to_owned(),
        _ => format!("{name}.{key}"),
    }
}

/// The folder of the catalog file at `location`: a path, or a URL ending in `/`.
fn folder_of(location: &str) -> String {
    if Stores::is_remote(location) {
        return location.rfind('/').map_or_else(|| location.to_owned(), |at| location[..=at].to_owned());
    }
    Path::new(location).parent().unwrap_or(Path::new("")).to_string_lossy().into_owned()
}

/// `path` (absolute, a URL, or relative to `folder`) with `.` and `..` resolved lexically, as
/// `{{CATALOG_DIR}}/../refs/x.json` means. A catalog at a URL names URLs only.
///
/// # Errors
/// A local path (or `file://` URL) named by a catalog at a URL; a URL that does not parse.
fn relative_to(folder: &str, path: &str) -> Result<String, String> {
    if Stores::is_remote(folder) {
        // An absolute path is a local file to intake (fsspec), whatever the catalog's place.
        if path.starts_with('/') {
            return Err(format!("{path}: a catalog at a URL names no local file"));
        }
        let base = Url::parse(folder).map_err(|e| format!("{folder}: {e}"))?;
        let url = base.join(path).map_err(|e| format!("{path}: {e}"))?;
        if !Stores::is_remote(url.as_str()) {
            return Err(format!("{path}: a catalog at a URL names no local file"));
        }
        return Ok(url.to_string());
    }
    if path.contains("://") && !path.starts_with("file://") {
        return Ok(path.to_owned());
    }
    let path = path.strip_prefix("file://").unwrap_or(path);
    let joined = if Path::new(path).is_absolute() { PathBuf::from(path) } else { Path::new(folder).join(path) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

/// `text` with Jinja's `{{ key }}` (any spacing) replaced by `value`.
fn jinja(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else { break };
        let inner = rest[start + 2..start + end].trim();
        out.push_str(&rest[..start]);
        if inner == key {
            out.push_str(value);
        } else {
            out.push_str(&rest[start..start + end + 2]);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Parameters and the values each may take: `field` (`allowed` in v1, `options` in v2, a
/// list or a YAML set), else the default alone.
fn parameters(table: Option<&Value>, field: &str) -> Vec<(String, Vec<String>)> {
    let Some(table) = table.and_then(Value::as_mapping) else { return Vec::new() };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    table
        .iter()
        .filter_map(|(key, spec)| {
            let key = key.as_str()?.to_owned();
            let choices = match spec.get(field).map(untagged) {
                Some(Value::Sequence(items)) => items.iter().filter_map(text).collect(),
                Some(Value::Mapping(set)) => set.keys().filter_map(text).collect(),
                _ => Vec::new(),
            };
            let values =
                if choices.is_empty() { spec.get("default").and_then(text).into_iter().collect() } else { choices };
            Some((key, values))
        })
        .collect()
}

fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

/// Every combination of the parameters' values, in order, with its id suffix (`v1_v2`):
/// parameters with one value take it without naming it in the suffix.
fn combinations(parameters: &[(String, Vec<String>)]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = vec![(Vec::new(), Vec::new())];
    for (key, values) in parameters {
        if values.is_empty() {
            continue;
        }
        let mut next = Vec::new();
        for (suffix, chosen) in &out {
            for value in values {
                let mut suffix: Vec<String> = suffix.clone();
                if values.len() > 1 {
                    suffix.push(value.clone());
                }
                let mut chosen: Vec<(String, String)> = chosen.clone();
                chosen.push((key.clone(), value.clone()));
                next.push((suffix, chosen));
            }
            if next.len() > MAX_ENTRIES {
                break;
            }
        }
        out = next;
    }
    out.into_iter().map(|(suffix, chosen)| (suffix.join("_"), chosen)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_parameters() {
        assert_eq!(jinja("{{ CATALOG_DIR }}/x/{{freq}}.json", "CATALOG_DIR", "/c"), "/c/x/{{freq}}.json");
        assert_eq!(relative_to("/c/model", "../refs/./x.json").unwrap(), "/c/refs/x.json");
        assert_eq!(relative_to("/c/model", "file:///d/x.json").unwrap(), "/d/x.json");
        assert_eq!(relative_to("/c/model", "s3://b/x.json").unwrap(), "s3://b/x.json");
        // A catalog at a URL: relative paths are URLs, local ones are refused.
        let folder = folder_of("https://h/cat/model/main.yaml");
        assert_eq!(folder, "https://h/cat/model/");
        assert_eq!(relative_to(&folder, "../refs/x.json").unwrap(), "https://h/cat/refs/x.json");
        assert!(relative_to(&folder, "/data/top.yaml").unwrap_err().contains("no local file"));
        assert_eq!(relative_to("s3://bucket/cat/", "sub/x.parq").unwrap(), "s3://bucket/cat/sub/x.parq");
        assert!(relative_to(&folder, "file:///etc/passwd").unwrap_err().contains("no local file"));
        let params =
            vec![("freq".to_owned(), vec!["mon".to_owned(), "day".to_owned()]), ("v".to_owned(), vec!["1".to_owned()])];
        let combos = combinations(&params);
        let suffixes: Vec<&str> = combos.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(suffixes, ["mon", "day"]);
        assert_eq!(combos[1].1, [("freq".to_owned(), "day".to_owned()), ("v".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn a_tree_of_both_versions_names_datasets_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(
            root.join("main.yaml"),
            "sources:\n  model:\n    driver: yaml_file_cat\n    args:\n      path: '{{CATALOG_DIR}}/sub/model.yaml'\n  \
             loop:\n    driver: yaml_file_cat\n    args:\n      path: main.yaml\n  \
             odd:\n    driver: csv\n    args: {urlpath: x.csv}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sub/model.yaml"),
            "version: 2\nuser_parameters: {}\ndata:\n  abc:\n    datatype: intake.readers.datatypes:Parquet\n    \
             kwargs: {url: 'reference::refs/{freq}.parq'}\n    user_parameters:\n      freq:\n        \
             options: !!set {mon: null, day: null}\n        default: mon\n  z:\n    datatype: intake.readers.datatypes:Zarr\n    \
             kwargs: {url: /data/store.zarr}\nentries:\n  atmos:\n    reader: intake.readers.readers:XArrayDatasetReader\n    \
             kwargs: {args: ['{data(abc)}'], engine: kerchunk}\n  ocean:\n    reader: intake.readers.readers:XArrayDatasetReader\n    \
             kwargs: {args: ['{data(z)}']}\n",
        )
        .unwrap();
        let catalog = Catalog { path: root.join("main.yaml"), prefix: "eerie.".to_owned(), ..Catalog::default() };
        let stores = Stores::new();
        let (entries, warnings) = catalog_entries(&catalog, &stores);
        let found: Vec<(String, String)> =
            entries.iter().map(|e| (e.id.clone(), e.path.to_string_lossy().into_owned())).collect();
        let sub = root.join("sub");
        assert_eq!(
            found,
            [
                ("eerie.model.atmos.mon".to_owned(), sub.join("refs/mon.parq").to_string_lossy().into_owned()),
                ("eerie.model.atmos.day".to_owned(), sub.join("refs/day.parq").to_string_lossy().into_owned()),
                ("eerie.model.ocean".to_owned(), "/data/store.zarr".to_owned()),
            ]
        );
        assert!(warnings.iter().any(|w| w.contains("cycle")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("\"csv\"")), "{warnings:?}");
        let only = Catalog { include: vec!["*.day".to_owned()], ..catalog };
        assert_eq!(catalog_entries(&only, &stores).0.len(), 1);
    }
}

//! Intake catalogs as the dataset list, as DKRZ's EERIE service is configured: a catalog tree
//! (intake v1 `sources:` or v2 `entries:` YAML) walked recursively, each dataset entry named by
//! its dotted path (`model.experiment.version.realm.grid.freq`), entries with user parameters
//! expanded into one dataset per combination of allowed values (`<name>.<v1>_<v2>`).
//!
//! What an entry opens is told by its URL as for `[[datasets]]`: a kerchunk reference set
//! (`reference::/…/x.parq`, `reference://` with `storage_options.fo`, or a `.json`/`.parq`
//! path), a Zarr store, a NetCDF file. Paths are relative to the catalog file that names them
//! (`{{CATALOG_DIR}}` in v1). Entries of other kinds are skipped with a warning.

use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::Entry;

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

/// The datasets of the catalog tree at `catalog.path`, with a warning per entry or file
/// skipped.
pub fn catalog_entries(catalog: &Catalog) -> (Vec<Entry>, Vec<String>) {
    let mut walk = Walk::default();
    walk.file(&catalog.path, "", 0);
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

#[derive(Default)]
struct Walk {
    found: Vec<Found>,
    warnings: Vec<String>,
    visited: Vec<PathBuf>,
}

impl Walk {
    /// The catalog file at `path`, its entries named under `name`.
    fn file(&mut self, path: &Path, name: &str, depth: usize) {
        let shown = path.display();
        if depth > MAX_DEPTH {
            self.warnings.push(format!("{shown}: catalogs nested deeper than {MAX_DEPTH}: not read"));
            return;
        }
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.visited.contains(&real) {
            self.warnings.push(format!("{shown}: already read (a cycle): not read again"));
            return;
        }
        self.visited.push(real);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => return self.warnings.push(format!("{shown}: {err}")),
        };
        let doc: Value = match serde_norway::from_str(&text) {
            Ok(doc) => doc,
            Err(err) => return self.warnings.push(format!("{shown}: {err}")),
        };
        let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if doc.get("version").and_then(Value::as_u64) == Some(2) || doc.get("entries").is_some() {
            self.version2(&doc, &folder, name, depth);
        } else if let Some(sources) = doc.get("sources").and_then(Value::as_mapping) {
            for (key, source) in sources {
                let Some(key) = key.as_str() else { continue };
                self.version1(source, &folder, &join(name, key), depth);
            }
        } else {
            self.warnings.push(format!("{shown}: neither an intake v1 (sources) nor v2 (entries) catalog"));
        }
    }

    /// An intake v1 source: `driver` and `args`, `parameters` with `allowed` values.
    fn version1(&mut self, source: &Value, folder: &Path, name: &str, depth: usize) {
        let driver = source.get("driver").and_then(Value::as_str).unwrap_or_default();
        let args = source.get("args").cloned().unwrap_or(Value::Null);
        let parameters = parameters(source.get("parameters"), "allowed");
        let catalog_dir = folder.to_string_lossy().into_owned();
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
                        Some(path) => self.file(&relative_to(folder, &fill(path)), &id, depth + 1),
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
    fn version2(&mut self, doc: &Value, folder: &Path, name: &str, depth: usize) {
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
                        Some(url) => self.file(&relative_to(folder, &url), &id, depth + 1),
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
    fn dataset(&mut self, id: &str, folder: &Path, url: Option<&str>, fo: Option<&str>) {
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
        let location = if location.contains("://") {
            location.to_owned()
        } else {
            relative_to(folder, location).to_string_lossy().into_owned()
        };
        self.found.push(Found { id: id.to_owned(), location });
    }
}

fn join(name: &str, key: &str) -> String {
    match (name.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => name.to_owned(),
        _ => format!("{name}.{key}"),
    }
}

/// `path` (absolute, or relative to `folder`) with `.` and `..` resolved lexically, as
/// `{{CATALOG_DIR}}/../refs/x.json` means.
fn relative_to(folder: &Path, path: &str) -> PathBuf {
    let path = path.strip_prefix("file://").unwrap_or(path);
    let joined = if Path::new(path).is_absolute() { PathBuf::from(path) } else { folder.join(path) };
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
    out
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
        assert_eq!(relative_to(Path::new("/c/model"), "../refs/./x.json"), Path::new("/c/refs/x.json"));
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
        let (entries, warnings) = catalog_entries(&catalog);
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
        assert_eq!(catalog_entries(&only).0.len(), 1);
    }
}

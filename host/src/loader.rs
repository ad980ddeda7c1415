//! Finding and loading plugins: shared libraries named `libcloudify_plugin_*` (next to the
//! executable, in plugin folders, or listed in the config), plus those compiled in with
//! `--features static-all`. A file that is not a compatible plugin is refused with one line and
//! the others still load.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use abi_stable::library::{lib_header_from_path, LibraryError};
use cloudify_sdk::abi::{PluginModRef, RouteSpec};
use tokio::runtime::Handle;

use sha2::Digest as _;

use crate::{
    config::{Config, PluginsConfig},
    host_api::plugin_host,
    registry::Registry,
};

/// File-name prefix of plugin libraries (`libcloudify_plugin_zarr.so`).
#[cfg(not(windows))]
const FILE_PREFIX: &str = "libcloudify_plugin_";
#[cfg(windows)]
const FILE_PREFIX: &str = "cloudify_plugin_";

/// Where a plugin came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Compiled into the binary.
    Static,
    /// Loaded from this file.
    File(PathBuf),
}

impl Origin {
    /// What clients may see: the file name, not where the operator keeps plugins.
    pub fn public_name(&self) -> String {
        match self {
            Self::Static => "static".to_owned(),
            Self::File(path) => path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static => f.write_str("static"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin that loaded, with the routes it declared.
pub struct LoadedPlugin {
    /// Its unique name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// What it offers, in one line.
    pub description: String,
    /// Where it came from.
    pub origin: Origin,
    /// Its routes, to be mounted.
    pub routes: Vec<RouteSpec>,
    /// The host handle given to it (its handlers receive the same one).
    pub host: cloudify_sdk::Host,
    /// Whether it also provides datasets.
    pub provides_datasets: bool,
}

/// A plugin file that did not load, or a plugin left out by the config.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The file (or `static`).
    pub origin: String,
    /// One line saying why.
    pub reason: String,
}

/// The outcome of loading.
#[derive(Default)]
pub struct Loaded {
    /// Plugins that loaded, in load order.
    pub plugins: Vec<LoadedPlugin>,
    /// Files that are not usable plugins.
    pub refused: Vec<Refusal>,
    /// Plugins the `enabled`/`disabled` lists left out.
    pub skipped: Vec<Refusal>,
}

/// The root modules compiled into this binary.
fn static_plugins() -> Vec<PluginModRef> {
    #[allow(unused_mut)]
    let mut modules = Vec::new();
    #[cfg(feature = "static-datapoint")]
    modules.push(cloudify_datapoint_plugin::plugin_module());
    #[cfg(feature = "static-diagnostics")]
    modules.push(cloudify_diagnostics_plugin::plugin_module());
    #[cfg(feature = "static-icechunk")]
    modules.push(cloudify_icechunk_plugin::plugin_module());
    #[cfg(feature = "static-intake")]
    modules.push(cloudify_intake::plugin_module());
    #[cfg(feature = "static-kerchunk")]
    modules.push(cloudify_kerchunk_plugin::plugin_module());
    #[cfg(feature = "static-plot")]
    modules.push(cloudify_plot_plugin::plugin_module());
    #[cfg(feature = "static-stac")]
    modules.push(cloudify_stac_plugin::plugin_module());
    #[cfg(feature = "static-web")]
    modules.push(cloudify_web_plugin::plugin_module());
    #[cfg(feature = "static-zarr")]
    modules.push(cloudify_zarr_plugin::plugin_module());
    modules
}

/// Plugin files to try, in order: config `files`, then plugin folders, then the
/// executable's folder; each file once.
pub fn candidate_files(config: &Config, extra_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra_dirs.iter().chain(&config.plugins.dirs).cloned().collect();
    if config.plugins.search_exe_dir {
        if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
            dirs.push(dir);
        }
    }
    let mut files = config.plugins.files.clone();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            tracing::warn!(dir = %dir.display(), "plugin folder not readable");
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| name.starts_with(FILE_PREFIX) && name.ends_with(std::env::consts::DLL_SUFFIX))
            })
            .collect();
        found.sort();
        files.extend(found);
    }
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(file.canonicalize().unwrap_or_else(|_| file.clone())));
    files
}

/// Loads every plugin: static ones first, then `files`. Each gets a host handle over
/// `registry`; dataset providers are added to it.
pub fn load(config: &Config, files: &[PathBuf], registry: &Arc<Registry>, runtime: &Handle) -> Loaded {
    let mut loaded = Loaded::default();
    let modules = static_plugins().into_iter().map(|module| (Origin::Static, Ok(module))).chain(
        files.iter().map(|file| (Origin::File(file.clone()), trusted(file, &config.plugins).and_then(|()| open(file)))),
    );
    for (origin, module) in modules {
        let refuse = |reason: String| Refusal { origin: origin.to_string(), reason };
        let module = match module {
            Ok(module) => module,
            Err(reason) => {
                tracing::warn!(file = %origin, "plugin refused: {reason}");
                loaded.refused.push(refuse(reason));
                continue;
            }
        };
        let name = module.name()().to_string();
        if let Some(first) = loaded.plugins.iter().find(|p| p.name == name) {
            let reason = format!("plugin '{name}' is already loaded from {}", first.origin);
            tracing::warn!(file = %origin, "plugin refused: {reason}");
            loaded.refused.push(refuse(reason));
            continue;
        }
        let plugins = &config.plugins;
        if (!plugins.enabled.is_empty() && !plugins.enabled.contains(&name)) || plugins.disabled.contains(&name) {
            tracing::info!(plugin = name, "plugin disabled by the config");
            loaded.skipped.push(refuse(format!("plugin '{name}' is disabled by the config")));
            continue;
        }
        let host = plugin_host(&name, config.plugin_table(&name), Arc::clone(registry), runtime.clone());
        let decl = match module.init()(host.clone()).into_result() {
            Ok(decl) => decl,
            Err(reason) => {
                tracing::warn!(file = %origin, "plugin refused: {reason}");
                loaded.refused.push(refuse(reason.into_string()));
                continue;
            }
        };
        let provides_datasets = decl.dataset_source.is_some();
        if let Some(source) = decl.dataset_source.into_option() {
            registry.add_provider(&name, source);
        }
        registry.add_plugin(&name);
        tracing::info!(plugin = name, version = %decl.version, from = %origin, routes = decl.routes.len(), "plugin loaded");
        loaded.plugins.push(LoadedPlugin {
            name,
            version: decl.version.into_string(),
            description: decl.description.into_string(),
            origin,
            routes: decl.routes.into_vec(),
            host,
            provides_datasets,
        });
    }
    loaded
}

/// Whether `file` may be opened at all: `dlopen` runs a library's constructors before any ABI
/// check, so a file anyone could have written, or one that differs from its pinned digest,
/// is refused before it is opened. `Err` is the one-line reason.
fn trusted(file: &Path, plugins: &PluginsConfig) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("not a file".to_owned());
    }
    let owner_ok = |uid: u32| uid == 0 || uid == rustix::process::geteuid().as_raw();
    if meta.mode() & 0o002 != 0 {
        return Err("writable by every user: refused (chmod o-w)".to_owned());
    }
    if !owner_ok(meta.uid()) {
        return Err(format!("owned by user {}, neither root nor the server's user: refused", meta.uid()));
    }
    if let Some(folder) = file.canonicalize().ok().and_then(|real| real.parent().map(Path::to_path_buf)) {
        let folder_meta = std::fs::metadata(&folder).map_err(|e| format!("its folder cannot be read: {e}"))?;
        // Writable by everyone without the sticky bit: anyone could have swapped the file.
        if folder_meta.mode() & 0o002 != 0 && folder_meta.mode() & 0o1000 == 0 {
            return Err(format!("its folder {} is writable by every user: refused", folder.display()));
        }
    }
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match plugins.sha256.get(&name) {
        Some(pin) => {
            let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
            let digest = format!("{:x}", sha2::Sha256::digest(&bytes));
            if !digest.eq_ignore_ascii_case(pin.trim()) {
                return Err(format!("sha256 {digest} differs from the pinned {pin}: refused"));
            }
        }
        None if plugins.require_sha256 => return Err("no sha256 pinned for it in [plugins.sha256]: refused".to_owned()),
        None => {}
    }
    Ok(())
}

/// Opens one plugin file and checks its ABI; `Err` is the one-line reason for refusing it.
fn open(file: &Path) -> Result<PluginModRef, String> {
    // dlopen does not search the working directory: make relative paths explicit.
    let path = if file.is_relative() { Path::new(".").join(file) } else { file.to_path_buf() };
    lib_header_from_path(&path).and_then(|header| header.init_root_module::<PluginModRef>()).map_err(|err| {
        tracing::debug!(file = %file.display(), "full loader error: {err}");
        refusal_reason(&err)
    })
}

/// One line out of abi_stable's (sometimes thousands of lines long) loader errors.
fn refusal_reason(err: &LibraryError) -> String {
    let sdk = cloudify_sdk::SDK_VERSION;
    match err {
        LibraryError::OpenError { err, .. } => format!("cannot be opened: {err}"),
        LibraryError::GetSymbolError { .. } => "not a cloudify plugin: it exports no plugin root module".to_owned(),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => format!(
            "built against cloudify-sdk {actual_version}, this host needs {expected_version}: rebuild the plugin"
        ),
        LibraryError::AbiInstability(details) => {
            format!(
                "incompatible plugin ABI (this host has cloudify-sdk {sdk}; rebuild the plugin): {}",
                first_abi_error(&details.to_string())
            )
        }
        other => {
            let text = other.to_string();
            let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error");
            format!("cannot be loaded: {first}")
        }
    }
}

/// The first `Error:` of an abi_stable layout report with its `Expected:`/`Found:` values,
/// which the report puts on the lines after their labels.
fn first_abi_error(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let Some(at) = lines.iter().position(|l| l.starts_with("Error:")) else {
        return "layout mismatch".to_owned();
    };
    let value = |label: &str| {
        let i = lines[at..].iter().position(|l| l.starts_with(label))? + at;
        let inline = lines[i][label.len()..].trim();
        Some(if inline.is_empty() { lines.get(i + 1).copied().unwrap_or_default() } else { inline }.to_owned())
    };
    let what = lines[at]["Error:".len()..].trim();
    match (value("Expected:"), value("Found:")) {
        (Some(expected), Some(found)) => format!("{what}: expected {expected}, found {found}"),
        _ => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::first_abi_error;

    #[test]
    fn abi_reports_shrink_to_one_line() {
        let report = "\n  lots of layout\nError:incompatible package versions\nExpected:\n    0.1.0\nFound:\n    0.2.0\n1 error(s)inside:\nError:other";
        assert_eq!(first_abi_error(report), "incompatible package versions: expected 0.1.0, found 0.2.0");
        assert_eq!(
            first_abi_error("Error:too many fields Expected: 6 Found: 7"),
            "too many fields Expected: 6 Found: 7"
        );
        assert_eq!(
            first_abi_error("Error:incompatible type size\nExpected: 192\nFound: 224"),
            "incompatible type size: expected 192, found 224"
        );
    }
}

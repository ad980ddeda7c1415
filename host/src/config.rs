//! The configuration: one TOML file, every key overridable by a `CLOUDIFY_...` environment
//! variable (`CLOUDIFY_SERVER__BIND=0.0.0.0:9000`: sections are separated by `__`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use cloudify_dataset::Limits;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listening, CORS, logs, limits.
    pub server: ServerConfig,
    /// `[plugins]`: where plugins are found and which load.
    pub plugins: PluginsConfig,
    /// `[demo]`: the built-in demo dataset.
    pub demo: DemoConfig,
    /// `[cache]`: where scans (chunk references) and the demo file are kept.
    pub cache: CacheConfig,
    /// `[limits]`: caps on what one file or reference set may make the server allocate.
    pub limits: Limits,
    /// `[auth]`: datasets behind bearer tokens (none by default).
    pub auth: crate::auth::AuthConfig,
    /// `[[datasets]]`: one entry per dataset.
    pub datasets: Vec<DatasetConfig>,
    /// `[[folders]]`: every NetCDF file under a folder, ids from file names.
    pub folders: Vec<FolderConfig>,
    /// `[[catalogs]]`: intake catalog trees whose dataset entries are served.
    pub catalogs: Vec<CatalogConfig>,
    /// `[[staging]]`: slow tiers (tape behind an HSM): files read only once online, staged
    /// on first use while clients are answered 503 with `Retry-After`.
    pub staging: Vec<StagingConfig>,
    /// `[plugin.<name>]`: each plugin's own table, handed to it as JSON.
    pub plugin: BTreeMap<String, serde_json::Value>,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9000`; `0.0.0.0:9000` to serve a network.
    pub bind: String,
    /// Origins allowed by CORS. Default `["*"]` (open, like cloudify); `[]` turns CORS off.
    pub cors_allow_origins: Vec<String>,
    /// Log format: `text` (default) or `json`.
    pub log_format: String,
    /// Largest request body accepted, in bytes. Default 16 MiB.
    pub max_request_body: usize,
    /// Largest region a single read may produce, in bytes. Default 256 MiB.
    pub max_region_bytes: u64,
    /// Bytes read from datasets for answers not yet sent, at once; more reads wait. Bounds
    /// memory at any load. Default 128 MiB.
    pub max_inflight_bytes: u64,
    /// Seconds to let running requests finish after SIGTERM. Default 10.
    pub shutdown_grace_secs: u64,
    /// The URL clients reach the server at (`https://data.example.org/cloudify`), for the
    /// links plugins write. Default: from `Host` when it is allowed, else the listen address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Host names whose `Host` header links may use (`data.example.org`, `*.example.org`),
    /// besides `localhost` and loopback addresses.
    pub allowed_hosts: Vec<String>,
    /// Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-Host` and
    /// `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<String>,
    /// Connections open at once; further ones wait to be accepted. Default 4096.
    pub max_connections: usize,
    /// Requests handled at once; beyond, 503 with `Retry-After`. Default 1024.
    pub max_concurrent_requests: usize,
    /// Seconds a client has to send a request's headers. Default 10.
    pub header_timeout_secs: u64,
    /// Seconds a request may take until its response starts (not counting the body's
    /// streaming); beyond, 503. Default 120.
    pub request_timeout_secs: u64,
    /// Days of usage counters kept (requests and bytes per dataset and endpoint, `GET
    /// /usage`, written to the cache folder's `usage/`). Default 31; 0 turns them off.
    pub usage_days: usize,
    /// Whether each answer is logged once sent (target `cloudify::access`: request id,
    /// route, dataset, status, bytes, duration; JSON with `log_format = "json"`). Default off.
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:9000".to_owned(),
            cors_allow_origins: vec!["*".to_owned()],
            log_format: "text".to_owned(),
            max_request_body: 16 << 20,
            max_region_bytes: 256 << 20,
            max_inflight_bytes: 128 << 20,
            shutdown_grace_secs: 10,
            public_url: None,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_concurrent_requests: 1024,
            header_timeout_secs: 10,
            request_timeout_secs: 120,
            usage_days: 31,
            access_log: false,
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Folders searched for `libcloudify_plugin_*` files, besides the executable's own folder.
    pub dirs: Vec<PathBuf>,
    /// Plugin files loaded whatever their name.
    pub files: Vec<PathBuf>,
    /// When not empty, only these plugins (by name) load. Default: all found.
    pub enabled: Vec<String>,
    /// These plugins (by name) never load.
    pub disabled: Vec<String>,
    /// Also search the executable's folder (as trusted as the executable). Default `true`.
    pub search_exe_dir: bool,
    /// SHA-256 digests (hex) of plugin files by file name: a file that differs is refused
    /// before it is opened.
    pub sha256: BTreeMap<String, String>,
    /// Refuse plugin files without a digest in `sha256`. Default `false`.
    pub require_sha256: bool,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            files: Vec::new(),
            enabled: Vec::new(),
            disabled: Vec::new(),
            search_exe_dir: true,
            sha256: BTreeMap::new(),
            require_sha256: false,
        }
    }
}

/// `[demo]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve the built-in demo dataset. Default `true`.
    pub enabled: bool,
    /// Its dataset id. Default `demo`.
    pub id: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { enabled: true, id: "demo".to_owned() }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Folder of the reference cache. Default `$XDG_CACHE_HOME/cloudify`, else
    /// `$HOME/.cache/cloudify`, else the system's temporary folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Bytes of decoded chunks kept in memory, shared by all datasets. Default 256 MiB;
    /// 0 turns the cache off.
    pub chunk_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { dir: None, chunk_bytes: 256 << 20 }
    }
}

impl CacheConfig {
    /// The cache folder in effect.
    pub fn dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("cloudify")
    }
}

/// `[[datasets]]`: one dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The id in `/datasets/{id}`.
    pub id: String,
    /// The NetCDF file (classic or NetCDF4/HDF5), a Zarr v2/v3 store folder, a URL
    /// (`http(s)://`, `s3://`) of a Zarr store or a NetCDF classic file, or a glob of NetCDF
    /// files joined along
    /// `concat_dim` in path order (`/data/tas_day_*_{2000..2009}.nc` style series).
    pub path: PathBuf,
    /// The dimension a glob's files are joined along. Default: the first file's unlimited
    /// dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat_dim: Option<String>,
    /// Where a reference set's targets may point besides its own folder (local sets) or host
    /// or bucket (remote sets): absolute folders, URL prefixes, `https://*` for any public
    /// host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_targets: Vec<String>,
}

/// `[[folders]]`: every NetCDF file and Zarr store under `path` becomes a dataset named after
/// its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FolderConfig {
    /// The folder.
    pub path: PathBuf,
    /// Descend into sub-folders. Default `true`.
    pub recursive: bool,
    /// File name endings served. Default `["nc", "nc4", "netcdf", "h5", "hdf5"]`.
    pub extensions: Vec<String>,
    /// Follow the folder: files added are served, changed ones scanned again, deleted ones
    /// dropped, within seconds. Default `false`.
    pub watch: bool,
}

impl Default for FolderConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            recursive: true,
            extensions: ["nc", "nc4", "netcdf", "h5", "hdf5"].map(str::to_owned).to_vec(),
            watch: false,
        }
    }
}

/// `[[catalogs]]`: an intake catalog tree (v1 `sources:` or v2 `entries:` YAML), each dataset
/// entry served under its dotted path, user parameters expanded (`crates/open`'s `catalog`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// The root catalog file.
    pub path: PathBuf,
    /// The catalog format: `intake` (v1 and v2 YAML).
    #[serde(default)]
    pub format: CatalogFormat,
    /// Prepended to every dataset id (`eerie.` gives `eerie.icon-esm-er....`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Glob patterns on ids: only matching datasets are served (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Glob patterns on ids: datasets left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Where the catalog's reference sets may point besides their own folders, as for
    /// `[[datasets]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_targets: Vec<String>,
}

/// `[[staging]]`: a slow tier. A file under `prefix` is read only once `online` says it is
/// online; otherwise a read starts `stage` for it (once, in the background) and is answered
/// 503 with `Retry-After: retry_after_secs`. In both commands `{path}` is replaced by the
/// file's path (or URL); they run without a shell, a path always one argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingConfig {
    /// Files whose path (or URL) starts with this are on the tier (`/archive/`).
    pub prefix: String,
    /// Exits 0 when the file is online, e.g. `["sh", "-c", "! lfs hsm_state \"$1\" | grep -q
    /// released", "-", "{path}"]`.
    pub online: Vec<String>,
    /// Brings the file online and exits 0 once it is, e.g. `["dmget", "{path}"]`.
    pub stage: Vec<String>,
    /// Seconds clients are told to wait (`Retry-After`). Default 600.
    #[serde(default = "StagingConfig::default_retry_after")]
    pub retry_after_secs: u64,
    /// Seconds an online answer is trusted before the file is checked again (an HSM may
    /// release it). Default 300.
    #[serde(default = "StagingConfig::default_online")]
    pub online_secs: u64,
    /// Seconds a stage command may run before it is killed. Default 21600 (6 h).
    #[serde(default = "StagingConfig::default_timeout")]
    pub timeout_secs: u64,
    /// Stage commands running at once; further files wait their turn. Default 4.
    #[serde(default = "StagingConfig::default_max_at_once")]
    pub max_at_once: usize,
}

impl StagingConfig {
    fn default_retry_after() -> u64 {
        600
    }

    fn default_online() -> u64 {
        300
    }

    fn default_timeout() -> u64 {
        21_600
    }

    fn default_max_at_once() -> usize {
        4
    }

    /// The tier the byte stores follow.
    pub fn tier(&self) -> cloudify_store::Tier {
        cloudify_store::Tier {
            prefix: self.prefix.clone(),
            online: self.online.clone(),
            stage: self.stage.clone(),
            retry_after: std::time::Duration::from_secs(self.retry_after_secs),
            online_for: std::time::Duration::from_secs(self.online_secs),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            max_at_once: self.max_at_once,
        }
    }
}

/// Catalog formats read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogFormat {
    /// intake v1 and v2 YAML.
    #[default]
    Intake,
}

/// The variable that lets `CLOUDIFY_PLUGINS__DIRS`, `__FILES` and `__SHA256` take effect.
pub const ENV_PLUGIN_PATHS: &str = "CLOUDIFY_ALLOW_ENV_PLUGIN_PATHS";

/// Config keys (as environment variables name them) that choose which code is loaded.
const PLUGIN_PATH_KEYS: [&str; 4] = ["plugins__dirs", "plugins__files", "plugins__sha256", "plugins__require_sha256"];

impl Config {
    /// Reads `file` (if any), then applies `CLOUDIFY_*` environment overrides (plugin paths and
    /// pins only with `CLOUDIFY_ALLOW_ENV_PLUGIN_PATHS=1`).
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown key or a value of the wrong type, a
    /// `[[staging]]` tier without its prefix or commands.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(Box::new(figment::Error::from(format!("config file {} not found", file.display()))));
            }
            figment = figment.merge(Toml::file(file));
        }
        // CLOUDIFY_CONFIG and CLOUDIFY_LOG are command-line settings, not config keys. Where
        // code is loaded from is not the environment's to say, unless the operator opts in.
        let env_plugin_paths =
            std::env::var(ENV_PLUGIN_PATHS).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let env = Env::prefixed("CLOUDIFY_").ignore(&["config", "log", "allow_env_plugin_paths"]).filter(move |key| {
            env_plugin_paths || !PLUGIN_PATH_KEYS.iter().any(|k| key.as_str().eq_ignore_ascii_case(k))
        });
        figment = figment.merge(env.split("__"));
        let config: Self = figment.extract().map_err(Box::new)?;
        for tier in &config.staging {
            if tier.prefix.is_empty() || tier.online.is_empty() || tier.stage.is_empty() {
                let message = "[[staging]] needs a prefix, an online command and a stage command";
                return Err(Box::new(figment::Error::from(message.to_owned())));
            }
        }
        Ok(config)
    }

    /// The byte stores the datasets are read through, following the `[[staging]]` tiers.
    pub fn stores(&self) -> cloudify_store::Stores {
        cloudify_store::Stores::with_tiers(self.staging.iter().map(StagingConfig::tier).collect())
    }

    /// The table of plugin `name` as JSON text (`{}` when absent).
    pub fn plugin_table(&self, name: &str) -> String {
        self.plugin.get(name).map_or_else(|| "{}".to_owned(), serde_json::Value::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloudify.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"127.0.0.1:1\"\n[plugins]\nenabled = [\"zarr\"]\n[plugin.zarr]\ncodec = \"zstd\"\nlevel = 1\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("CLOUDIFY_SERVER__BIND", "127.0.0.1:2");
            let config = Config::load(Some(&file)).unwrap();
            assert_eq!(config.server.bind, "127.0.0.1:2");
            assert_eq!(config.plugins.enabled, ["zarr"]);
            assert_eq!(config.plugin_table("zarr"), r#"{"codec":"zstd","level":1}"#);
            assert_eq!(config.plugin_table("stac"), "{}");
            assert_eq!(config.server.cors_allow_origins, ["*"]);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloudify.toml");
        std::fs::write(&file, "[server]\nbnd = \"x\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("bnd"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn staging_tiers_take_defaults_and_need_their_commands() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloudify.toml");
        let tier = "[[staging]]\nprefix = \"/archive/\"\nonline = [\"is-online\", \"{path}\"]\n";
        std::fs::write(&file, format!("{tier}stage = [\"dmget\", \"{{path}}\"]\n")).unwrap();
        let config = Config::load(Some(&file)).unwrap();
        let tier = config.staging[0].tier();
        assert_eq!(tier.stage, ["dmget", "{path}"]);
        assert_eq!((tier.retry_after.as_secs(), tier.online_for.as_secs(), tier.max_at_once), (600, 300, 4));
        std::fs::write(&file, "[[staging]]\nprefix = \"/archive/\"\nonline = [\"x\"]\nstage = []\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("stage command"), "{err}");
    }

    #[test]
    fn catalogs_default_to_intake_and_refuse_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloudify.toml");
        std::fs::write(&file, "[[catalogs]]\npath = \"/cat/main.yaml\"\ninclude = [\"*.mon\"]\n").unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.catalogs[0].format, CatalogFormat::Intake);
        assert_eq!(config.catalogs[0].include, ["*.mon"]);
        std::fs::write(&file, "[[catalogs]]\npath = \"/c.yaml\"\nformat = \"stac\"\n").unwrap();
        assert!(Config::load(Some(&file)).unwrap_err().to_string().contains("stac"));
    }
}

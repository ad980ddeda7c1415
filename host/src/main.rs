//! `cloudify`: serve climate-model output as cloud-native datasets.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

mod datapoint_command;

use clap::{Parser, Subcommand};
use cloudify::{
    app::app,
    auth::{protect, Auth},
    config::Config,
    datasets::open_all,
    links::Links,
    loader::{self, candidate_files},
    metrics::Metrics,
    observe::Observers,
    registry::Registry,
    reload::Reloader,
    usage::Usage,
};
use cloudify_open::references::{scan_files, scan_references, write_json, write_parquet};
use cloudify_stac_static::build_static_catalog;
use cloudify_store::Stores;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "cloudify", version, about = "Serve climate-model output as cloud-native datasets")]
struct Cli {
    /// Config file (TOML); every key can also be set as CLOUDIFY_SECTION__KEY.
    #[arg(long, short, global = true, env = "CLOUDIFY_CONFIG")]
    config: Option<PathBuf>,
    /// Extra folder to search for libcloudify_plugin_* files (repeatable).
    #[arg(long, global = true)]
    plugin_dir: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve {
        /// Address to listen on (overrides server.bind), e.g. 127.0.0.1:9000 or 127.0.0.1:0.
        #[arg(long)]
        bind: Option<String>,
    },
    /// List the plugins found, with their version and routes, and why any file was refused.
    Plugins,
    /// Check the configuration and print it as the server would use it.
    CheckConfig,
    /// kerchunk reference sets.
    #[command(subcommand)]
    Refs(RefsCommand),
    /// CF aggregation files.
    #[command(subcommand)]
    Cfa(CfaCommand),
    /// STAC catalogs.
    #[command(subcommand)]
    Stac(StacCommand),
    /// DataPoint's client: search a STAC API, show its cloud products, write selections.
    #[command(subcommand)]
    Datapoint(datapoint_command::DatapointCommand),
    /// Icechunk repositories: `cloudify icechunk virtualize FILE... --repo DIR` (runs
    /// `cloudify-icechunk` beside this program, the one program linking icechunk).
    #[command(disable_help_flag = true)]
    Icechunk {
        /// What `cloudify-icechunk` is given.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
enum StacCommand {
    /// Write the stac plugin's catalog of the configured datasets as static files
    /// (`OUT/catalog.json`, `OUT/{collection}/collection.json`, `OUT/{collection}/{item}/{item}.json`),
    /// without starting a server.
    Build {
        /// Folder to write into.
        #[arg(long, short)]
        out: PathBuf,
        /// URL the server is reached at, which the assets point to (default:
        /// `[plugin.stac] public_url`).
        #[arg(long)]
        base_url: Option<String>,
    },
}

/// NetCDF files given on the command line, joined along a dimension when several.
#[derive(clap::Args)]
struct JoinedFiles {
    /// NetCDF3 or NetCDF4 files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Dimension to join several files along (default: their unlimited dimension).
    #[arg(long)]
    concat_dim: Option<String>,
}

#[derive(Subcommand)]
enum RefsCommand {
    /// Write the reference set of NetCDF files (joined along a dimension when several), as
    /// kerchunk's SingleHdf5ToZarr / NetCDF3ToZarr (+ MultiZarrToZarr) would.
    Scan {
        #[command(flatten)]
        input: JoinedFiles,
        /// Output: kerchunk JSON (`FILE.json`, version 1) or a parquet reference set
        /// (`FOLDER.parq`, fsspec's LazyReferenceMapper layout).
        #[arg(long, short)]
        output: PathBuf,
        /// Chunks smaller than this many bytes are inlined.
        #[arg(long, default_value_t = 500)]
        inline_threshold: u64,
    },
}

#[derive(Subcommand)]
enum CfaCommand {
    /// Write a CF-1.13 aggregation file over NetCDF files (joined along a dimension when
    /// several): data variables as aggregation variables naming the files, coordinates with
    /// their values, as cfapyx's `CFANetCDF(...).write` would.
    Create {
        #[command(flatten)]
        input: JoinedFiles,
        /// The aggregation file to write (NetCDF4).
        #[arg(long, short)]
        output: PathBuf,
        /// Name files under the output's folder by relative paths (resolved against the
        /// aggregation file, as CF says) instead of absolute ones.
        #[arg(long)]
        relative: bool,
    },
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_env("CLOUDIFY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Tunes glibc's malloc for a server that allocates chunk buffers of 0.1–64 MB, unless the
/// usual `MALLOC_*` variables say otherwise.
///
/// * Arenas capped at the number of cores: glibc gives every thread that contends an arena
///   of its own (up to 8 per core); buffers freed on other threads then leave each arena
///   holding memory. Measured on the /zarr benchmark: peak RSS 501 MB with the default,
///   329 MB with 2 arenas on 2 cores, at the same throughput.
/// * Buffers up to 32 MiB from the heap, not from a fresh `mmap` each (whose pages fault in
///   and are zeroed on every request): /kerchunk's 0.19 MB chunks went from 7.0k to 10.3k
///   requests/s, its 21 MB chunks from 0.85 to 1.86 GB/s (against a 4 MiB threshold).
///   Larger ones are mapped and unmapped: cache entries of tens of MB among buffers of the
///   same size freed every request fragment the heap, which then holds hundreds of MB beyond
///   what is in use (the /zarr benchmark with the default caches: peak RSS 1,065 MiB with a
///   64 MiB threshold, 853 MiB with 32 MiB, 829 MiB with 4 MiB).
/// * 32 MiB of free heap kept before trimming.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    let set = |variable: &str, parameter: libc::c_int, value: libc::c_int| {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only sets an allocator parameter; called before any other
            // thread exists.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    };
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX));
    set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20);
    set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 32 << 20);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// Runs `program` from this executable's folder with `args` (a helper program shipped with
/// the server) and passes its exit status on.
fn run_beside(program: &str, args: &[std::ffi::OsString]) -> ExitCode {
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join(program)));
    let Some(path) = beside.filter(|path| path.is_file()) else {
        eprintln!("cloudify: {program} is not installed beside this program (cargo build --release builds it)");
        return ExitCode::FAILURE;
    };
    match std::process::Command::new(&path).args(args).status() {
        Ok(status) => status.code().and_then(|code| u8::try_from(code).ok()).map_or(ExitCode::FAILURE, ExitCode::from),
        Err(err) => {
            eprintln!("cloudify: {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("cloudify: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.server.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cloudify: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Refs(RefsCommand::Scan { input: JoinedFiles { files, concat_dim }, output, inline_threshold }) => {
            let parquet = output.extension().is_some_and(|e| e == "parq" || e == "parquet");
            if !parquet && output.extension().is_some_and(|e| e != "json") {
                eprintln!("cloudify: write kerchunk JSON (-o FILE.json) or parquet (-o FOLDER.parq)");
                return ExitCode::from(2);
            }
            let written = runtime
                .block_on(scan_references(&files, concat_dim.as_deref(), inline_threshold, &config.limits))
                .and_then(|set| if parquet { write_parquet(&set, &output) } else { write_json(&set, &output) });
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("cloudify: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cfa(CfaCommand::Create { input: JoinedFiles { files, concat_dim }, output, relative }) => {
            match runtime.block_on(create_aggregation(&files, concat_dim.as_deref(), &output, relative, &config.limits))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("cloudify: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Icechunk { args } => run_beside("cloudify-icechunk", &args),
        Command::Datapoint(command) => datapoint_command::run(command, &config, &runtime),
        Command::Stac(StacCommand::Build { out, base_url }) => {
            runtime.block_on(stac_build(config, cli.plugin_dir, &out, base_url))
        }
        Command::CheckConfig => match toml::to_string_pretty(&config) {
            Ok(text) => {
                println!("# configuration OK\n{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("cloudify: configuration cannot be shown: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Plugins => {
            let registry = Arc::new(Registry::new(config.server.max_region_bytes, config.server.max_inflight_bytes));
            runtime.block_on(open_all(&config, Arc::new(Stores::new()), Arc::clone(&registry)));
            let files = candidate_files(&config, &cli.plugin_dir);
            let loaded = loader::load(&config, &files, &registry, runtime.handle());
            for plugin in &loaded.plugins {
                println!(
                    "{} {} ({}){}",
                    plugin.name,
                    plugin.version,
                    plugin.origin,
                    if plugin.description.is_empty() { String::new() } else { format!(": {}", plugin.description) }
                );
                for route in &plugin.routes {
                    let prefix = if route.scope == cloudify_sdk::Scope::Dataset { "/datasets/{id}" } else { "" };
                    println!("    {} {prefix}{}", route.method, route.path);
                }
            }
            for refused in loaded.refused.iter().chain(&loaded.skipped) {
                println!("refused {}: {}", refused.origin, refused.reason);
            }
            ExitCode::SUCCESS
        }
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                config.server.bind = bind;
            }
            runtime.block_on(serve(config, cli.config, cli.plugin_dir))
        }
    }
}

/// `cloudify cfa create`: the files scanned and joined as `refs scan` does, written as an
/// aggregation file naming them.
async fn create_aggregation(
    files: &[PathBuf],
    concat_dim: Option<&str>,
    output: &std::path::Path,
    relative: bool,
    limits: &cloudify_dataset::Limits,
) -> Result<(), String> {
    let scanned = scan_files(files, concat_dim, "an aggregation file", limits).await?;
    let output = std::path::absolute(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let folder = output.parent().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf()));
    let uri = |_: usize, file: &str| -> String {
        let under =
            folder.as_deref().filter(|_| relative).and_then(|f| std::path::Path::new(file).strip_prefix(f).ok());
        under.map_or_else(|| file.to_owned(), |path| path.to_string_lossy().into_owned())
    };
    let contents = cloudify_cfa::write::from_source(&scanned.source, uri, u64::MAX).await.map_err(|e| e.to_string())?;
    for (variable, reason) in &contents.left_out {
        eprintln!("cloudify: variable '{variable}' left out: {reason}");
    }
    cloudify_netcdf::write_netcdf4(&output, &contents.meta, &contents.arrays).map_err(|e| e.to_string())
}

async fn serve(config: Config, config_file: Option<PathBuf>, plugin_dirs: Vec<PathBuf>) -> ExitCode {
    // Registered first: until a handler is, SIGHUP ends the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let listener = match tokio::net::TcpListener::bind(&config.server.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(bind = config.server.bind, "cannot listen: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or_else(|_| config.server.bind.clone(), |a: SocketAddr| a.to_string());
    let links = match Links::new(&config.server, &addr) {
        Ok(links) => links,
        Err(err) => {
            tracing::error!("invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if !links.is_configured() && !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
        tracing::warn!("server.public_url and server.allowed_hosts are not set: links in catalogs name http://{addr}, not the host clients use");
    }
    let registry = Arc::new(Registry::new(config.server.max_region_bytes, config.server.max_inflight_bytes));
    match Auth::new(&config.auth) {
        Ok(auth) => protect(&registry, auth),
        Err(err) => {
            tracing::error!("invalid configuration: {err}");
            return ExitCode::from(2);
        }
    }
    let sweeping = Arc::clone(&registry);
    tokio::spawn(async move { sweeping.read_budget().sweep().await });
    let files = candidate_files(&config, &plugin_dirs);
    let loaded = loader::load(&config, &files, &registry, &tokio::runtime::Handle::current());
    let usage = (config.server.usage_days > 0)
        .then(|| Arc::new(Usage::new(config.server.usage_days, Some(config.cache.dir().join("usage")))));
    if let Some(usage) = &usage {
        tokio::spawn(Arc::clone(usage).flush_periodically());
    }
    let stores = Arc::new(config.stores());
    registry.set_stores(Arc::clone(&stores));
    let metrics = match Metrics::install(Arc::clone(&registry), Some(Arc::clone(&stores))) {
        Ok(metrics) => {
            let metrics = Arc::new(metrics);
            tokio::spawn(Arc::clone(&metrics).upkeep());
            Some(metrics)
        }
        Err(err) => {
            tracing::warn!("metrics not recorded: {err}");
            None
        }
    };
    let observers =
        Observers { usage: usage.clone(), metrics, access_log: config.server.access_log, plugins: Default::default() };
    let app = app(Arc::clone(&registry), loaded.plugins, &config.server, links, observers);
    // Datasets open in the background, each served once open; /ready says when all are.
    // Then SIGHUP and watched folders keep them in step.
    let opening = Arc::clone(&registry);
    let open_config = config.clone();
    // Before opening: a staging that ends while the datasets open is not missed.
    let stagings = stores.stagings_finished();
    tokio::spawn(async move {
        let datasets = open_all(&open_config, Arc::clone(&stores), opening).await;
        let reloader = Arc::new(Reloader::new(config_file, open_config, datasets, stores));
        tokio::spawn(Arc::clone(&reloader).on_stagings(stagings));
        match hangups {
            Ok(hangups) => drop(tokio::spawn(Arc::clone(&reloader).on_sighup(hangups))),
            Err(err) => tracing::warn!("SIGHUP cannot be caught ({err}): reloads need a restart"),
        }
        reloader.watch_folders().await;
    });
    tracing::info!("cloudify listening on http://{addr}");
    cloudify::serve::serve(listener, app.router, &config.server, shutdown_signal()).await;
    if let Some(usage) = usage {
        usage.flush();
    }
    tracing::info!("cloudify stopped");
    ExitCode::SUCCESS
}

/// `cloudify stac build`: the datasets and plugins as `serve` would load them, asked
/// in-process.
async fn stac_build(
    mut config: Config,
    plugin_dirs: Vec<PathBuf>,
    out: &std::path::Path,
    base_url: Option<String>,
) -> ExitCode {
    let table = config.plugin.entry("stac".to_owned()).or_insert_with(|| serde_json::json!({}));
    if let Some(base_url) = base_url {
        table["public_url"] = serde_json::Value::String(base_url);
    }
    if !table.get("public_url").is_some_and(serde_json::Value::is_string) {
        eprintln!("cloudify: give --base-url (or [plugin.stac] public_url): the URL the assets point to");
        return ExitCode::from(2);
    }
    let registry = Arc::new(Registry::new(config.server.max_region_bytes, config.server.max_inflight_bytes));
    open_all(&config, Arc::new(Stores::new()), Arc::clone(&registry)).await;
    let files = candidate_files(&config, &plugin_dirs);
    let loaded = loader::load(&config, &files, &registry, &tokio::runtime::Handle::current());
    let links = match Links::new(&config.server, "localhost") {
        Ok(links) => links,
        Err(err) => {
            eprintln!("cloudify: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let app = app(Arc::clone(&registry), loaded.plugins, &config.server, links, Observers::default());
    let router = app.router;
    let ask = |path: String| {
        let router = router.clone();
        async move { ask_router(&router, &path).await }
    };
    match build_static_catalog(ask, out).await {
        Ok(written) => {
            println!(
                "wrote {} ({} collection, {} items)",
                written.catalog.display(),
                written.collections,
                written.items
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cloudify: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The JSON document the router answers at `path` (as a server would answer it).
async fn ask_router(router: &axum::Router, path: &str) -> Result<serde_json::Value, String> {
    let request = axum::http::Request::get(path).body(axum::body::Body::empty()).map_err(|err| err.to_string())?;
    let response =
        tower::ServiceExt::oneshot(router.clone(), request).await.map_err(|err| format!("GET {path}: {err}"))?;
    let status = response.status();
    let body =
        axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|err| format!("GET {path}: {err}"))?;
    if status == axum::http::StatusCode::NOT_FOUND && path == "/stac" {
        return Err("the stac plugin is not loaded (check [plugins] enabled/disabled)".to_owned());
    }
    if !status.is_success() {
        return Err(format!("GET {path}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|err| format!("GET {path}: not JSON: {err}"))
}

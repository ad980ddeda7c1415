//! Opening the configured datasets at start-up: the demo file, `[[datasets]]`, `[[folders]]`
//! and the entries of `[[catalogs]]`, each opened by `cloudify-open` on a blocking thread. A
//! file that cannot be served is skipped with a warning; the others are served.

use std::{path::PathBuf, sync::Arc, time::Instant};

use cloudify_dataset::{demo_dataset, ChunkCache};
use cloudify_netcdf::{write_netcdf4, Origin};
use cloudify_open::{
    catalog::{catalog_entries, Catalog},
    folder_files, Entry, Opener,
};
use cloudify_store::Stores;

use crate::{config::Config, registry::Registry};

/// File name of the demo dataset in the cache folder; versioned so a changed demo is rewritten.
const DEMO_FILE: &str = "demo-v1.nc";

/// Writes the demo NetCDF4 file on first start; `None` when it cannot be written.
fn demo_file(config: &Config) -> Option<PathBuf> {
    let dir = config.cache.dir().join("demo");
    let path = dir.join(DEMO_FILE);
    if path.is_file() {
        return Some(path);
    }
    let demo = match demo_dataset(&config.demo.id) {
        Ok(demo) => demo,
        Err(err) => {
            tracing::error!("demo dataset unavailable: {err}");
            return None;
        }
    };
    let tmp = dir.join(format!("{DEMO_FILE}.tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let meta = cloudify_dataset::Source::metadata(&demo).map_err(|e| e.to_string())?;
            write_netcdf4(&tmp, &meta, demo.arrays()).map_err(|e| e.to_string())
        })
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            tracing::info!(file = %path.display(), "wrote the demo dataset");
            Some(path)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(dir = %dir.display(), "cannot write the demo file ({err}); serving it from memory");
            None
        }
    }
}

/// Opens every dataset the config names into `registry`, one after the other (each is
/// served as soon as it is open), then marks the registry opened.
pub async fn open_all(config: &Config, stores: Arc<Stores>, registry: &Registry) {
    let started = Instant::now();
    let opener = Arc::new(Opener::new(config.cache.dir().join("scans"), Arc::clone(&stores), config.limits.clone()));
    let mut entries: Vec<Entry> = Vec::new();
    if config.demo.enabled {
        let demo_config = config.clone();
        match tokio::task::spawn_blocking(move || demo_file(&demo_config)).await.ok().flatten() {
            Some(path) => entries.push(Entry::file(config.demo.id.clone(), path)),
            None => match demo_dataset(&config.demo.id) {
                Ok(demo) => registry.insert(config.demo.id.clone(), Arc::new(demo)),
                Err(err) => tracing::error!("demo dataset unavailable: {err}"),
            },
        }
    }
    entries.extend(config.datasets.iter().map(|d| Entry {
        id: d.id.clone(),
        path: d.path.clone(),
        concat_dim: d.concat_dim.clone(),
        allow_targets: d.allow_targets.clone(),
    }));
    for folder in &config.folders {
        let files = folder_files(&folder.path, folder.recursive, &folder.extensions);
        entries.extend(files.into_iter().map(|(id, path)| Entry::file(id, path)));
    }
    for catalog in &config.catalogs {
        let tree = Catalog {
            path: catalog.path.clone(),
            prefix: catalog.prefix.clone(),
            include: catalog.include.clone(),
            exclude: catalog.exclude.clone(),
            allow_targets: catalog.allow_targets.clone(),
        };
        let catalog_stores = Arc::clone(&stores);
        let walked = tokio::task::spawn_blocking(move || catalog_entries(&tree, &catalog_stores)).await;
        let (found, warnings) = walked.unwrap_or_else(|e| (Vec::new(), vec![format!("catalog task failed: {e}")]));
        for warning in warnings {
            tracing::warn!(catalog = %catalog.path.display(), "{warning}");
        }
        entries.extend(found);
    }

    let chunk_cache = (config.cache.chunk_bytes > 0).then(|| ChunkCache::new(config.cache.chunk_bytes));
    let (mut scanned, mut cached) = (0, 0);
    for entry in entries {
        let (id, path) = (entry.id.clone(), entry.path.clone());
        if registry.contains(&id) {
            tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; file skipped");
            continue;
        }
        let opener = Arc::clone(&opener);
        let opened = tokio::task::spawn_blocking(move || opener.open(&entry))
            .await
            .unwrap_or_else(|e| Err(format!("scan task failed: {e}")));
        match opened {
            Ok((sources, origin)) => {
                let result = match origin {
                    Origin::Cached => {
                        cached += 1;
                        "hit"
                    }
                    Origin::Scanned => {
                        scanned += 1;
                        "miss"
                    }
                };
                metrics::counter!("cloudify_reference_cache_requests_total", "result" => result).increment(1);
                for (id, source) in sources {
                    if registry.contains(&id) {
                        tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; group skipped");
                        continue;
                    }
                    let source = match &chunk_cache {
                        Some(chunks) => Arc::new(chunks.wrap(&id, source)),
                        None => source,
                    };
                    registry.insert(id, source);
                }
            }
            Err(reason) => tracing::warn!(dataset = id, file = %path.display(), "dataset skipped: {reason}"),
        }
    }
    tracing::info!(scanned, cached, elapsed_ms = started.elapsed().as_millis() as u64, "datasets opened");
    registry.mark_opened();
}

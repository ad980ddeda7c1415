//! End-to-end tests: the real `cloudify` binary, plugins loaded dynamically from shared
//! libraries. Build first: `cargo build --release --workspace` (tests/run.sh does).

mod util;

// The plugin contract across a real dlopen: routes, host services, panics, refusals.
mod plugins;
// The command line: `plugins`, `check-config`, config files and environment overrides.
mod cli;
// NetCDF files written by netCDF4-python, read through the data plane.
mod sources;
// CF time decoding against Python's cftime.
mod cftime;
// Datasets from the config: files, folders, the reference cache, broken files.
mod datasets;
// `--features static-all`: the same plugins compiled in behave the same.
mod static_mode;
// The zarr plugin from its shared library: formats, config, bad keys.
mod zarr;
// The kerchunk plugin: stored chunks, reference sets, source files, `refs scan`.
mod kerchunk;
// The plot plugin: the demo plots out of the box.
mod plot;
// The diagnostics plugin: results, and injections refused.
mod diagnostics;
// Hostile files and reference sets: refused with a reason, the rest served.
mod hostile;
// Misbehaving clients: slow headers, load, timeouts, unwanted bodies, forged link headers.
mod connections;

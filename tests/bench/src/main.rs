//! Data-plane benchmark; prints figures, asserts nothing. Run with `tests/bench/data_plane.sh`,
//! which writes the files with netCDF4-python first.
//!
//! `data-plane-bench BIG_FILE SMALL_FOLDER CLOUDIFY_BINARY`

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use cloudify_dataset::{Source, VirtualSource};
use cloudify_store::Stores;
use futures::StreamExt as _;

/// Time from spawning the server until `/ready` answers 200: every dataset open (the server
/// listens before its datasets are scanned).
fn startup(binary: &Path, config: &Path, cache: &Path) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("CLOUDIFY_CACHE__DIR", cache)
        .env("CLOUDIFY_PLUGINS__SEARCH_EXE_DIR", "false")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let address = lines.find_map(|line| line.split("listening on http://").nth(1).map(|rest| rest.trim().to_owned()));
    let address = address.expect("server listened");
    // The log goes on: read to its end, or the server's writes fail.
    std::thread::spawn(move || lines.for_each(drop));
    while !ready(&address) {
        assert!(started.elapsed() < Duration::from_secs(300), "not ready within 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// Whether `GET /ready` at `address` answers 200.
fn ready(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else { return false };
    let request = format!("GET /ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok() && stream.read_exact(&mut status).is_ok() && status.ends_with(b" 200")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, big, small, binary] = &args[..] else {
        eprintln!("usage: data-plane-bench BIG_FILE SMALL_FOLDER CLOUDIFY_BINARY");
        std::process::exit(2);
    };

    // 1. Scan: metadata + every chunk's address (libnetcdf + libhdf5).
    let started = Instant::now();
    let scan = cloudify_netcdf::scan(Path::new(big), "big", &cloudify_dataset::Limits::default()).expect("scan");
    let scan_time = started.elapsed();
    let source = Arc::new(
        VirtualSource::new(scan.dataset, Arc::new(Stores::new()), None, &cloudify_dataset::Limits::default())
            .expect("source"),
    );
    let meta = source.metadata().expect("metadata");
    let var = &meta.variables["tas"];
    let grid = var.chunk_grid();
    let (nt, ny, nx) = (grid[0], grid[1], grid[2]);
    let chunks: Vec<Vec<u64>> =
        (0..nt).flat_map(|t| (0..ny).flat_map(move |y| (0..nx).map(move |x| vec![t, y, x]))).collect();
    println!(
        "scan: {} chunks in {:.3} s = {:.1} µs per chunk",
        chunks.len(),
        scan_time.as_secs_f64(),
        scan_time.as_secs_f64() * 1e6 / chunks.len() as f64
    );

    // 2. Read + decode every chunk (byte range, zlib, shuffle), one at a time and 8 at once.
    let decoded = var.chunk_bytes() as f64 * chunks.len() as f64 / 1e6;
    for concurrency in [1, 8] {
        let started = Instant::now();
        let reads = futures::stream::iter(chunks.clone())
            .map(|index| {
                let source = Arc::clone(&source);
                async move { source.read_chunk("tas", &index).await.expect("chunk").len() }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "read+decode, {concurrency} at once: {} chunks, {decoded:.1} MB decoded in {secs:.3} s = {:.0} MB/s, {:.0} chunks/s",
            reads.len(),
            decoded / secs,
            reads.len() as f64 / secs
        );
    }

    // 3. Start-up over a folder of small files: cold (every file scanned), then warm (cache).
    let work = std::env::temp_dir().join(format!("cloudify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work folder");
    let config = work.join("cloudify.toml");
    std::fs::write(&config, format!("[demo]\nenabled = false\n[[folders]]\npath = \"{small}\"\n")).expect("config");
    let files = std::fs::read_dir(small).expect("small folder").count();
    let cache = work.join("cache");
    let cold = startup(Path::new(binary), &config, &cache);
    let warm = startup(Path::new(binary), &config, &cache);
    println!(
        "start-up with {files} files: cold cache {:.2} s, warm cache {:.2} s",
        cold.as_secs_f64(),
        warm.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}

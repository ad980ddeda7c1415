//! The server under clients that misbehave: slow headers, too many requests, requests that take
//! too long, bodies nobody asked for, and headers that try to choose the links it writes.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::util::Server;

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` as it is and reads the whole answer (the server closes the connection).
fn raw(server: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address(server)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A server that answers before reading everything may reset the connection under the
    // write; what was answered is still read below.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_headers_time_out_and_cannot_hold_every_connection() {
    let server =
        Server::start(&[("CLOUDIFY_SERVER__HEADER_TIMEOUT_SECS", "1"), ("CLOUDIFY_SERVER__MAX_CONNECTIONS", "16")]);
    let mut idle: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut stream = TcpStream::connect(address(&server)).unwrap();
            let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            stream
        })
        .collect();
    let started = Instant::now();
    assert_eq!(server.get("/health").status, 200, "served while 64 clients hold half-sent headers");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    // The first of them was closed by the server once its second had passed.
    idle[0].set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let read = idle[0].read_to_end(&mut rest);
    assert!(read.is_ok(), "the server closed the connection: {read:?}");
}

#[test]
fn requests_beyond_the_limit_are_shed_and_slow_ones_time_out() {
    let server = Server::start(&[
        ("CLOUDIFY_SERVER__MAX_CONCURRENT_REQUESTS", "2"),
        ("CLOUDIFY_SERVER__REQUEST_TIMEOUT_SECS", "3"),
    ]);
    let url = server.url.clone();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                ureq::get(format!("{url}/faulty/slow?ms=1500")).call().map(|r| r.status().as_u16())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let shed = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("{url}/health"))
        .call()
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    for request in slow {
        assert_eq!(request.join().unwrap().unwrap(), 200);
    }
    assert_eq!(server.get("/health").status, 200);
    let started = Instant::now();
    let late = server.get("/faulty/slow?ms=10000");
    assert_eq!(late.status, 503);
    assert!(late.json()["error"].as_str().unwrap().contains("3 s"));
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn bodies_on_get_are_not_read_and_other_bodies_are_bounded() {
    let server = Server::start(&[("CLOUDIFY_SERVER__MAX_REQUEST_BODY", "1048576")]);
    let body = vec![b'x'; 2 << 20];
    let get = [
        format!("GET /faulty/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes(),
        body.clone(),
    ]
    .concat();
    // The server answers without reading the body and closes: the kernel may then reset the
    // connection before the answer is read (data left unread), so an empty answer is retried.
    let answer = (0..5).map(|_| raw(&server, &get)).find(|answer| !answer.is_empty()).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(200)]);
    let post = [format!("POST /stac/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes(), body].concat();
    let answer = raw(&server, &post);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(200)]);
    assert!(answer.contains("\"error\""));
}

#[test]
fn links_follow_the_configuration_not_the_client() {
    let server = Server::start(&[]);
    let own = server.url.clone();
    let base = |host: &str, extra: &str| {
        let answer = raw(
            &server,
            format!("GET /faulty/echo HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        serde_json::from_str::<serde_json::Value>(body).unwrap()["base_url"].as_str().unwrap().to_owned()
    };
    assert_eq!(base("localhost:1234", ""), "http://localhost:1234");
    assert_eq!(base("evil.example.com", ""), own, "an unknown Host falls back to the listen address");
    assert_eq!(
        base("localhost", "X-Forwarded-Host: evil.example.com\r\nX-Forwarded-Proto: https\r\n"),
        "http://localhost",
        "no trusted proxy"
    );
    assert_eq!(
        base("localhost", "X-Cloudify-Base-Url: http://evil.example.com\r\n"),
        "http://localhost",
        "the host's header cannot be forged"
    );
    let refs = raw(
        &server,
        b"GET /datasets/demo/kerchunk.json HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(refs.starts_with("HTTP/1.1 200") && !refs.contains("evil"), "{}", &refs[..refs.len().min(300)]);
    // STAC items are cached once, whatever the base URL; each answer carries its own.
    for port in [1111, 2222, 1111] {
        let item = raw(
            &server,
            format!("GET /datasets/demo/stac HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(item.contains(&format!("\"http://localhost:{port}/datasets/demo/zarr\"")), "{item}");
        assert!(
            !item.contains("cloudify-base") && !item.contains(if port == 1111 { "2222" } else { "1111" }),
            "{item}"
        );
    }
    let intake = raw(&server, b"GET /intake.yaml HTTP/1.1\r\nHost: {{evil}}\r\nConnection: close\r\n\r\n");
    assert!(intake.starts_with("HTTP/1.1 200") && !intake.contains("evil"), "{intake}");

    let configured = Server::start(&[
        ("CLOUDIFY_SERVER__ALLOWED_HOSTS", "[data.example.org]"),
        ("CLOUDIFY_SERVER__TRUSTED_PROXIES", "[127.0.0.1]"),
    ]);
    let forwarded = raw(&configured, b"GET /faulty/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: data.example.org\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    assert!(forwarded.contains("\"base_url\":\"https://data.example.org\""), "{forwarded}");
    let public = Server::start(&[("CLOUDIFY_SERVER__PUBLIC_URL", "https://cloud.example.org/cloudify/")]);
    let stac = raw(&public, b"GET /datasets/demo/stac HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(stac.contains("https://cloud.example.org/cloudify/datasets/demo/zarr"), "{stac}");
}

#[test]
fn hostile_paths_are_decoded_once_and_answered_in_json() {
    let server = Server::start(&[]);
    let get = |path: &str| {
        raw(&server, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
    };
    for path in ["/datasets/%ff/info", "/datasets/%ff/zarr/.zmetadata", "/datasets/demo/zarr/%ff"] {
        let answer = get(path);
        assert!(answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(answer.contains("application/json") && answer.contains("\"error\""), "{path}: {answer}");
    }
    // `%252F` is `%2F` once decoded: a key of that name, not a path separator.
    assert!(get("/datasets/demo/zarr/tas/.zarray").starts_with("HTTP/1.1 200"));
    assert!(get("/datasets/demo/zarr/tas%252F.zarray").starts_with("HTTP/1.1 404"));
    assert!(get("/datasets/demo/files/..%252F..%252Fetc%252Fpasswd").starts_with("HTTP/1.1 404"));
    assert_eq!(server.get("/health").status, 200);
}

/// Resident memory of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn clients_that_do_not_read_cannot_make_memory_grow_past_the_read_budget() {
    const CHUNK: usize = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    // Eight uncompressed chunks of 8 MiB, each a different byte.
    let data: Vec<u8> = (0..8u8).flat_map(|i| std::iter::repeat_n(i + 1, CHUNK)).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let count = (CHUNK / 2) as u64;
    let zarray = serde_json::json!({"zarr_format": 2, "shape": [8 * count], "chunks": [count], "dtype": "<i2",
                                    "compressor": null, "fill_value": 0, "filters": null, "order": "C"});
    let mut refs = serde_json::json!({".zgroup": "{\"zarr_format\":2}", "v/.zarray": zarray.to_string(),
                                      "v/.zattrs": "{\"_ARRAY_DIMENSIONS\":[\"x\"]}"});
    for i in 0..8 {
        refs[format!("v/{i}")] = serde_json::json!(["data.bin", i * CHUNK, CHUNK]);
    }
    std::fs::write(dir.path().join("big.json"), serde_json::json!({"version": 1, "refs": refs}).to_string()).unwrap();
    let config = dir.path().join("cloudify.toml");
    std::fs::write(&config, format!("[[datasets]]\nid = \"big\"\npath = \"{}/big.json\"\n", dir.path().display()))
        .unwrap();
    let server = crate::util::Server::start_with(
        &crate::util::cloudify_bin(),
        &["--config", config.to_str().unwrap()],
        &[("CLOUDIFY_SERVER__MAX_INFLIGHT_BYTES", "16777216")],
    );
    assert_eq!(server.get("/datasets/big/kerchunk/v/0").body.len(), CHUNK);
    let before = resident_bytes(server.pid());

    // 48 clients ask for 8 MiB stored chunks and do not read the answers: without the budget
    // every answer would sit in memory (384 MiB); with it, 16 MiB are read at once.
    let clients: Vec<(usize, TcpStream)> = (0..48)
        .map(|n| {
            let mut stream = TcpStream::connect(address(&server)).unwrap();
            let request = format!(
                "GET /datasets/big/kerchunk/v/{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                n % 8
            );
            stream.write_all(request.as_bytes()).unwrap();
            (n % 8, stream)
        })
        .collect();
    let mut peak = before;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(resident_bytes(server.pid()));
    }
    // Every client then gets its whole answer.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|(chunk, mut stream)| {
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).unwrap();
                let body = answer.split_at(answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4).1.to_vec();
                (chunk, answer.starts_with(b"HTTP/1.1 200"), body)
            })
        })
        .collect();
    for reader in readers {
        let (chunk, ok, body) = reader.join().unwrap();
        assert!(ok, "chunk {chunk} answered");
        assert_eq!(body.len(), CHUNK, "chunk {chunk}");
        assert!(body.iter().all(|&b| b == chunk as u8 + 1), "chunk {chunk} has wrong bytes");
    }
    let grown = peak.saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {} MiB with 48 unread 8 MiB answers", grown >> 20);
    assert_eq!(server.get("/health").status, 200);
}

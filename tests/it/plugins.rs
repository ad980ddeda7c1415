use serde_json::json;

use crate::util::{f32s, i32s, Server};

#[test]
fn app_and_dataset_routes_of_dynamic_plugins_answer() {
    let server = Server::start(&[]);
    let hello = server.get("/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.json()["message"], "hello from a cloudify plugin");
    // demo (configured) + ramp (provided by the faulty plugin)
    assert_eq!(hello.json()["datasets"], 2);

    let per_dataset = server.get("/datasets/demo/hello").json();
    assert_eq!(per_dataset["dataset"], "demo");
    assert_eq!(per_dataset["variables"], json!(["time", "lat", "lon", "tas", "pr"]));

    let echo = server.get_with("/faulty/echo?a=1&b=two", ("x-test", "yes")).json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/faulty/echo");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["x_test"], "yes");

    let plugins = server.get("/plugins").json();
    for name in
        ["hello", "faulty", "datapoint", "diagnostics", "icechunk", "intake", "kerchunk", "plot", "stac", "web", "zarr"]
    {
        let file = plugins[name]["path"].as_str().unwrap();
        assert!(file.ends_with(".so") && !file.contains('/'), "a file name, not where it lies: {name}: {plugins}");
    }
    assert_eq!(plugins["faulty"]["version"], "9.9.9");
    assert_eq!(plugins["faulty"]["provides_datasets"], true);
    assert!(plugins.get("hello_next").is_none() && plugins.as_object().unwrap().len() == 11, "{plugins}");
}

#[test]
fn host_services_read_chunks_and_regions_for_plugins() {
    let server = Server::start(&[]);
    let chunk = server.get("/datasets/demo/faulty/chunk/tas/1.0.0");
    assert_eq!(chunk.status, 200, "{}", chunk.text());
    assert_eq!(chunk.body.len(), 6 * 45 * 90 * 4);
    // The same block read as a region through the host equals the chunk.
    let region = server.get("/datasets/demo/faulty/region/tas?start=6,0,0&shape=6,45,90");
    assert_eq!(region.status, 200, "{}", region.text());
    assert_eq!(f32s(&region.body), f32s(&chunk.body));
    let values = f32s(&chunk.body);
    assert!(values.iter().all(|v| (200.0..330.0).contains(v)), "air temperatures in K");

    // A dataset provided by a plugin, read back through the host.
    let datasets = server.get("/datasets").json();
    assert_eq!(datasets, json!(["demo", "ramp"]), "the plugin's `/datasets` route must not replace the host's");
    assert_eq!(i32s(&server.get("/datasets/ramp/faulty/chunk/x/2").body), [24, 27, -1, -1]);
    assert_eq!(i32s(&server.get("/datasets/ramp/faulty/region/x?start=3&shape=5").body), [9, 12, 15, 18, 21]);
    let info = server.get("/datasets/ramp/info").json();
    assert_eq!(info["variables"]["x"]["type"], "int32");
    assert_eq!(info["global_attributes"]["title"], "ramp from the faulty plugin");
}

#[test]
fn data_errors_reach_the_client_with_the_right_status() {
    let server = Server::start(&[("CLOUDIFY_SERVER__MAX_REGION_BYTES", "1000")]);
    let cases = [
        ("/datasets/demo/faulty/chunk/tas/6.0.0", 404, "outside its chunk grid"),
        ("/datasets/demo/faulty/chunk/nope/0", 404, "no variable 'nope'"),
        ("/datasets/demo/faulty/chunk/tas/0.0", 400, "has 3 dimensions"),
        ("/datasets/demo/faulty/chunk/tas/a.b.c", 400, "malformed chunk key"),
        ("/datasets/demo/faulty/region/tas?start=0,0,0&shape=36,45,90", 413, "exceeds the limit of 1000"),
        ("/datasets/demo/faulty/region/tas?start=0,0,80&shape=1,1,20", 400, "invalid selection"),
    ];
    for (path, status, message) in cases {
        let reply = server.get(path);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert_eq!(reply.content_type, "application/json", "{path}");
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message), "{path}: {error}");
    }
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn panics_become_500_json_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    for (path, message) in [
        ("/faulty/panic-sync", "plugin faulty panicked: boom before the future"),
        ("/faulty/panic-async", "plugin faulty panicked: boom inside the future"),
        ("/faulty/panic-sync", "plugin faulty panicked: boom before the future"),
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 500, "{path}");
        // The panic's text is for the operator's log, not for clients: they get the request
        // id, which the log line names too.
        let body = reply.json();
        assert_eq!(body["error"], "internal server error", "{path}");
        let id = body["request_id"].as_str().unwrap().to_owned();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(server.log().contains(message), "{path}: {}", server.log());
        let failure = server.log().lines().find(|l| l.contains("request failed") && l.contains(&id)).map(str::to_owned);
        assert!(failure.is_some_and(|line| line.contains("plugin faulty failed")), "{path}: {}", server.log());
        let next = server.get("/hello");
        assert_eq!(next.status, 200, "the next request after {path} still succeeds");
    }
    let blocking = server.get("/faulty/blocking").json();
    assert_eq!(blocking["sum"], 5050);
    assert_eq!(blocking["panic"], "blocking task panicked: boom on the blocking pool");
    assert_eq!(server.get("/datasets").status, 200);
}

#[test]
fn incompatible_files_are_refused_in_one_line_and_the_rest_load() {
    let server = Server::start(&[]);
    let log = server.log();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("plugin refused")).collect();
    let find = |file: &str| {
        *refusals.iter().find(|l| l.contains(file)).unwrap_or_else(|| panic!("no refusal for {file}:\n{log}"))
    };
    assert!(find("libcloudify_plugin_bogus").contains("not a cloudify plugin"));
    assert!(find("libcloudify_plugin_garbage").contains("cannot be opened"));
    let mismatch = find("libcloudify_plugin_hello_next");
    assert!(mismatch.contains("cloudify-sdk") && mismatch.contains("0.1.0"), "{mismatch}");
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    assert!(refusals.iter().all(|l| l.len() < 500), "each refusal is one short line");
    assert!(log.contains("route GET /datasets not mounted: conflicts"), "{log}");
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn openapi_lists_plugin_routes() {
    let server = Server::start(&[]);
    let doc = server.get("/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/hello",
        "/datasets/{id}/hello",
        "/datasets/{id}/faulty/chunk/{var}/{key}",
        "/intake.yaml",
        "/datasets/{id}/catalog.yaml",
        "/datasets",
        "/datasets/{id}/info",
    ] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert_eq!(paths["/hello"]["get"]["tags"], json!(["hello"]));
    assert_eq!(paths["/hello"]["get"]["summary"], "Greeting and dataset count");
    let params: Vec<&str> = paths["/datasets/{id}/faulty/chunk/{var}/{key}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "var", "key"]);
}

#[test]
fn head_answers_every_get_route_without_a_body() {
    let server = Server::start(&[]);
    for path in [
        "/datasets",
        "/datasets/demo/info",
        "/datasets/demo/",
        "/hello",
        "/datasets/demo/hello",
        "/intake.yaml",
        "/openapi.json",
    ] {
        let get = server.get(path);
        let head = server.head(path);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(head.content_type, get.content_type, "HEAD {path}");
        assert_eq!(head.content_length, Some(get.body.len() as u64), "HEAD {path}");
    }
}

#[test]
fn unknown_datasets_are_404_json_on_host_and_plugin_routes() {
    let server = Server::start(&[]);
    for path in [
        "/datasets/nope/info",
        "/datasets/nope/",
        "/datasets/nope/keys",
        "/datasets/nope/hello",
        "/datasets/nope/catalog.yaml",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 404, "{path}");
        let body = reply.json();
        assert_eq!(body["error"], "Dataset 'nope' not found", "{path}");
        assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{path}: {body}");
        assert_eq!(server.head(path).status, 404);
    }
    let unknown = server.get("/no/such/route");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no route for /no/such/route");
}

#[test]
fn streamed_bodies_and_plugin_config_cross_the_boundary() {
    let server = Server::start(&[("CLOUDIFY_PLUGIN__FAULTY__GREETING", "hi")]);
    let stream = server.get("/faulty/stream");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.text(), "one two three");
    // A stream that panics ends its body there; the server carries on.
    let cut = server.get("/faulty/stream-panic");
    assert_eq!((cut.status, cut.text().as_str()), (200, "one "));
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/faulty/echo").json()["config"], json!({"greeting": "hi"}));
    assert!(server.log().contains("faulty test plugin initialised"), "plugin logs reach the host's log");
}

#[test]
fn the_config_picks_which_plugins_load() {
    let server = Server::start(&[(
        "CLOUDIFY_PLUGINS__DISABLED",
        "[datapoint, diagnostics, hello, icechunk, intake, kerchunk, plot, stac, web, zarr]",
    )]);
    assert_eq!(server.get("/hello").status, 404);
    assert_eq!(server.get("/intake.yaml").status, 404);
    assert_eq!(server.get("/faulty/echo").status, 200);
    let plugins = server.get("/plugins").json();
    assert_eq!(plugins.as_object().unwrap().keys().collect::<Vec<_>>(), ["faulty"]);
    assert!(!server.get("/openapi.json").json()["paths"].as_object().unwrap().contains_key("/hello"));

    let only = Server::start(&[("CLOUDIFY_PLUGINS__ENABLED", "[hello]")]);
    assert_eq!(only.get("/plugins").json().as_object().unwrap().keys().collect::<Vec<_>>(), ["hello"]);
    assert_eq!(only.get("/datasets").json(), json!(["demo"]));
}

#[test]
fn built_in_routes_have_xpublish_shapes() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/datasets/demo/keys").json(), json!(["time", "lat", "lon", "tas", "pr"]));
    let info = server.get("/datasets/demo/info").json();
    assert_eq!(info["dimensions"], json!({"time": 36, "lat": 45, "lon": 90}));
    assert_eq!(info["variables"]["tas"]["type"], "float32");
    assert_eq!(info["variables"]["tas"]["dimensions"], json!(["time", "lat", "lon"]));
    assert_eq!(info["variables"]["tas"]["attributes"]["units"], "K");
    assert_eq!(info["global_attributes"]["Conventions"], "CF-1.8");
    let dict = server.get("/datasets/demo/dict").json();
    assert_eq!(dict["coords"].as_object().unwrap().keys().collect::<Vec<_>>(), ["time", "lat", "lon"]);
    assert_eq!(dict["data_vars"]["pr"]["shape"], json!([36, 45, 90]));
    assert_eq!(dict["dims"]["lon"], 90);
    let html = server.get("/datasets/demo/");
    assert!(html.content_type.starts_with("text/html"));
    assert!(html.text().contains("Near-Surface Air Temperature"));
    let versions = server.get("/versions").json();
    assert_eq!(versions["cloudify-sdk"], "0.3.1");
    assert_eq!(versions["plugin-hello"], "0.1.0");
    let health = server.get("/health").json();
    assert_eq!(health["status"], "ok");
}

#[test]
fn cors_is_open_by_default_and_configurable() {
    let open = Server::start(&[]);
    let reply = open.agent_get_origin("/datasets", "https://example.org");
    assert_eq!(reply.as_deref(), Some("*"));
    let closed = Server::start(&[("CLOUDIFY_SERVER__CORS_ALLOW_ORIGINS", "[\"https://ok.example\"]")]);
    assert_eq!(closed.agent_get_origin("/datasets", "https://ok.example").as_deref(), Some("https://ok.example"));
    assert_eq!(closed.agent_get_origin("/datasets", "https://other.example"), None);
}

#[test]
fn a_plugin_built_against_the_sdk_of_the_last_bump_loads() {
    let dir = crate::util::frozen_sdk_plugin_dir().to_str().unwrap().to_owned();
    let server = Server::start_with(&crate::util::cloudify_bin(), &["--plugin-dir", &dir], &[]);
    assert!(server.get("/plugins").json().as_object().unwrap().contains_key("hello"), "{}", server.log());
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn the_web_plugin_serves_the_dataset_page_and_the_host_its_summary_without_it() {
    let with_web = Server::start(&[]);
    let catalogue = with_web.get("/");
    assert!(catalogue.content_type.starts_with("text/html") && catalogue.text().contains(">demo</a>"));
    let page = with_web.get("/datasets/demo/");
    assert!(page.text().contains("id=\"code-zarr\""), "{}", page.text());
    // Without the slash: redirected to the page (the client follows it).
    assert!(with_web.get("/datasets/demo").text().contains("id=\"code-zarr\""));
    let spec = with_web.get("/openapi.json").json();
    assert_eq!(spec["paths"]["/datasets/{id}/"]["get"]["tags"], json!(["web"]));
    assert_eq!(spec["paths"]["/datasets/{id}"]["get"]["tags"], json!(["cloudify"]));

    let without = Server::start(&[("CLOUDIFY_PLUGINS__DISABLED", "[web]")]);
    assert!(without.get("/plugins").json().get("web").is_none());
    for path in ["/datasets/demo/", "/datasets/demo"] {
        let summary = without.get(path);
        assert_eq!(summary.status, 200, "{path}");
        assert!(summary.text().contains("&lt;xarray.Dataset&gt; demo"), "{path}");
    }
    assert_eq!(without.get("/").status, 404);
}

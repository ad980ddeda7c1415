//! The web plugin's pages against an in-memory host.

use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin, TestRequest};
use cloudify_web_plugin::plugin_module;
use futures::executor::block_on;
use serde_json::{json, Value};

fn tas(id: &str, source: &str) -> MockDataset {
    let time = MockVariable::new("time", &[("time", 3)], [0.0f64, 31.0, 59.0])
        .attr("units", "days since 2000-01-01")
        .attr("calendar", "360_day");
    let lat = MockVariable::new("lat", &[("lat", 2)], [-45.0f64, 45.0]).attr("units", "degrees_north");
    let tas = MockVariable::new("tas", &[("time", 3), ("lat", 2)], [1f32, 2., 3., 4., 5., 6.])
        .chunks(&[1, 2])
        .attr("units", "K")
        .attr("standard_name", "air_temperature")
        .attr("long_name", "Near-Surface <Air> Temperature");
    MockDataset::new(id)
        .attr("title", format!("Temperature of {source}"))
        .attr("source_id", source)
        .attr("frequency", "day")
        .variable(time)
        .variable(lat)
        .variable(tas)
}

fn host(plugins: &[&str]) -> MockHost {
    MockHost::new()
        .dataset(tas("b-tas", "ModelB"))
        .dataset(tas("a tas", "ModelA"))
        .dataset(tas("c-tas", "ModelA"))
        .plugins(plugins)
        .base_url("https://data.example/cloudify")
}

fn plugin(plugins: &[&str], config: Value) -> TestPlugin {
    host(plugins).config(config).load(plugin_module()).expect("web loads")
}

fn html(plugin: &TestPlugin, uri: &str) -> String {
    let answer = block_on(plugin.get(uri));
    assert_eq!((answer.status, answer.header("content-type")), (200, Some("text/html; charset=utf-8")), "{uri}");
    answer.text()
}

#[test]
fn the_catalogue_lists_datasets_in_order_a_page_at_a_time() {
    let web = plugin(&["web", "stac"], json!({"page_size": 2}));
    let first = html(&web, "/");
    let (a, b) = (first.find(">a tas<").expect("a tas listed"), first.find(">b-tas<").expect("b-tas listed"));
    assert!(a < b && !first.contains(">c-tas<"), "{first}");
    assert!(first.contains("href=\"https://data.example/cloudify/datasets/a%20tas/\""));
    assert!(first.contains("3 datasets, page 1 of 2") && first.contains("rel=\"next\""));
    let second = html(&web, "/?page=2");
    assert!(second.contains(">c-tas<") && !second.contains(">a tas<") && second.contains("rel=\"prev\""));
    // Past the end, or nonsense: the nearest page, not an error.
    assert!(html(&web, "/?page=99").contains(">c-tas<"));
    assert!(html(&web, "/?page=x").contains(">a tas<"));
}

#[test]
fn facets_count_the_values_datasets_have() {
    let page = html(&plugin(&["web", "stac"], json!({"facets": ["source_id", "absent"]})), "/");
    assert!(page.contains("<option value=\"ModelA\">ModelA (2)</option>"), "{page}");
    assert!(page.contains("<option value=\"ModelB\">ModelB (1)</option>"));
    assert!(!page.contains("data-facet=\"absent\""));
    // Without the STAC plugin there is no search to answer the form.
    let bare = html(&plugin(&["web"], json!({})), "/");
    assert!(!bare.contains("<form") && bare.contains("needs the STAC plugin"));
}

#[test]
fn a_dataset_page_shows_structure_ranges_and_the_code_that_opens_it() {
    let web = plugin(&["web", "zarr", "kerchunk", "plot", "stac", "intake"], json!({}));
    let page = html(&web, "/datasets/b-tas/");
    // Text from the data is escaped.
    assert!(page.contains("Near-Surface &lt;Air&gt; Temperature") && !page.contains("<Air>"));
    // Times as dates of the 360-day calendar (day 59 is 2000-02-30).
    assert!(page.contains("2000-01-01</time> to <time>2000-02-30</time>"), "{page}");
    assert!(page.contains("360_day calendar") && page.contains("-45 to 45 degrees_north"));
    assert!(page.contains("(time: 3, lat: 2)") && page.contains("<dt>Chunks</dt><dd>(1, 2)</dd>"));
    assert!(page.contains("ds = xr.open_dataset(\"https://data.example/cloudify/datasets/b-tas/zarr\""));
    assert!(page.contains("id=\"code-kerchunk-json\"") && page.contains("id=\"code-intake\""));
    assert!(page.contains("loading=\"lazy\" src=\"https://data.example/cloudify/datasets/b-tas/plot/tas?width=480"));
    assert!(!page.contains("code-icechunk"), "no icechunk plugin, no icechunk snippet");
    // Coordinates get no preview.
    assert!(!page.contains("/plot/lat"));
}

#[test]
fn snippets_and_previews_follow_the_loaded_plugins_and_public_url() {
    let web = plugin(&["web", "icechunk"], json!({"public_url": "https://proxy.example/c/", "previews": true}));
    let page = html(&web, "/datasets/a%20tas/");
    assert!(page.contains("https://proxy.example/c/datasets/a%20tas/icechunk/"), "{page}");
    assert!(!page.contains("code-zarr") && !page.contains("/plot/"));
    assert!(page.contains("curl https://proxy.example/c/datasets/a%20tas/info"));
    assert!(!page.contains("data.example"));
    assert_eq!(block_on(web.get("/datasets/nope/")).status, 404);
}

#[test]
fn assets_have_validators_and_gzip_for_clients_that_take_it() {
    let web = plugin(&["web"], json!({}));
    let plain = block_on(web.get("/web/swagger-ui-bundle.js"));
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    let gzip = block_on(web.send(TestRequest::get("/web/swagger-ui-bundle.js").header("accept-encoding", "br, gzip")));
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert!(gzip.body.len() * 3 < plain.body.len());
    let refused =
        block_on(web.send(TestRequest::get("/web/swagger-ui-bundle.js").header("accept-encoding", "gzip;q=0")));
    assert_eq!(refused.header("content-encoding"), None);
    let etag = plain.header("etag").expect("an ETag").to_owned();
    let again = block_on(web.send(TestRequest::get("/web/swagger-ui-bundle.js").header("if-none-match", &etag)));
    assert_eq!(again.status, 304);
    assert_eq!(block_on(web.get("/web/../Cargo.toml")).status, 404);
    assert_eq!(block_on(web.get("/web/missing.css")).status, 404);
}

#[test]
fn the_docs_page_loads_swagger_ui_over_the_openapi_document() {
    let page = html(&plugin(&["web"], json!({})), "/docs");
    assert!(page.contains("src=\"https://data.example/cloudify/web/swagger-ui-bundle.js\""));
    assert!(page.contains("data-spec=\"https://data.example/cloudify/openapi.json\""));
}

#[test]
fn a_bad_page_size_refuses_the_plugin() {
    assert!(host(&[]).config(json!({"page_size": 0})).load(plugin_module()).is_err());
    assert!(host(&[]).config(json!({"unknown": 1})).load(plugin_module()).is_err());
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin(&["web"], json!({})).assert_conformance());
}

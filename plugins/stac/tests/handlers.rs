//! The STAC plugin's handlers against an in-memory host: items from CF coordinates, the
//! collection, the API's search, refusals, and the plugin contract.

use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin};
use cloudify_stac_plugin::plugin_module;
use futures::executor::block_on;
use serde_json::Value;

/// A regional daily dataset: lat 40..60, lon -10..30 (on 0..360), January 2000.
fn europe() -> MockDataset {
    let time = MockVariable::new("time", &[("time", 3)], [0f64, 15., 30.])
        .attr("units", "days since 2000-01-01")
        .attr("calendar", "standard")
        .attr("standard_name", "time");
    let lat = MockVariable::new("lat", &[("lat", 3)], [40f64, 50., 60.]).attr("units", "degrees_north");
    let lon = MockVariable::new("lon", &[("lon", 3)], [350f64, 10., 30.]).attr("units", "degrees_east");
    let tas = MockVariable::new("tas", &[("time", 3), ("lat", 3), ("lon", 3)], vec![280f32; 27])
        .attr("units", "K")
        .attr("standard_name", "air_temperature");
    MockDataset::new("europe").attr("title", "Europe").variable(time).variable(lat).variable(lon).variable(tas)
}

/// A global dataset of 2010.
fn global() -> MockDataset {
    let time = MockVariable::new("time", &[("time", 1)], [0f64]).attr("units", "days since 2010-06-01");
    let lat = MockVariable::new("lat", &[("lat", 2)], [-89f64, 89.]).attr("units", "degrees_north");
    let lon =
        MockVariable::new("lon", &[("lon", 12)], (0..12).map(|i| f64::from(i) * 30.)).attr("units", "degrees_east");
    let pr = MockVariable::new("pr", &[("time", 1), ("lat", 2), ("lon", 12)], vec![1f32; 24]);
    MockDataset::new("global").variable(time).variable(lat).variable(lon).variable(pr)
}

fn plugin() -> TestPlugin {
    MockHost::new()
        .dataset(europe())
        .dataset(global())
        .plugins(&["zarr", "kerchunk"])
        .base_url("https://data.example")
        .load(plugin_module())
        .expect("stac loads")
}

fn ids(collection: &Value) -> Vec<String> {
    collection["features"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn an_item_carries_extent_time_and_assets_from_the_coordinates() {
    let item = block_on(plugin().get("/datasets/europe/stac")).json();
    assert_eq!(item["type"], "Feature");
    assert_eq!(item["id"], "europe");
    let bbox: Vec<f64> = item["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(bbox, [-10.0, 40.0, 30.0, 60.0]);
    assert_eq!(item["properties"]["start_datetime"], "2000-01-01T00:00:00Z");
    assert_eq!(item["properties"]["end_datetime"], "2000-01-31T00:00:00Z");
    assert_eq!(item["assets"]["zstore"]["href"], "https://data.example/datasets/europe/zarr");
    assert!(item["properties"]["cube:dimensions"]["time"].is_object());
}

#[test]
fn search_filters_by_bbox_datetime_and_ids() {
    let plugin = plugin();
    assert_eq!(ids(&block_on(plugin.get("/stac/search")).json()), ["europe", "global"]);
    assert_eq!(ids(&block_on(plugin.get("/stac/search?bbox=100,-80,120,-70")).json()), ["global"]);
    let in_2000 = block_on(plugin.get("/stac/search?datetime=2000-01-10T00:00:00Z/2000-02-01T00:00:00Z")).json();
    assert_eq!(ids(&in_2000), ["europe"]);
    assert_eq!(ids(&block_on(plugin.get("/stac/search?ids=global")).json()), ["global"]);
    let page = block_on(plugin.get("/stac/search?limit=1")).json();
    assert_eq!(ids(&page), ["europe"]);
    assert!(page["links"].as_array().unwrap().iter().any(|l| l["rel"] == "next"));
}

#[test]
fn malformed_search_parameters_are_400() {
    let plugin = plugin();
    for query in ["bbox=1,2,3", "datetime=../..", "limit=0", "token=elsewhere", "intersects={"] {
        let answer = block_on(plugin.get(&format!("/stac/search?{query}")));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
        assert!(answer.error_message().is_some());
    }
}

#[test]
fn the_collection_and_the_api_agree_on_the_items() {
    let plugin = plugin();
    let landing = block_on(plugin.get("/stac")).json();
    assert_eq!(landing["type"], "Catalog");
    let collections = block_on(plugin.get("/stac/collections")).json();
    let cid = collections["collections"][0]["id"].as_str().unwrap().to_owned();
    let items = block_on(plugin.get(&format!("/stac/collections/{cid}/items"))).json();
    assert_eq!(ids(&items), ["europe", "global"]);
    let one = block_on(plugin.get(&format!("/stac/collections/{cid}/items/global"))).json();
    assert_eq!(one["id"], "global");
    assert_eq!(block_on(plugin.get(&format!("/stac/collections/{cid}/items/nope"))).status, 404);
    assert_eq!(block_on(plugin.get("/stac/collections/nope")).status, 404);
    let all = block_on(plugin.get("/stac-collection-all.json")).json();
    assert_eq!(all["type"], "Collection");
}

#[test]
fn icechunk_datasets_point_at_their_repository_as_cloudify_describes_them() {
    let repository = global()
        .attr("_icechunk_href", "s3://climate/repos/era5")
        .attr("_icechunk_snapshot_id", "YAMWDCMCADAK2ZQMTTJG")
        .attr("_icechunk_virtual", true)
        .attr(
            "_icechunk_storage",
            serde_json::json!({"type": "aws-s3", "platform": "https://{bucket}.s3.{region}.amazonaws.com",
                               "bucket": "climate", "region": "eu-west-1"}),
        );
    let plugin = MockHost::new().dataset(repository).plugins(&["zarr"]).load(plugin_module()).unwrap();
    let item = block_on(plugin.get("/datasets/global/stac")).json();
    let asset = &item["assets"]["global@YAMWDCMCADAK2ZQMTTJG"];
    assert_eq!(asset["href"], "s3://climate/repos/era5");
    assert_eq!(asset["type"], "application/vnd.zarr+icechunk");
    assert_eq!(asset["roles"], serde_json::json!(["data", "references", "latest-version", "virtual"]));
    assert_eq!((asset["zarr:zarr_format"].as_u64(), asset["zarr:consolidated"].as_bool()), (Some(3), Some(false)));
    assert_eq!(asset["version"], "YAMWDCMCADAK2ZQMTTJG");
    assert_eq!(asset["storage:refs"], serde_json::json!(["aws-s3-climate"]));
    assert_eq!(item["storage:schemes"]["aws-s3-climate"]["region"], "eu-west-1");
    let extensions: Vec<&str> =
        item["stac_extensions"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    for name in ["storage/v2.0.0", "version/v1.2.0", "zarr/v1.1.0"] {
        assert!(extensions.iter().any(|e| e.contains(name)), "{name}: {extensions:?}");
    }
    assert!(item["assets"]["zstore"].is_object(), "the server's own Zarr asset stays");
    // Other datasets are not icechunk items.
    let plain = block_on(self::plugin().get("/datasets/global/stac")).json();
    assert!(plain.get("storage:schemes").is_none());
    assert!(!plain["stac_extensions"].to_string().contains("storage"));
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin().assert_conformance());
}

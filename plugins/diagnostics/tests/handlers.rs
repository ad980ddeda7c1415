//! The diagnostics plugin's handlers against an in-memory host: results equal the same
//! reductions computed here by brute force.

use cloudify_diagnostics_plugin::plugin_module;
use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin};
use futures::executor::block_on;
use serde_json::{json, Value};

const FILL: f32 = -999.0;

/// tas[time][lat][lon]: 24 mid-months of two noleap years on 3 × 4 cells; one masked value.
fn value(t: usize, y: usize, x: usize) -> f32 {
    if (t, y, x) == (5, 1, 2) {
        FILL
    } else {
        250.0 + (t * 7 % 13) as f32 + y as f32 * 10.0 + x as f32 * 0.5
    }
}

fn dataset() -> MockDataset {
    let times: Vec<f64> = (0..24).map(|m| f64::from(m) * 365.0 / 12.0 + 15.0).collect();
    let mut tas = Vec::new();
    for t in 0..24 {
        for y in 0..3 {
            for x in 0..4 {
                tas.push(value(t, y, x));
            }
        }
    }
    // The same values stored (lat, time, lon).
    let mixed: Vec<f32> = (0..3).flat_map(|y| (0..24).flat_map(move |t| (0..4).map(move |x| value(t, y, x)))).collect();
    MockDataset::new("climate")
        .variable(
            MockVariable::new("time", &[("time", 24)], times)
                .attr("units", "days since 2000-01-01")
                .attr("calendar", "noleap"),
        )
        .variable(MockVariable::new("lat", &[("lat", 3)], [-30f64, 0., 60.]).attr("units", "degrees_north"))
        .variable(MockVariable::new("lon", &[("lon", 4)], [0f64, 90., 180., 270.]).attr("units", "degrees_east"))
        .variable(
            MockVariable::new("tas", &[("time", 24), ("lat", 3), ("lon", 4)], tas)
                .chunks(&[5, 2, 3])
                .fill_value(FILL)
                .attr("units", "K"),
        )
        .variable(MockVariable::new("mixed", &[("lat", 3), ("time", 24), ("lon", 4)], mixed).fill_value(FILL))
        .variable(MockVariable::strings("label", &[("lat", 3)], ["a", "b", "c"]))
}

fn plugin() -> TestPlugin {
    MockHost::new().dataset(dataset()).load(plugin_module()).expect("diagnostics loads")
}

fn data(doc: &Value) -> Vec<f64> {
    fn flat(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
            Value::Null => out.push(f64::NAN),
            other => out.push(other.as_f64().unwrap()),
        }
    }
    let mut out = Vec::new();
    flat(&doc["data"], &mut out);
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Values of cell (y, x) at the times in `steps`, masked ones left out.
fn cell(steps: impl Iterator<Item = usize>, y: usize, x: usize) -> Vec<f64> {
    steps.map(|t| value(t, y, x)).filter(|&v| v != FILL).map(f64::from).collect()
}

#[test]
fn monthly_climatology_and_seasons() {
    let plugin = plugin();
    let doc = block_on(plugin.get("/datasets/climate/groupby/tas/time.month/mean")).json();
    assert_eq!(doc["dims"], json!(["month", "lat", "lon"]));
    assert_eq!(doc["coords"]["month"]["data"], json!((1..=12).collect::<Vec<i64>>()));
    assert_eq!(doc["coords"]["lat"]["data"], json!([-30.0, 0.0, 60.0]));
    assert!(doc["attrs"]["cell_methods"].as_str().unwrap().contains("time: mean"));
    let got = data(&doc);
    for m in 0..12 {
        for y in 0..3 {
            for x in 0..4 {
                let values = cell([m, m + 12].into_iter(), y, x);
                let want = values.iter().sum::<f64>() / values.len() as f64;
                assert!(close(got[(m * 3 + y) * 4 + x], want), "month {m} ({y},{x})");
            }
        }
    }
    let seasons = block_on(plugin.get("/datasets/climate/groupby/tas/time.season/max")).json();
    assert_eq!(seasons["coords"]["season"]["data"], json!(["DJF", "JJA", "MAM", "SON"]));
    let djf = cell([0, 1, 11, 12, 13, 23].into_iter(), 0, 0).into_iter().fold(f64::MIN, f64::max);
    assert_eq!(data(&seasons)[0], djf);
}

#[test]
fn resampling_std_and_counts() {
    let plugin = plugin();
    let doc = block_on(plugin.get("/datasets/climate/resample/tas/1YS/std")).json();
    assert_eq!(doc["coords"]["time"]["data"], json!(["2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"]));
    let got = data(&doc);
    for year in 0..2 {
        let values = cell(year * 12..year * 12 + 12, 1, 2);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        assert!(close(got[(year * 3 + 1) * 4 + 2], std), "year {year}");
    }
    let counts = data(&block_on(plugin.get("/datasets/climate/resample/tas/QS-DEC/count")).json());
    // Quarters from December 1999: January and February 2000 first.
    assert_eq!(counts[0], 2.0);
    let median = data(&block_on(plugin.get("/datasets/climate/groupby/tas/lat/median")).json());
    // Grouped by latitude: one group per latitude, every time and longitude kept.
    assert_eq!(median.len(), 24 * 3 * 4);
}

#[test]
fn field_means_are_cos_latitude_weighted() {
    let doc = block_on(plugin().get("/datasets/climate/fldmean/tas")).json();
    assert_eq!(doc["dims"], json!(["time"]));
    assert_eq!(doc["attrs"]["cell_methods"], "area: mean");
    let got = data(&doc);
    let lats = [-30f64, 0., 60.];
    for (t, &g) in got.iter().enumerate() {
        let (mut sum, mut total) = (0.0, 0.0);
        for (y, lat) in lats.iter().enumerate() {
            for x in 0..4 {
                let v = value(t, y, x);
                if v != FILL {
                    sum += lat.to_radians().cos() * f64::from(v);
                    total += lat.to_radians().cos();
                }
            }
        }
        assert!(close(g, sum / total), "step {t}");
    }
    // Latitude before time: the same series.
    let mixed = block_on(plugin().get("/datasets/climate/fldmean/mixed")).json();
    assert_eq!(mixed["dims"], json!(["time"]));
    assert!(data(&mixed).iter().zip(&got).all(|(a, b)| close(*a, *b)));
}

#[test]
fn mistakes_and_injections_are_400s_that_list_the_valid_names() {
    let plugin = plugin();
    let error = |uri: &str| {
        let response = block_on(plugin.get(uri));
        (response.status, response.error_message().unwrap_or_default())
    };
    let (status, message) = error("/datasets/climate/groupby/tas/time.month/mode");
    assert!(status == 400 && message.contains("median"), "{message}");
    let (status, message) = error("/datasets/climate/groupby/tas/depth/mean");
    assert!(status == 400 && message.contains("time.month"), "{message}");
    let (status, message) = error("/datasets/climate/groupby/tas/time.week/mean");
    assert!(status == 400 && message.contains("dayofyear"), "{message}");
    let (status, message) = error("/datasets/climate/groupby/tas/lat.month/mean");
    assert!(status == 400 && message.contains("time"), "{message}");
    let (status, message) = error("/datasets/climate/resample/tas/1W/mean");
    assert!(status == 400 && message.contains("MS"), "{message}");
    let (status, message) = error("/datasets/climate/groupby/nothing/time.month/mean");
    assert!(status == 400 && message.contains("tas"), "{message}");
    assert_eq!(error("/datasets/climate/groupby/label/lat/mean").0, 400);
    assert_eq!(error("/datasets/climate/groupby/tas/time.month).__class__/mean").0, 400);
    assert_eq!(error("/datasets/climate/groupby/tas/__import__('os')/mean").0, 400);
    assert_eq!(error("/datasets/nowhere/fldmean/tas").0, 404);
    let small =
        MockHost::new().dataset(dataset()).config(json!({"max_result_values": 10})).load(plugin_module()).unwrap();
    assert_eq!(block_on(small.get("/datasets/climate/groupby/tas/time.month/mean")).status, 413);
    // Over max_input_bytes of input at once: refused, the chunked dataset named instead; the
    // derived dataset still computes chunk by chunk.
    let config = json!({"max_input_bytes": 1000});
    let small = MockHost::new().dataset(dataset()).config(config).load(plugin_module()).unwrap();
    let (status, message) = {
        let response = block_on(small.get("/datasets/climate/groupby/tas/time.month/mean"));
        (response.status, response.error_message().unwrap_or_default())
    };
    assert!(
        status == 413 && message.contains("1152 bytes") && message.contains("climate~groupby~tas~time.month~mean/zarr"),
        "{message}"
    );
    let chunk =
        block_on(cloudify_sdk::HostExt::chunk(small.host(), "climate~groupby~tas~time.month~mean", "tas", &[0, 0, 0]));
    assert_eq!(chunk.unwrap().len(), 12 * 2 * 3 * 4);
}

fn floats(bytes: &[u8]) -> Vec<f64> {
    bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect()
}

#[test]
fn results_are_datasets_computed_a_chunk_at_a_time() {
    use cloudify_sdk::HostExt;
    let plugin = plugin();
    let host = plugin.host();
    let source_before = host.metadata_json("climate").unwrap();

    // The monthly climatology as a dataset: the result, its labels, the kept coordinates.
    let id = "climate~groupby~tas~time.month~mean";
    let meta = host.metadata(id).unwrap();
    assert_eq!(
        meta.dimensions.iter().map(|(d, n)| (d.as_str(), *n)).collect::<Vec<_>>(),
        [("month", 12), ("lat", 3), ("lon", 4)]
    );
    assert_eq!(meta.variables.keys().collect::<Vec<_>>(), ["tas", "month", "lat", "lon"]);
    let tas = &meta.variables["tas"];
    assert_eq!((tas.shape.clone(), tas.chunks.clone()), (vec![12, 3, 4], vec![12, 2, 3]));
    assert!(tas.attributes["cell_methods"].as_str().unwrap().contains("grouped by time.month"));
    assert_eq!(meta.attributes["source_dataset"], "climate");
    assert!(!host.datasets().iter().any(|d| d == id), "derived datasets are not listed unless configured");
    // Read chunk by chunk (edge chunks included), the same values as the whole result.
    let region = block_on(host.region(id, "tas", &[0, 0, 0], &[12, 3, 4])).unwrap();
    let whole = data(&block_on(plugin.get("/datasets/climate/groupby/tas/time.month/mean")).json());
    assert!(floats(&region).iter().zip(&whole).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs()));
    let months = block_on(host.chunk(id, "month", &[0])).unwrap();
    assert_eq!(
        months.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );

    // Seasons are text labels; resampled times are numbers in the source's calendar.
    let seasons = host.metadata("climate~groupby~tas~time.season~max").unwrap();
    assert_eq!(seasons.variables["season"].dtype, cloudify_sdk::meta::DataType::String);
    let labels = block_on(host.chunk("climate~groupby~tas~time.season~max", "season", &[0])).unwrap();
    let labels: Vec<&[u8]> = cloudify_sdk::strings::decode(&labels).unwrap();
    assert_eq!(labels, [&b"DJF"[..], b"JJA", b"MAM", b"SON"]);
    let yearly = host.metadata("climate~resample~tas~1YS~mean").unwrap();
    assert_eq!(yearly.variables["time"].attributes["calendar"], "noleap");
    assert_eq!(yearly.variables["time"].attributes["units"], "days since 2000-01-01 00:00:00");
    let starts = block_on(host.chunk("climate~resample~tas~1YS~mean", "time", &[0])).unwrap();
    assert_eq!(
        starts.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
        [0.0, 365.0]
    );

    // The global-mean series, and the global mean of the climatology (a derived dataset's).
    let series = block_on(host.region("climate~fldmean~tas", "tas", &[0], &[24])).unwrap();
    let want = data(&block_on(plugin.get("/datasets/climate/fldmean/tas")).json());
    assert!(floats(&series).iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs()));
    let nested = host.metadata("climate~groupby~tas~time.month~mean~fldmean~tas").unwrap();
    assert_eq!(nested.variables["tas"].dimensions, ["month"]);
    assert_eq!(block_on(host.region(&nested.id, "tas", &[0], &[12])).unwrap().len(), 12 * 4);

    // Unknown sources are not found; operations the grammar refuses are 400s.
    assert_eq!(host.metadata("nowhere~fldmean~tas").unwrap_err().kind().status(), 404);
    assert_eq!(host.metadata("climate~groupby~tas~time.week~mean").unwrap_err().kind().status(), 400);
    assert_eq!(host.metadata("climate~groupby~tas~time.month~eval(1)").unwrap_err().kind().status(), 404);
    // Nothing of the source changed.
    assert_eq!(host.metadata_json("climate").unwrap(), source_before);

    // Configured ones are listed.
    let config =
        json!({"derived": [{"dataset": "climate", "variable": "tas", "operation": "groupby/time.season/mean"}]});
    let listed = MockHost::new().dataset(dataset()).config(config).load(plugin_module()).unwrap();
    assert!(listed.host().datasets().contains(&"climate~groupby~tas~time.season~mean".to_owned()));
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin().assert_conformance());
}

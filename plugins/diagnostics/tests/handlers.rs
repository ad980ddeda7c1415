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
                .chunks(&[5, 3, 4])
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
    assert_eq!(doc["coords"]["month"]["data"], json!((1..=12).map(f64::from).collect::<Vec<_>>()));
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
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin().assert_conformance());
}

//! The plot plugin's handlers against an in-memory host, checked on the pictures' pixels.

use cloudify_plot_plugin::plugin_module;
use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin, TestRequest, TestResponse};
use futures::executor::block_on;
use serde_json::Value;

const FILL: f32 = -999.0;
const YELLOW: [u8; 3] = [0xfd, 0xe7, 0x25]; // viridis(1)
const PURPLE: [u8; 3] = [0x44, 0x01, 0x54]; // viridis(0)

fn lats() -> Vec<f64> {
    (0..10).map(|i| -81.0 + 18.0 * f64::from(i)).collect()
}

fn lons() -> Vec<f64> {
    (0..20).map(|i| 9.0 + 18.0 * f64::from(i)).collect()
}

/// Three monthly fields on a 0–360 grid: 1 where the longitude is 180–360 (the western
/// hemisphere), 0 elsewhere, and a masked square at 36–72°E, 18°S–18°N.
fn halves() -> MockDataset {
    let (lat, lon) = (lats(), lons());
    let mut values = Vec::new();
    for t in 0..3 {
        for (y, _) in lat.iter().enumerate() {
            for (x, &l) in lon.iter().enumerate() {
                let masked = (4..6).contains(&y) && (2..4).contains(&x);
                values.push(if masked {
                    FILL
                } else if l >= 180.0 {
                    1.0 + t as f32 * 0.0
                } else {
                    0.0
                });
            }
        }
    }
    // The last field again with longitude first.
    let last = &values[2 * 200..];
    let transposed: Vec<f32> = (0..20).flat_map(|x| (0..10).map(move |y| last[y * 20 + x])).collect();
    MockDataset::new("halves")
        .variable(
            MockVariable::new("time", &[("time", 3)], [15f64, 45., 74.])
                .attr("units", "days since 2000-01-01")
                .attr("calendar", "noleap")
                .attr("standard_name", "time"),
        )
        .variable(MockVariable::new("lat", &[("lat", 10)], lat).attr("units", "degrees_north"))
        .variable(MockVariable::new("lon", &[("lon", 20)], lon).attr("units", "degrees_east"))
        .variable(
            MockVariable::new("v", &[("time", 3), ("lat", 10), ("lon", 20)], values)
                .fill_value(FILL)
                .attr("long_name", "Halves")
                .attr("units", "1"),
        )
        .variable(MockVariable::new("lonlat", &[("lon", 20), ("lat", 10)], transposed).fill_value(FILL))
        .variable(MockVariable::new("series", &[("time", 3)], [1f32, 2., 3.]))
        .variable(MockVariable::strings("label", &[("time", 3)], ["a", "b", "c"]))
}

fn plugin() -> TestPlugin {
    MockHost::new().dataset(halves()).load(plugin_module()).expect("plot loads")
}

/// RGBA pixels, width, height and the number of frames of a PNG.
fn decode(response: &TestResponse) -> (Vec<u8>, usize, usize, u32) {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("image/png"));
    let decoder = png::Decoder::new(std::io::Cursor::new(response.body.clone()));
    let mut reader = decoder.read_info().unwrap();
    let frames = reader.info().animation_control.map_or(1, |a| a.num_frames);
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    buf.truncate(info.buffer_size());
    (buf, info.width as usize, info.height as usize, frames)
}

fn rgb(pixels: &[u8], width: usize, x: usize, y: usize) -> ([u8; 3], u8) {
    let at = (y * width + x) * 4;
    ([pixels[at], pixels[at + 1], pixels[at + 2]], pixels[at + 3])
}

#[test]
fn a_map_is_drawn_west_to_east_with_transparent_fill_and_a_colour_bar() {
    let response = block_on(plugin().get("/datasets/halves/plot/v/map/viridis"));
    std::fs::write("/tmp/plot-test.png", &response.body).ok();
    let (pixels, width, height, frames) = decode(&response);
    assert_eq!((width, height, frames), (800, 450, 1));
    // The plot area: where the field's two colours are.
    let field = |x: usize, y: usize| matches!(rgb(&pixels, width, x, y).0, YELLOW | PURPLE);
    let rows: Vec<usize> = (0..height).filter(|&y| (0..width * 3 / 4).any(|x| field(x, y))).collect();
    let (top, bottom) = (rows[0], *rows.last().unwrap());
    let row = top + (bottom - top) / 4; // about 45°N
                                        // The field's run along the row, through the coastlines' pixels; the colour bar is apart.
    let left = (0..width).find(|&x| field(x, row)).unwrap();
    let mut right = left;
    let coast = |x: usize| rgb(&pixels, width, x, row).0 == [40, 40, 40];
    for x in left..width {
        if field(x, row) || coast(x) {
            right = x;
        } else if x > right + 5 {
            break;
        }
    }
    let yellow: Vec<usize> = (left..=right).filter(|&x| rgb(&pixels, width, x, row).0 == YELLOW).collect();
    let purple: Vec<usize> = (left..=right).filter(|&x| rgb(&pixels, width, x, row).0 == PURPLE).collect();
    // 0–360 drawn as −180–180: the western hemisphere (value 1, yellow) on the left.
    assert!(yellow.iter().max() < purple.iter().min(), "{yellow:?} {purple:?}");
    assert_eq!((yellow[0], *purple.last().unwrap()), (left, right));
    let plot_width = (right - left + 1) as f64;
    let boundary = *purple.first().unwrap() as f64;
    assert!(((boundary - left as f64) / plot_width - 0.5).abs() < 0.01, "{left} {boundary} {right}");

    // The masked square (36–72°E) at the equator is transparent, and only there.
    let equator = (top + bottom) / 2;
    let clear: Vec<usize> = (left..=right).filter(|&x| rgb(&pixels, width, x, equator).1 == 0).collect();
    let from = left as f64 + (36.0 + 180.0) / 360.0 * plot_width;
    let to = left as f64 + (72.0 + 180.0) / 360.0 * plot_width;
    assert!(clear.len() as f64 > (to - from) * 0.8, "{} transparent pixels", clear.len());
    assert!(clear.iter().all(|&x| x as f64 >= from - 2.0 && x as f64 <= to + 2.0), "{clear:?} not in {from}..{to}");
    // Outside the plot area the picture is opaque.
    assert_eq!(rgb(&pixels, width, 2, 2).1, 255);

    // The colour bar right of the plot: cmap(1) at its top, cmap(0) at its bottom.
    let bar = |colour: [u8; 3]| {
        (right + 20..width)
            .flat_map(|x| (0..height).map(move |y| (x, y)))
            .find(|&(x, y)| rgb(&pixels, width, x, y).0 == colour)
    };
    let (high, low) = (bar(YELLOW).expect("cmap(1) in the bar"), bar(PURPLE).expect("cmap(0) in the bar"));
    assert!(high.1 < low.1, "{high:?} {low:?}");
}

#[test]
fn the_data_drawn_as_json_and_csv() {
    let plugin = plugin();
    let doc = block_on(plugin.get("/datasets/halves/plot/v/map/viridis?format=json")).json();
    assert_eq!((doc["vmin"].as_f64(), doc["vmax"].as_f64()), (Some(0.0), Some(1.0)));
    assert_eq!(doc["geometry"]["type"], "regular");
    let frame = &doc["frames"][0];
    // Without a selection: the last time step.
    assert_eq!(frame["label"], "2000-03-16T00:00:00Z");
    let values = frame["values"].as_array().unwrap();
    assert_eq!(values.len(), 200);
    assert!(values[4 * 20 + 2].is_null());
    assert_eq!(values[0], 0.0);
    assert_eq!(values[19], 1.0);
    // Labelled selection: a month, a latitude band, and the cloudify path form.
    let doc = block_on(plugin.get("/datasets/halves/plot/v/map/viridis?format=json&time=2000-01&lat=-10:40")).json();
    assert_eq!(doc["frames"][0]["label"], "2000-01-16T00:00:00Z");
    assert_eq!(doc["geometry"]["lat"], serde_json::json!([-9.0, 9.0, 27.0]));
    let doc = block_on(plugin.get("/datasets/halves/plot/v/map/viridis/time/0_1/lat/0_30?format=json")).json();
    assert_eq!(
        (doc["frames"].as_array().unwrap().len(), doc["geometry"]["lat"].clone()),
        (1, serde_json::json!([9.0, 27.0]))
    );
    // A variable stored longitude first is drawn the same.
    let last = block_on(plugin.get("/datasets/halves/plot/v/map/viridis?format=json")).json();
    let swapped = block_on(plugin.get("/datasets/halves/plot/lonlat/map/viridis?format=json")).json();
    assert_eq!(swapped["frames"][0]["values"], last["frames"][0]["values"]);
    assert_eq!(swapped["geometry"], last["geometry"]);
    let csv = block_on(plugin.get("/datasets/halves/plot/v/map/viridis?format=csv&lat=81")).text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "frame,lat,lon,v");
    assert_eq!(lines.len(), 21);
    assert!(lines[1].ends_with(",81,9,0"), "{}", lines[1]);
}

#[test]
fn several_time_steps_animate_or_reduce() {
    let plugin = plugin();
    let (_, _, _, frames) = decode(&block_on(plugin.get("/datasets/halves/plot/v/map/viridis?isel.time=0:3")));
    assert_eq!(frames, 3);
    let (_, _, _, frames) = decode(&block_on(plugin.get("/datasets/halves/plot/v/map/viridis/time/-3_-1")));
    assert_eq!(frames, 2);
    let (_, _, _, frames) =
        decode(&block_on(plugin.get("/datasets/halves/plot/v/map/viridis?isel.time=0:3&reduce=mean")));
    assert_eq!(frames, 1);
}

#[test]
fn lines_are_area_means_and_histograms_count() {
    let plugin = plugin();
    let doc = block_on(plugin.get("/datasets/halves/plot/v/line?format=json")).json();
    assert_eq!(doc["axis"]["name"], "time");
    let values: Vec<f64> = doc["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // cos(latitude)-weighted share of the western half among unmasked cells.
    let (mut sum, mut total) = (0.0, 0.0);
    for (y, lat) in lats().iter().enumerate() {
        for (x, lon) in lons().iter().enumerate() {
            if (4..6).contains(&y) && (2..4).contains(&x) {
                continue;
            }
            let w = lat.to_radians().cos();
            total += w;
            sum += w * if *lon >= 180.0 { 1.0 } else { 0.0 };
        }
    }
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| (v - sum / total).abs() < 1e-9), "{values:?}");
    // At a point: the value there.
    let doc = block_on(plugin.get("/datasets/halves/plot/v/line?format=json&lat=45&lon=-100")).json();
    assert_eq!(doc["values"], serde_json::json!([1.0, 1.0, 1.0]));
    let png = block_on(plugin.get("/datasets/halves/plot/v/line"));
    assert_eq!(decode(&png).1, 800);
    let larger_text = block_on(plugin.get("/datasets/halves/plot/v/line?dpi=200"));
    assert_eq!(decode(&larger_text).1, 800);
    assert_ne!(larger_text.body, png.body);
    let doc = block_on(plugin.get("/datasets/halves/plot/v/hist?format=json")).json();
    let counts: u64 = doc["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(counts, 196);
    let svg = block_on(plugin.get("/datasets/halves/plot/v/map/RdBu_r?format=svg"));
    assert!(svg.text().starts_with("<svg") && svg.text().contains("data:image/png;base64,"), "{}", &svg.text()[..100]);
}

#[test]
fn mistakes_are_json_errors_that_name_them() {
    let plugin = plugin();
    let error = |uri: &str| {
        let response = block_on(plugin.get(uri));
        (response.status, response.error_message().unwrap_or_default())
    };
    assert_eq!(error("/datasets/halves/plot/nothing").0, 404);
    let (status, message) = error("/datasets/halves/plot/v/pie");
    assert!(status == 400 && message.contains("map") && message.contains("hist"), "{message}");
    let (status, message) = error("/datasets/halves/plot/v/map/jet");
    assert!(status == 400 && message.contains("viridis"), "{message}");
    let (status, message) = error("/datasets/halves/plot/v/map/viridis/time/a_b");
    assert!(status == 400 && message.contains("time/a_b"), "{message}");
    let (status, message) = error("/datasets/halves/plot/v/map/viridis?lat=100:120");
    assert!(status == 400 && message.contains("lat"), "{message}");
    let (status, message) = error("/datasets/halves/plot/v/map/viridis?dpi=1000");
    assert!(status == 400 && message.contains("dpi"), "{message}");
    let (status, message) = error("/datasets/halves/plot/v/map/viridis?width=50000");
    assert!(status == 400 && message.contains("width"), "{message}");
    let (status, message) = error("/datasets/halves/plot/series/map");
    assert!(status == 400 && message.contains("line"), "{message}");
    assert_eq!(error("/datasets/halves/plot/label/hist").0, 400);
    let (status, message) = error("/datasets/halves/plot/v/map/viridis?depth=3");
    assert!(status == 400 && message.contains("depth"), "{message}");
    let small = MockHost::new().dataset(halves()).max_region_bytes(100).load(plugin_module()).unwrap();
    assert_eq!(block_on(small.get("/datasets/halves/plot/v/map")).status, 413);
}

#[test]
fn cell_bounds_of_another_dimension_are_ignored_not_trusted() {
    // Bounds declared over 2 "other" rows for 4 cells: the cells are drawn as points.
    let cells = MockDataset::new("cells")
        .variable(
            MockVariable::new("clat", &[("ncells", 4)], [0f64, 10., 20., 30.])
                .attr("standard_name", "latitude")
                .attr("bounds", "clat_bnds"),
        )
        .variable(
            MockVariable::new("clon", &[("ncells", 4)], [0f64, 10., 20., 30.])
                .attr("standard_name", "longitude")
                .attr("bounds", "clon_bnds"),
        )
        .variable(MockVariable::new("clat_bnds", &[("other", 2), ("nv", 3)], [0f64; 6]))
        .variable(MockVariable::new("clon_bnds", &[("other", 2), ("nv", 3)], [0f64; 6]))
        .variable(MockVariable::new("ts", &[("ncells", 4)], [1f32, 2., 3., 4.]).attr("coordinates", "clat clon"));
    let plugin = MockHost::new().dataset(cells).load(plugin_module()).unwrap();
    let (pixels, width, height, _) = decode(&block_on(plugin.get("/datasets/cells/plot/ts")));
    assert!(pixels.len() == width * height * 4);
    let doc = block_on(plugin.get("/datasets/cells/plot/ts?format=json")).json();
    assert_eq!(doc["frames"][0]["values"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
}

#[test]
fn answers_are_cached_with_validators() {
    let plugin = plugin();
    let first = block_on(plugin.get("/datasets/halves/plot/v/map/viridis"));
    let etag = first.header("etag").unwrap().to_owned();
    assert!(first.header("cache-control").is_some());
    let again =
        block_on(plugin.send(TestRequest::get("/datasets/halves/plot/v/map/viridis").header("if-none-match", &etag)));
    assert_eq!(again.status, 304);
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin().assert_conformance());
}

#[test]
fn answers_name_their_type() {
    let response = block_on(plugin().get("/datasets/halves/plot/v/map/viridis?format=json"));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let _: Value = response.json();
}

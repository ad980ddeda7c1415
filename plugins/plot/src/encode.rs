//! Answers' bytes: PNG (APNG for several frames), and the data drawn as JSON or CSV.

use base64::Engine as _;
use cloudify_sdk::Error;
use serde_json::{json, Value};

use crate::{
    data::{Geometry, Plotted},
    render::{bins, Picture, Scale},
    request::Kind,
};

fn failed(err: impl std::fmt::Display) -> Error {
    Error::internal(format!("PNG encoding failed: {err}"))
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `pictures` as one PNG, or an animated PNG (APNG, looping, `delay_ms` per frame) when
/// there are several; all of one size.
pub(crate) fn png(pictures: &[Picture], delay_ms: u16) -> Result<Vec<u8>, Error> {
    let first = pictures.first().ok_or_else(|| Error::internal("no picture to encode"))?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, first.width, first.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        if pictures.len() > 1 {
            encoder.set_animated(pictures.len() as u32, 0).map_err(failed)?;
            encoder.set_frame_delay(delay_ms, 1000).map_err(failed)?;
        }
        let mut writer = encoder.write_header().map_err(failed)?;
        for picture in pictures {
            writer.write_image_data(&picture.rgba).map_err(failed)?;
        }
        writer.finish().map_err(failed)?;
    }
    Ok(out)
}

fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

fn geometry_json(geometry: &Geometry) -> Value {
    let numbers = |v: &[f64]| v.iter().map(|&x| number(x)).collect::<Vec<_>>();
    match geometry {
        Geometry::Regular { lat, lon } => json!({"type": "regular", "lat": numbers(lat), "lon": numbers(lon)}),
        Geometry::Curvilinear { lat, lon, ny, nx } => {
            json!({"type": "curvilinear", "shape": [ny, nx], "lat": numbers(lat), "lon": numbers(lon)})
        }
        Geometry::Cells { lat, lon, .. } => json!({"type": "cells", "lat": numbers(lat), "lon": numbers(lon)}),
    }
}

/// The data drawn, as JSON: for fields the positions and each frame's values (row-major,
/// `null` where masked), for a line its axis and values, for a histogram its bins.
pub(crate) fn json(plotted: &Plotted, kind: Kind, scale: &Scale) -> Vec<u8> {
    let mut doc = json!({
        "variable": plotted.var,
        "long_name": plotted.title,
        "units": plotted.units,
        "fixed": plotted.fixed,
        "vmin": scale.vmin,
        "vmax": scale.vmax,
    });
    match kind {
        Kind::Line => {
            let (name, labels, coords) = plotted.axis.clone().unwrap_or_default();
            doc["axis"] = json!({"name": name, "labels": labels, "values": coords.iter().map(|&v| number(v)).collect::<Vec<_>>()});
            doc["values"] = plotted.frames[0].values.iter().map(|&v| number(v)).collect();
        }
        Kind::Hist => {
            let values: Vec<f64> = plotted.frames.iter().flat_map(|f| f.values.iter().copied()).collect();
            let (edges, counts) = bins(&values, scale, 30);
            doc["edges"] = json!(edges);
            doc["counts"] = json!(counts);
        }
        _ => {
            doc["geometry"] = plotted.geometry.as_ref().map_or(Value::Null, geometry_json);
            doc["frames"] = plotted
                .frames
                .iter()
                .map(|f| json!({"label": f.label, "values": f.values.iter().map(|&v| number(v)).collect::<Vec<_>>()}))
                .collect();
        }
    }
    doc.to_string().into_bytes()
}

fn cell(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

/// The data drawn, as CSV: `label,lat,lon,value` per cell and frame; `label,value` along a
/// line; `from,to,count` per histogram bin. Masked values are empty.
pub(crate) fn csv(plotted: &Plotted, kind: Kind, scale: &Scale) -> Vec<u8> {
    let mut out = String::new();
    match kind {
        Kind::Line => {
            let (name, labels, _) = plotted.axis.clone().unwrap_or_default();
            out.push_str(&format!("{name},{}\n", plotted.var));
            for (label, &v) in labels.iter().zip(&plotted.frames[0].values) {
                out.push_str(&format!("{label},{}\n", cell(v)));
            }
        }
        Kind::Hist => {
            let values: Vec<f64> = plotted.frames.iter().flat_map(|f| f.values.iter().copied()).collect();
            let (edges, counts) = bins(&values, scale, 30);
            out.push_str("from,to,count\n");
            for (i, c) in counts.iter().enumerate() {
                out.push_str(&format!("{},{},{c}\n", edges[i], edges[i + 1]));
            }
        }
        _ => {
            out.push_str(&format!("frame,lat,lon,{}\n", plotted.var));
            let centres = plotted.geometry.as_ref().map(Geometry::centres).unwrap_or_default();
            for frame in &plotted.frames {
                for ((lon, lat), &v) in centres.iter().zip(&frame.values) {
                    out.push_str(&format!("{},{lat},{lon},{}\n", frame.label, cell(v)));
                }
            }
        }
    }
    out.into_bytes()
}

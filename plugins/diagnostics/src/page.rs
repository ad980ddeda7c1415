//! The HTML summary of a result, for browsers: what was computed, its layout and labels, and
//! the ways to get it (JSON, NetCDF, the derived dataset's Zarr, a picture). Computes
//! nothing itself: the picture is the plot plugin's, drawn from the derived dataset.

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

use crate::{derived::Plan, operation::Operation};

/// What a path segment must escape.
const SEGMENT: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'/').add(b'<').add(b'>').add(b'?').add(b'`');

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;\
line-height:1.4}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ccc;\
text-align:left;vertical-align:top}code,pre{background:#f3f3f3;padding:.1rem .3rem}pre{padding:.6rem;\
overflow-x:auto}img{max-width:100%}@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}\
code,pre{background:#222}a{color:#8cf}}";

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The summary page of `plan`'s result; links start with `base` (the server's URL).
pub(crate) fn summary(plan: &Plan, base: &str, plot: bool) -> String {
    let var = plan.var();
    let out = &plan.meta.variables[var];
    let source = &plan.source.meta.id;
    let id = utf8_percent_encode(&plan.meta.id, SEGMENT).to_string();
    let dataset = format!("{base}/datasets/{id}");
    let here = format!("{base}/datasets/{}/{}", utf8_percent_encode(source, SEGMENT), plan.derivation.path());
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{title}</title><style>{STYLE}</style></head><body>\
         <h1>{title}</h1><p>Computed on the server from dataset <a href=\"{src}/\">{source_text}</a>.</p>",
        title = text(&format!("{var}: {}", plan.derivation.path())),
        src = attr(&format!("{base}/datasets/{}", utf8_percent_encode(source, SEGMENT))),
        source_text = text(source),
    );
    html.push_str("<h2>Layout</h2><table><tr><th>dimension</th><th>size</th><th>labels</th></tr>");
    for (dim, size) in out.dimensions.iter().zip(&out.shape) {
        let labels = match &plan.operation {
            Operation::Grouped { name, labels, .. } if name == dim => {
                let all: Vec<String> = labels.to_json().iter().map(shown).collect();
                match all.len() {
                    0..=12 => all.join(", "),
                    n => format!("{}, … {} ({n} groups)", all[..3].join(", "), all[n - 1]),
                }
            }
            _ => String::new(),
        };
        html.push_str(&format!("<tr><td>{}</td><td>{size}</td><td>{}</td></tr>", text(dim), text(&labels)));
    }
    html.push_str("</table><h2>Attributes</h2><table>");
    for (key, value) in &out.attributes {
        html.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", text(key), text(&shown(value))));
    }
    html.push_str("</table><h2>Get it</h2><ul>");
    for (label, href) in [
        ("JSON (xarray's to_dict)", format!("{here}?format=json")),
        ("NetCDF4 file", format!("{here}?format=netcdf")),
        ("the result as a dataset", format!("{dataset}/")),
        ("its Zarr store (computed a chunk at a time)", format!("{dataset}/zarr")),
    ] {
        html.push_str(&format!("<li><a href=\"{}\">{}</a></li>", attr(&href), text(label)));
    }
    let code = format!("import xarray as xr\nds = xr.open_dataset(\"{dataset}/zarr\", engine=\"zarr\")\nds[\"{var}\"]");
    html.push_str(&format!("</ul><pre><code>{}</code></pre>", text(&code)));
    if plot && !out.dimensions.is_empty() {
        let kind = if out.dimensions.len() == 1 { "/line" } else { "" };
        let picture = format!("{dataset}/plot/{}{kind}", utf8_percent_encode(var, SEGMENT));
        html.push_str(&format!(
            "<h2>Picture</h2><img src=\"{}\" alt=\"{}\" loading=\"lazy\">",
            attr(&picture),
            attr(&format!("{var}, first step"))
        ));
    }
    html.push_str("</body></html>");
    html
}

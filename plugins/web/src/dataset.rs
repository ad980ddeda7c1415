//! `GET /datasets/{id}/`: the dataset's page.

use std::fmt::Write as _;

use cloudify_cf::{role_of, time::TimeAxis, Role};
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host, HostExt, Request, Response,
};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde_json::Value;

use crate::{
    catalogue::{attribute, data_variables, percent},
    page::{Page, Section},
    snippets, Config, Loaded,
};

/// Coordinates up to this size are read whole for their range; larger ones by their ends
/// (coordinates are monotonic where CF calls them coordinates).
const READ_WHOLE: u64 = 8 << 20;

/// Preview pictures' size in pixels.
const PREVIEW: (u32, u32) = (480, 270);

/// `GET /datasets/{id}/`.
pub(crate) async fn page(config: &Config, host: &Host, req: &Request) -> Response {
    let id = req.dataset_id().unwrap_or_default().to_owned();
    let meta = match host.metadata(&id) {
        Ok(meta) => meta,
        Err(err) => return err.into(),
    };
    let base = config.base_url(req);
    let loaded = Loaded::of(host);
    let dataset_url = format!("{base}/datasets/{}", percent(&id));
    let data = data_variables(&meta);
    let mut main = format!(
        "<nav class=\"crumbs\" aria-label=\"Breadcrumb\"><a href=\"{base}/\">Datasets</a> / <span>{id}</span></nav>\
         <h1>{title}</h1>",
        base = attr(&base),
        id = text(&id),
        title = text(&attribute(&meta, "title").unwrap_or_else(|| id.clone())),
    );
    if attribute(&meta, "title").is_some() {
        let _ = write!(main, "<p class=\"id\">Dataset <code>{}</code></p>", text(&id));
    }
    if let Some(summary) = ["summary", "description", "comment"].iter().find_map(|k| attribute(&meta, k)) {
        let _ = write!(main, "<p>{}</p>", text(&summary));
    }
    main.push_str(&snippets::section(&snippets::Context {
        base: &base,
        dataset_url: &dataset_url,
        id: &id,
        variable: data.first().copied(),
        loaded: &loaded,
    }));
    main.push_str(&dimensions(&meta));
    main.push_str(&coordinates(host, &meta).await);
    let previews = (config.previews && loaded.has("plot")).then_some(dataset_url.as_str());
    main.push_str(&variables(&meta, &data, previews));
    main.push_str(&attributes(&meta.attributes));
    Page { config, base: &base, title: &id, section: Section::Datasets, main, scripts: &["dataset.js"] }.render()
}

fn dimensions(meta: &DatasetMeta) -> String {
    let mut html = String::from(
        "<section aria-labelledby=\"dims\"><h2 id=\"dims\">Dimensions</h2><table><thead><tr><th scope=\"col\">Name</th>\
         <th scope=\"col\">Size</th></tr></thead><tbody>",
    );
    for (name, size) in &meta.dimensions {
        let unlimited = if meta.unlimited.contains(name) { " (unlimited)" } else { "" };
        let _ = write!(html, "<tr><th scope=\"row\">{}</th><td>{size}{unlimited}</td></tr>", text(name));
    }
    html.push_str("</tbody></table></section>");
    html
}

/// A number as people read it: integers whole, others to six significant digits.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.6}");
        let text = if value.abs() >= 1e6 || value.abs() < 1e-3 { format!("{value:.5e}") } else { text };
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A date of the data's calendar: the day, with the time of day when it is not midnight.
fn date(date: &cloudify_cf::time::DateTime) -> String {
    let day = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
    if (date.hour, date.minute, date.second) == (0, 0, 0) {
        day
    } else {
        format!("{day} {:02}:{:02}:{:02}", date.hour, date.minute, date.second)
    }
}

/// The smallest and largest value of a numeric coordinate, decoded.
async fn extent(host: &Host, dataset: &str, name: &str, var: &VariableMeta) -> Result<Option<(f64, f64)>, Error> {
    if matches!(var.dtype, DataType::Char | DataType::String) || var.shape.iter().product::<u64>() == 0 {
        return Ok(None);
    }
    let bytes = var.shape.iter().product::<u64>().saturating_mul(var.dtype.size() as u64);
    let values = if bytes <= READ_WHOLE {
        cloudify_cf::read::all(host, dataset, name, var, READ_WHOLE).await?
    } else if var.shape.len() == 1 {
        let first = cloudify_cf::read::block(host, dataset, name, var, &[0], &[1]).await?;
        let last = cloudify_cf::read::block(host, dataset, name, var, &[var.shape[0] - 1], &[1]).await?;
        [first, last].concat()
    } else {
        return Ok(None);
    };
    let finite = values.into_iter().filter(|v| v.is_finite());
    Ok(finite.fold(None, |range: Option<(f64, f64)>, v| Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))))
}

fn coordinate_range(name: &str, var: &VariableMeta, range: Option<(f64, f64)>) -> String {
    let Some((lo, hi)) = range else { return String::new() };
    if role_of(name, var) == Role::Time {
        if let Ok(axis) = TimeAxis::decode(var, &[lo, hi]) {
            let calendar = axis.calendar.as_deref().unwrap_or("standard");
            return format!(
                "<time>{}</time> to <time>{}</time> <span class=\"note\">({calendar} calendar)</span>",
                date(&axis.dates[0]),
                date(&axis.dates[1])
            );
        }
    }
    let units = var.attributes.get("units").and_then(Value::as_str).unwrap_or_default();
    format!("{} to {} {}", number(lo), number(hi), text(units))
}

async fn coordinates(host: &Host, meta: &DatasetMeta) -> String {
    let names = meta.coordinate_names();
    if names.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<section aria-labelledby=\"coords\"><h2 id=\"coords\">Coordinates</h2><table><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Dimensions</th><th scope=\"col\">Type</th>\
         <th scope=\"col\">Range</th><th scope=\"col\">Description</th></tr></thead><tbody>",
    );
    for name in names {
        let var = &meta.variables[name];
        // A coordinate whose values cannot be read shows no range; the page still answers.
        let range = extent(host, &meta.id, name, var).await.ok().flatten();
        let _ = write!(
            html,
            "<tr><th scope=\"row\">{}</th><td>({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(name),
            text(&var.dimensions.join(", ")),
            var.dtype.name(),
            coordinate_range(name, var, range),
            text(describe(var).as_deref().unwrap_or_default()),
        );
    }
    html.push_str("</tbody></table></section>");
    html
}

fn describe(var: &VariableMeta) -> Option<String> {
    let get = |key: &str| var.attributes.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    get("long_name").or_else(|| get("standard_name")).map(str::to_owned)
}

/// Bytes as people read them.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn variables(meta: &DatasetMeta, data: &[&str], previews: Option<&str>) -> String {
    let mut html = String::from("<section aria-labelledby=\"vars\"><h2 id=\"vars\">Variables</h2>");
    for name in data {
        let var = &meta.variables[*name];
        let get = |key: &str| var.attributes.get(key).and_then(Value::as_str);
        let elements: u64 = var.shape.iter().product();
        let dims: Vec<String> = var.dimensions.iter().zip(&var.shape).map(|(d, n)| format!("{d}: {n}")).collect();
        let anchor = format!("var-{}", percent(name));
        let _ = write!(
            html,
            "<article class=\"variable\" aria-labelledby=\"{anchor}\"><h3 id=\"{anchor}\"><code>{name}</code> {long}</h3><dl>",
            anchor = attr(&anchor),
            name = text(*name),
            long = text(describe(var).as_deref().unwrap_or_default()),
        );
        let mut row = |term: &str, value: String| {
            let _ = write!(html, "<dt>{term}</dt><dd>{value}</dd>");
        };
        if let Some(units) = get("units") {
            row("Units", text(units).into_owned());
        }
        if let Some(standard) = get("standard_name") {
            row("Standard name", format!("<code>{}</code>", text(standard)));
        }
        row("Dimensions", text(&format!("({})", dims.join(", "))).into_owned());
        row("Type", var.dtype.name().to_owned());
        if var.chunks != var.shape && !var.chunks.is_empty() {
            let chunks: Vec<String> = var.chunks.iter().map(u64::to_string).collect();
            row("Chunks", format!("({})", chunks.join(", ")));
        }
        if var.dtype.size() > 0 {
            row("Size", size(elements.saturating_mul(var.dtype.size() as u64)));
        }
        html.push_str("</dl>");
        let drawable = !matches!(var.dtype, DataType::Char | DataType::String | DataType::Bool) && elements > 0;
        if let (Some(dataset_url), true) = (previews, drawable) {
            let (width, height) = PREVIEW;
            let _ = write!(
                html,
                "<figure><img class=\"preview\" loading=\"lazy\" src=\"{src}\" width=\"{width}\" height=\"{height}\" \
                 alt=\"Preview of {name}\"><figcaption>Drawn by the server (plot plugin): \
                 <a href=\"{src}\">picture</a></figcaption></figure>",
                src = attr(&format!("{dataset_url}/plot/{}?width={width}&height={height}", percent(name))),
                name = attr(name),
            );
        }
        html.push_str("</article>");
    }
    html.push_str("</section>");
    html
}

fn attributes(attrs: &serde_json::Map<String, Value>) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let mut html = format!(
        "<section aria-labelledby=\"attrs\"><h2 id=\"attrs\">Attributes</h2><details><summary>{} global attributes</summary><dl>",
        attrs.len()
    );
    for (key, value) in attrs {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", text(key), text(&value));
    }
    html.push_str("</dl></details></section>");
    html
}

//! `GET /`: the catalogue.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cloudify_sdk::{meta::DatasetMeta, Host, HostExt, Request, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    page::{Page, Section},
    Config, Loaded,
};

/// How long the summaries of every dataset are reused: a catalogue of thousands is read
/// once per interval, not per page view.
const SUMMARY_TTL: Duration = Duration::from_secs(10);

/// What the list shows of one dataset.
struct Summary {
    id: String,
    title: Option<String>,
    /// Data variables with their long names.
    variables: Vec<(String, Option<String>)>,
    /// Values of the configured facets the dataset has.
    facets: Vec<(String, String)>,
}

/// The data variables of `meta`: neither coordinates nor cell bounds.
pub(crate) fn data_variables(meta: &DatasetMeta) -> Vec<&str> {
    let coordinates = meta.coordinate_names();
    let bounds: Vec<&str> = meta.variables.values().filter_map(|v| v.attributes.get("bounds")?.as_str()).collect();
    meta.variables.keys().map(String::as_str).filter(|n| !coordinates.contains(n) && !bounds.contains(n)).collect()
}

/// A global attribute as text, when it is text or a number.
pub(crate) fn attribute(meta: &DatasetMeta, name: &str) -> Option<String> {
    match meta.attributes.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Summary {
    fn of(meta: &DatasetMeta, facets: &[String]) -> Self {
        let variables = data_variables(meta)
            .into_iter()
            .map(|name| {
                let long_name = meta.variables[name].attributes.get("long_name").and_then(Value::as_str);
                (name.to_owned(), long_name.map(str::to_owned))
            })
            .collect();
        Self {
            id: meta.id.clone(),
            title: attribute(meta, "title"),
            variables,
            facets: facets.iter().filter_map(|f| Some((f.clone(), attribute(meta, f)?))).collect(),
        }
    }
}

/// The catalogue page and its summaries.
pub(crate) struct Catalogue {
    config: Arc<Config>,
    summaries: Mutex<Option<(Instant, Arc<Vec<Summary>>)>>,
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: Option<String>,
}

impl Catalogue {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self { config, summaries: Mutex::new(None) }
    }

    fn summaries(&self, host: &Host) -> Arc<Vec<Summary>> {
        let mut held = self.summaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, summaries)) = held.as_ref().filter(|(made, _)| made.elapsed() < SUMMARY_TTL) {
            return Arc::clone(summaries);
        }
        let mut ids = host.datasets();
        ids.sort();
        let summaries: Arc<Vec<Summary>> = Arc::new(
            ids.iter()
                .map(|id| match host.metadata(id) {
                    Ok(meta) => Summary::of(&meta, &self.config.facets),
                    Err(_) => Summary { id: id.clone(), title: None, variables: Vec::new(), facets: Vec::new() },
                })
                .collect(),
        );
        *held = Some((Instant::now(), Arc::clone(&summaries)));
        summaries
    }

    /// `GET /?page=N`.
    pub(crate) fn page(&self, host: &Host, req: &Request) -> Response {
        let config = &self.config;
        let base = config.base_url(req);
        let summaries = self.summaries(host);
        let pages = summaries.len().div_ceil(config.page_size).max(1);
        let page = serde_urlencoded::from_str::<PageQuery>(&req.query)
            .ok()
            .and_then(|q| q.page?.parse::<usize>().ok())
            .unwrap_or(1)
            .clamp(1, pages);
        let shown = summaries.iter().skip((page - 1) * config.page_size).take(config.page_size);
        let loaded = Loaded::of(host);
        let mut main = String::from("<h1>Datasets</h1>");
        if loaded.has("stac") {
            main.push_str(&search_form(config, &base, &summaries));
        } else {
            main.push_str("<p>Searching needs the STAC plugin, which this server has not loaded.</p>");
        }
        let _ = write!(
            main,
            "<p id=\"status\" role=\"status\" aria-live=\"polite\">{count} dataset{s}{of}</p>\
             <ol id=\"results\" class=\"results\">",
            count = summaries.len(),
            s = if summaries.len() == 1 { "" } else { "s" },
            of = if pages > 1 { format!(", page {page} of {pages}") } else { String::new() },
        );
        for summary in shown {
            main.push_str(&entry(&base, summary));
        }
        main.push_str("</ol><nav id=\"pager\" class=\"pager\" aria-label=\"Pages\">");
        if page > 1 {
            let _ = write!(main, "<a rel=\"prev\" href=\"{}/?page={}\">Previous</a>", attr(&base), page - 1);
        }
        if page < pages {
            let _ = write!(main, "<a rel=\"next\" href=\"{}/?page={}\">Next</a>", attr(&base), page + 1);
        }
        main.push_str("</nav>");
        Page { config, base: &base, title: "Datasets", section: Section::Datasets, main, scripts: &["catalogue.js"] }
            .render()
    }
}

/// One dataset in the list (the page's script draws search results the same way).
fn entry(base: &str, summary: &Summary) -> String {
    let href = format!("{base}/datasets/{}/", percent(&summary.id));
    let mut html =
        format!("<li><article><h2><a href=\"{href}\">{id}</a></h2>", href = attr(&href), id = text(&summary.id));
    if let Some(title) = &summary.title {
        let _ = write!(html, "<p>{}</p>", text(title));
    }
    if !summary.variables.is_empty() {
        let names: Vec<String> = summary
            .variables
            .iter()
            .map(|(name, long)| match long {
                Some(long) => format!("<abbr title=\"{}\">{}</abbr>", attr(long), text(name)),
                None => text(name).into_owned(),
            })
            .collect();
        let _ = write!(html, "<p class=\"variables\">Variables: {}</p>", names.join(", "));
    }
    if !summary.facets.is_empty() {
        html.push_str("<ul class=\"chips\">");
        for (facet, value) in &summary.facets {
            let _ = write!(html, "<li><span>{}</span> {}</li>", text(facet), text(value));
        }
        html.push_str("</ul>");
    }
    html.push_str("</article></li>");
    html
}

/// The search form: shown by the page's script, which answers it with the STAC API.
fn search_form(config: &Config, base: &str, summaries: &[Summary]) -> String {
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for summary in summaries {
        for (facet, value) in &summary.facets {
            *counts.entry(facet).or_default().entry(value).or_default() += 1;
        }
    }
    let mut facets = String::new();
    for facet in &config.facets {
        let Some(values) = counts.get(facet.as_str()) else { continue };
        let _ = write!(
            facets,
            "<label>{name} <select name=\"f.{key}\" data-facet=\"{key}\"><option value=\"\">any</option>",
            name = text(facet),
            key = attr(facet)
        );
        for (value, count) in values {
            let _ = write!(facets, "<option value=\"{}\">{} ({count})</option>", attr(value), text(value));
        }
        facets.push_str("</select></label>");
    }
    let facets = if facets.is_empty() {
        String::new()
    } else {
        format!("<fieldset class=\"facets\"><legend>Facets</legend>{facets}</fieldset>")
    };
    format!(
        "<noscript><p>Searching runs in JavaScript against this server's STAC API \
         (<a href=\"{base}/stac/search\">/stac/search</a>, which pystac-client also reads); \
         without it, the list below holds every dataset.</p></noscript>\
         <form id=\"search\" role=\"search\" hidden data-page-size=\"{size}\">\
         <p class=\"query\"><label for=\"q\">Search</label> \
         <input id=\"q\" name=\"q\" type=\"search\" placeholder=\"id, title, variable, standard_name, attribute\">\
         <button type=\"submit\">Search</button> <button type=\"reset\">Clear</button></p>\
         <div class=\"filters\"><fieldset class=\"time\"><legend>Time range</legend>\
         <label>From <input name=\"from\" type=\"date\"></label> <label>Until <input name=\"until\" type=\"date\"></label>\
         </fieldset>\
         <fieldset class=\"area\"><legend>Area</legend>\
         <div class=\"map\" id=\"map\"><img src=\"{base}/web/world.svg\" alt=\"\" draggable=\"false\" width=\"360\" height=\"180\">\
         <div class=\"box\" hidden></div></div>\
         <p class=\"hint\" id=\"map-hint\">Drag on the map to draw a box, or type its edges (degrees).</p>\
         <div class=\"bbox\"><label>West <input name=\"west\" type=\"number\" min=\"-180\" max=\"180\" step=\"any\"></label> \
         <label>South <input name=\"south\" type=\"number\" min=\"-90\" max=\"90\" step=\"any\"></label> \
         <label>East <input name=\"east\" type=\"number\" min=\"-180\" max=\"180\" step=\"any\"></label> \
         <label>North <input name=\"north\" type=\"number\" min=\"-90\" max=\"90\" step=\"any\"></label></div>\
         </fieldset>{facets}</div></form>",
        base = attr(base),
        size = config.page_size,
    )
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `id` as one URL path segment.
pub(crate) fn percent(id: &str) -> String {
    utf8_percent_encode(id, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn ids_become_one_path_segment() {
        assert_eq!(percent("cmip6.tas_day-v1~x"), "cmip6.tas_day-v1~x");
        assert_eq!(percent("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }
}

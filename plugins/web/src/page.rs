//! The frame every page shares, and `/docs`.

use cloudify_sdk::{Request, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::Config;

/// Which entry of the navigation a page is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Datasets,
    Docs,
    Stats,
}

/// One page: its title, the section it belongs to, its `<main>` and its scripts.
pub(crate) struct Page<'a> {
    pub config: &'a Config,
    pub base: &'a str,
    pub title: &'a str,
    pub section: Section,
    pub main: String,
    /// Assets under `/web/` loaded with `defer`.
    pub scripts: &'a [&'a str],
}

impl Page<'_> {
    /// The page as an HTML response.
    pub(crate) fn render(&self) -> Response {
        let base = attr(self.base);
        let current = |section: Section| if self.section == section { " aria-current=\"page\"" } else { "" };
        let scripts: String =
            self.scripts.iter().map(|name| format!("<script defer src=\"{base}/web/{name}\"></script>")).collect();
        let site = text(&self.config.title);
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"color-scheme\" content=\"light dark\">\
             <title>{title} · {site}</title>\
             <link rel=\"stylesheet\" href=\"{base}/web/style.css\">{scripts}</head>\
             <body data-base=\"{base}\"><a class=\"skip\" href=\"#main\">Skip to content</a>\
             <header><a class=\"site\" href=\"{base}/\">{site}</a><nav aria-label=\"Site\"><ul>\
             <li><a href=\"{base}/\"{datasets}>Datasets</a></li>\
             <li><a href=\"{base}/docs\"{docs}>API</a></li>\
             <li><a href=\"{base}/stats\"{stats}>Usage</a></li>\
             <li><a href=\"{base}/stac\">STAC</a></li></ul></nav></header>\
             <main id=\"main\">{main}</main>\
             <footer><p>Served by cloudify · <a href=\"{base}/openapi.json\">OpenAPI</a> · \
             <a href=\"{base}/datasets\">JSON list</a></p></footer></body></html>\n",
            title = text(self.title),
            datasets = current(Section::Datasets),
            docs = current(Section::Docs),
            stats = current(Section::Stats),
            main = self.main,
        );
        html_response(html)
    }
}

/// An HTML answer; pages depend on the datasets served, so caches revalidate.
pub(crate) fn html_response(html: String) -> Response {
    Response::bytes(200, "text/html; charset=utf-8", html.into_bytes()).with_header("cache-control", "no-cache")
}

/// `GET /docs`: Swagger UI over `/openapi.json`.
pub(crate) fn docs(config: &Config, req: &Request) -> Response {
    let base = config.base_url(req);
    let main = format!(
        "<h1 class=\"visually-hidden\">API documentation</h1>\
         <link rel=\"stylesheet\" href=\"{base}/web/swagger-ui.css\">\
         <div id=\"swagger-ui\" data-spec=\"{spec}\"><p>The documentation is drawn by JavaScript; \
         without it, read <a href=\"{spec}\">the OpenAPI document</a>.</p></div>",
        base = attr(&base),
        spec = attr(&format!("{base}/openapi.json")),
    );
    Page {
        config,
        base: &base,
        title: "API",
        section: Section::Docs,
        main,
        scripts: &["swagger-ui-bundle.js", "docs.js"],
    }
    .render()
}

/// `GET /stats`: the host's usage counters (`/usage`), drawn by the page's script.
pub(crate) fn stats(config: &Config, req: &Request) -> Response {
    let base = config.base_url(req);
    let main = format!(
        "<h1>Usage</h1><p><label for=\"days\">Over the last</label> <select id=\"days\">\
         <option value=\"1\">day</option><option value=\"7\" selected>7 days</option>\
         <option value=\"31\">31 days</option></select></p>\
         <p id=\"stats-status\" role=\"status\" aria-live=\"polite\"></p><div id=\"stats\"></div>\
         <noscript><p>The tables are drawn by JavaScript from <a href=\"{usage}\">the usage counters</a> \
         (JSON).</p></noscript>",
        usage = attr(&format!("{base}/usage")),
    );
    Page { config, base: &base, title: "Usage", section: Section::Stats, main, scripts: &["stats.js"] }.render()
}

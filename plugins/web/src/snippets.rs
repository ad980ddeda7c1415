//! The code that opens a dataset, one snippet per client the loaded plugins serve: each is
//! what the interop suite runs against the same endpoints.

use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::Loaded;

/// What the snippets name.
pub(crate) struct Context<'a> {
    /// The base URL of links.
    pub base: &'a str,
    /// `{base}/datasets/{id}`, the id encoded as a path segment.
    pub dataset_url: &'a str,
    pub id: &'a str,
    /// A data variable, for the snippets that read one.
    pub variable: Option<&'a str>,
    pub loaded: &'a Loaded,
}

/// One snippet: a label, the plugin it needs, the language, the code.
struct Snippet {
    key: &'static str,
    label: &'static str,
    language: &'static str,
    code: String,
}

/// A Python string literal of `value` (JSON's escapes are Python's for these).
fn py(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// A POSIX shell word of `value`.
fn sh(value: &str) -> String {
    if value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn snippets(cx: &Context<'_>) -> Vec<Snippet> {
    let url = cx.dataset_url;
    let mut out = Vec::new();
    let xarray = |key, label, endpoint: &str| Snippet {
        key,
        label,
        language: "python",
        code: format!(
            "import xarray as xr\n\nds = xr.open_dataset({}, engine=\"zarr\", chunks={{}})",
            py(&format!("{url}/{endpoint}"))
        ),
    };
    if cx.loaded.has("zarr") {
        out.push(xarray("zarr", "xarray · Zarr", "zarr"));
    }
    if cx.loaded.has("kerchunk") {
        out.push(xarray("kerchunk", "xarray · kerchunk store", "kerchunk"));
        out.push(Snippet {
            key: "kerchunk-json",
            label: "kerchunk.json · fsspec",
            language: "python",
            code: format!(
                "import xarray as xr\n\nrefs = {{\"fo\": {}, \"remote_protocol\": \"http\",\n        \
                 \"remote_options\": {{\"asynchronous\": True}}, \"asynchronous\": True}}\n\
                 ds = xr.open_dataset(\"reference://\", engine=\"zarr\", chunks={{}},\n                     \
                 backend_kwargs={{\"consolidated\": False, \"storage_options\": refs}})",
                py(&format!("{url}/kerchunk.json"))
            ),
        });
    }
    if cx.loaded.has("intake") {
        out.push(Snippet {
            key: "intake",
            label: "intake",
            language: "python",
            code: format!(
                "import intake\n\ncatalog = intake.open_catalog({})\nds = catalog[{}].to_dask()",
                py(&format!("{url}/catalog.yaml")),
                py(&format!("{}-zarr", cx.id))
            ),
        });
    }
    if cx.loaded.has("stac") {
        out.push(Snippet {
            key: "stac",
            label: "pystac-client",
            language: "python",
            code: format!(
                "import pystac_client\nimport xarray as xr\n\n\
                 catalog = pystac_client.Client.open({})\n\
                 item = next(catalog.search(ids=[{}]).items())\n\
                 asset = item.assets[\"zstore\"]\n\
                 ds = xr.open_dataset(asset.href, **asset.extra_fields[\"xarray:open_kwargs\"])",
                py(&format!("{}/stac", cx.base)),
                py(cx.id)
            ),
        });
        out.push(Snippet {
            key: "datapoint",
            label: "DataPoint (cloudify's client)",
            language: "shell",
            code: format!(
                "# the item's cloud products, then a subset as NetCDF\ncloudify datapoint search {} --id {}\n\
                 cloudify datapoint get ITEM_URL#zstore{} -o subset.nc",
                sh(&format!("{}/stac", cx.base)),
                sh(cx.id),
                cx.variable.map(|v| format!(" --var {}", sh(v))).unwrap_or_default()
            ),
        });
    }
    if cx.loaded.has("icechunk") {
        out.push(Snippet {
            key: "icechunk",
            label: "Icechunk",
            language: "python",
            code: format!(
                "import icechunk\nimport xarray as xr\n\n\
                 repo = icechunk.Repository.open(\n    icechunk.http_storage({}),\n    \
                 authorize_virtual_chunk_access={{{}: icechunk.credentials.HttpAccess}},\n)\n\
                 session = repo.readonly_session(branch=\"main\")\n\
                 ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3)",
                py(&format!("{url}/icechunk/")),
                py(&format!("{url}/files/"))
            ),
        });
    }
    out.push(Snippet {
        key: "curl",
        label: "curl · structure as JSON",
        language: "shell",
        code: format!("curl {}", sh(&format!("{url}/info"))),
    });
    out
}

/// The "Open it" section: each snippet with a copy button (the code stays selectable
/// without JavaScript).
pub(crate) fn section(cx: &Context<'_>) -> String {
    let mut html = String::from(
        "<section aria-labelledby=\"open\"><h2 id=\"open\">Open it</h2>\
         <p id=\"copied\" class=\"note\" role=\"status\" aria-live=\"polite\"></p><div class=\"snippets\">",
    );
    let all = snippets(cx);
    let others = all.len().saturating_sub(1);
    for (position, snippet) in all.into_iter().enumerate() {
        // The first way is shown; the others fold away under it.
        if position == 1 {
            let _ = write!(html, "<details><summary>{others} more ways to open it</summary>");
        }
        let id = format!("code-{}", snippet.key);
        let _ = write!(
            html,
            "<div class=\"snippet\"><h3 id=\"{id}-label\">{label}</h3>\
             <pre><code id=\"{id}\" class=\"language-{language}\">{code}</code></pre>\
             <button type=\"button\" class=\"copy\" data-copy=\"{id}\" aria-describedby=\"{id}-label\" hidden>Copy</button></div>",
            id = attr(&id),
            label = text(snippet.label),
            language = snippet.language,
            code = text(&snippet.code),
        );
    }
    if others > 0 {
        html.push_str("</details>");
    }
    html.push_str("</div></section>");
    html
}

//! cloudify's plot plugin: a picture of any variable, drawn on the server in milliseconds.
//!
//! `GET /datasets/{id}/plot/{var}[/{kind}[/{cmap}[/{selection...}]]]`, cloudify's path and
//! selection syntax (`time/-12_-1/lat/40_60`), plus labelled selection in the query
//! (`?time=2000-01-16&lat=40:60&plev=85000`, `isel.time=-1`; see `cloudify_cf::select`).
//! Kinds: `map` (cells drawn as their shapes on regular, curvilinear, rotated-pole,
//! unstructured and HEALPix grids; aliases `image`, `quadmesh`, `pcolormesh`), `contourf`
//! (ten bands), `line` (along time: at a point, or the area mean), `scatter` (`points`), `hist`.
//! Without a selection: the whole domain, the last time step, the first position of every
//! other dimension (the caption says so). Several time steps of a field: an animated PNG of
//! at most `max_frames`, or one picture with `reduce=mean|min|max`. `vmin`/`vmax`,
//! `width`/`height`, `format=png|svg|json|csv` (the data drawn, to check or reuse).
//!
//! Config (`[plugin.plot]`): see `config.rs`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod colormap;
mod config;
mod data;
mod encode;
mod render;
mod request;

use std::sync::Arc;

use cloudify_sdk::{Error, Host, HostExt, Plugin, Request, Response, Route, Scope};
use cloudify_zarr_store::{reply, DescribedDatasets, Document};
use plotters::{backend::SVGBackend, drawing::IntoDrawingArea};

use crate::{
    config::Config,
    render::{Picture, Scale},
    request::{Format, Kind, PlotRequest},
};

cloudify_sdk::declare_plugin!(name: "plot", init: init);

/// Largest picture side an operator may allow.
const MAX_SIDE: u32 = 8192;

fn init(host: Host) -> Result<Plugin, String> {
    let config: Config = host.config().map_err(|err| err.to_string())?;
    if config.max_width > MAX_SIDE || config.max_height > MAX_SIDE || config.max_frames == 0 {
        return Err(format!("max_width and max_height are at most {MAX_SIDE}, max_frames at least 1"));
    }
    let service = Arc::new(PlotService::new(config));
    let mut plugin =
        Plugin::new("plot", env!("CARGO_PKG_VERSION")).description("pictures of variables: maps, lines, histograms");
    for path in
        ["/plot/{var}", "/plot/{var}/{kind}", "/plot/{var}/{kind}/{cmap}", "/plot/{var}/{kind}/{cmap}/{*selection}"]
    {
        let service = Arc::clone(&service);
        plugin = plugin.route(
            Route::get(Scope::Dataset, path, move |host, req| {
                let service = Arc::clone(&service);
                async move { service.answer(&host, &req).await }
            })
            .summary("A picture of a variable (PNG, animated PNG, SVG) or the data drawn (JSON, CSV)")
            .content_type("image/png"),
        );
    }
    Ok(plugin)
}

/// Requests answered, with the rendered answers kept by bytes.
struct PlotService {
    config: Config,
    cache: moka::sync::Cache<String, Arc<Document>>,
    /// Each dataset's metadata, fetched again after `METADATA_TTL` (as the store plugins do).
    described: DescribedDatasets,
}

impl PlotService {
    fn new(config: Config) -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|_, doc: &Arc<Document>| u32::try_from(doc.body.len()).unwrap_or(u32::MAX))
            .max_capacity(config.cache_bytes)
            .build();
        let described = DescribedDatasets::default();
        Self { config, cache, described }
    }

    async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let request = PlotRequest::parse(req, &self.config)?;
        let described = self.described.get(host, id)?;
        let meta = &described.meta;
        let last_modified = described.last_modified;
        let key = PlotRequest::cache_key(req, described.generation);
        let content_type = request.format.content_type();
        if let Some(doc) = self.cache.get(&key) {
            return Ok(reply(req, doc, last_modified, &self.config.cache_control, content_type));
        }
        let plotted = data::gather(host, meta, &request, self.config.max_frames).await?;
        let (config, owned) = (self.config.clone(), request.clone());
        let bytes = host.run_blocking(move || draw(&plotted, &owned, &config)).await??;
        let doc = Arc::new(Document::new(bytes.into()));
        if self.config.cache_bytes > 0 {
            self.cache.insert(key, Arc::clone(&doc));
        }
        Ok(reply(req, doc, last_modified, &self.config.cache_control, content_type))
    }
}

/// The answer's bytes for `plotted`.
fn draw(plotted: &data::Plotted, request: &PlotRequest, config: &Config) -> Result<Vec<u8>, Error> {
    let scale = Scale::of(request, plotted);
    let (width, height) = (request.width, request.height);
    let points = request.kind == Kind::Scatter;
    match (request.format, request.kind) {
        (Format::Json, kind) => Ok(encode::json(plotted, kind, &scale)),
        (Format::Csv, kind) => Ok(encode::csv(plotted, kind, &scale)),
        (Format::Png, Kind::Line) => {
            encode::png(&[render::opaque(width, height, |root| render::line(root, plotted, &scale, width, height))?], 0)
        }
        (Format::Png, Kind::Hist) => {
            encode::png(&[render::opaque(width, height, |root| render::hist(root, plotted, &scale, width, height))?], 0)
        }
        (Format::Png, _) => {
            let pictures: Vec<Picture> = (0..plotted.frames.len())
                .map(|f| render::map(plotted, f, &scale, width, height, points))
                .collect::<Result<_, _>>()?;
            encode::png(&pictures, config.frame_ms)
        }
        (Format::Svg, Kind::Line | Kind::Hist) => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                if request.kind == Kind::Line {
                    render::line(root, plotted, &scale, width, height)?;
                } else {
                    render::hist(root, plotted, &scale, width, height)?;
                }
            }
            Ok(svg.into_bytes())
        }
        (Format::Svg, _) => render::map_svg(plotted, &scale, width, height, points).map(String::into_bytes),
    }
}

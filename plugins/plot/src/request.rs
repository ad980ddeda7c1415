//! A plot request read from its path (`/plot/{var}/{kind}/{cmap}/{selection...}`) and query
//! (`?time=2000-01&lat=40:60&vmin=250&width=1000&format=json`); every mistake is a 400 that
//! names it.

use cloudify_cf::Selection;
use cloudify_sdk::{Error, Request};

use crate::{colormap::Colormap, config::Config};

/// What is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A field on its grid, cells drawn as their shapes.
    Map,
    /// A field in filled bands of equal width.
    Contourf,
    /// A series along time (or the first other dimension): at a point, or the area mean.
    Line,
    /// Cells as points at their centres.
    Scatter,
    /// A histogram of the selected values.
    Hist,
}

/// Kinds and the names requests may use (cloudify's and hvplot's aliases included).
const KINDS: [(&str, Kind); 10] = [
    ("map", Kind::Map),
    ("image", Kind::Map),
    ("quadmesh", Kind::Map),
    ("pcolormesh", Kind::Map),
    ("contourf", Kind::Contourf),
    ("line", Kind::Line),
    ("scatter", Kind::Scatter),
    ("points", Kind::Scatter),
    ("hist", Kind::Hist),
    ("histogram", Kind::Hist),
];

/// What the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A PNG (animated when there are frames).
    Png,
    /// An SVG document.
    Svg,
    /// The data drawn, as JSON.
    Json,
    /// The data drawn, as CSV.
    Csv,
}

impl Format {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Svg => "image/svg+xml",
            Self::Json => "application/json",
            Self::Csv => "text/csv",
        }
    }
}

/// How several time steps become one picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduce {
    Mean,
    Min,
    Max,
}

/// A parsed request.
#[derive(Debug, Clone)]
pub(crate) struct PlotRequest {
    pub(crate) var: String,
    pub(crate) kind: Kind,
    pub(crate) cmap: Colormap,
    pub(crate) selection: Selection,
    pub(crate) vmin: Option<f64>,
    pub(crate) vmax: Option<f64>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Dots per inch: text and lines scale with it (100: as drawn by default).
    pub(crate) dpi: f64,
    pub(crate) format: Format,
    pub(crate) reduce: Option<Reduce>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message.into())
}

fn size(value: &str, name: &str, max: u32) -> Result<u32, Error> {
    let n: u32 = value.parse().map_err(|_| invalid(format!("{name}={value}: not a whole number of pixels")))?;
    if !(100..=max).contains(&n) {
        return Err(invalid(format!("{name}={n}: pictures are 100 to {max} pixels {name}")));
    }
    Ok(n)
}

fn float(value: &str, name: &str) -> Result<f64, Error> {
    value.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| invalid(format!("{name}={value}: not a number")))
}

impl PlotRequest {
    /// Reads `req` within the limits of `config`.
    ///
    /// # Errors
    /// 400 naming the unknown kind (listing the valid ones), colour map, format, reduction,
    /// size or selection part.
    pub(crate) fn parse(req: &Request, config: &Config) -> Result<Self, Error> {
        let var = req.param("var").unwrap_or_default().to_owned();
        let kind_name = req.param("kind").unwrap_or("map");
        let kind =
            KINDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(kind_name)).map(|&(_, k)| k).ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                invalid(format!("unknown kind '{kind_name}': one of {}", names.join(", ")))
            })?;
        let cmap_name = req.param("cmap").unwrap_or("viridis");
        let cmap = Colormap::named(cmap_name)
            .ok_or_else(|| invalid(format!("unknown colour map '{cmap_name}': one of {}", Colormap::names())))?;
        let path: Vec<&str> = req.param("selection").unwrap_or_default().split('/').collect();
        let mut selection = Selection::from_path(&path).map_err(|e| invalid(e.to_string()))?;

        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&req.query).map_err(|e| invalid(format!("query: {e}")))?;
        let mut parsed = Self {
            var,
            kind,
            cmap,
            selection: Selection::default(),
            vmin: None,
            vmax: None,
            width: config.default_width,
            height: config.default_height,
            dpi: 100.0,
            format: Format::Png,
            reduce: None,
        };
        let mut labels = Vec::new();
        for (key, value) in &pairs {
            match key.as_str() {
                "vmin" => parsed.vmin = Some(float(value, "vmin")?),
                "vmax" => parsed.vmax = Some(float(value, "vmax")?),
                "width" => parsed.width = size(value, "width", config.max_width)?,
                "height" => parsed.height = size(value, "height", config.max_height)?,
                "dpi" => {
                    let dpi = float(value, "dpi")?;
                    if !(50.0..=400.0).contains(&dpi) {
                        return Err(invalid(format!("dpi={dpi}: from 50 to 400")));
                    }
                    parsed.dpi = dpi;
                }
                "format" => {
                    parsed.format = match value.as_str() {
                        "png" => Format::Png,
                        "svg" => Format::Svg,
                        "json" => Format::Json,
                        "csv" => Format::Csv,
                        other => return Err(invalid(format!("format={other}: one of png, svg, json, csv"))),
                    }
                }
                "reduce" => {
                    parsed.reduce = Some(match value.as_str() {
                        "mean" => Reduce::Mean,
                        "min" => Reduce::Min,
                        "max" => Reduce::Max,
                        other => return Err(invalid(format!("reduce={other}: one of mean, min, max"))),
                    })
                }
                _ => labels.push((key.as_str(), value.as_str())),
            }
        }
        if let (Some(lo), Some(hi)) = (parsed.vmin, parsed.vmax) {
            if lo >= hi {
                return Err(invalid(format!("vmin={lo} is not below vmax={hi}")));
            }
        }
        // The query refines the path: a dimension named in both takes the query's selector.
        let query = Selection::from_query(labels).map_err(|e| invalid(e.to_string()))?;
        selection.dims.retain(|(dim, _)| query.get(dim).is_none());
        selection.dims.extend(query.dims);
        parsed.selection = selection;
        Ok(parsed)
    }

    /// The key of this request's answer within one dataset generation: the path after the
    /// variable and the query, as sent.
    pub(crate) fn cache_key(req: &Request, generation: u64) -> String {
        format!("{generation:x}\u{0}{}\u{0}{}", req.path, req.query)
    }
}

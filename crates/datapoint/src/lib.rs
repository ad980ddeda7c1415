//! A client in the manner of CEDA's DataPoint (`ceda-datapoint`): search any STAC API, see
//! the *cloud products* of each item (assets that are kerchunk reference sets, Zarr stores or
//! CF aggregation files), and open a product into cloudify's data core as a
//! [`Source`](cloudify_dataset::Source), with DataPoint's single-search selection (bbox,
//! datetime, variables) applied and written out as a CF NetCDF4 file.
//!
//! ```text
//! Client ──search()──► Items ──products()──► Cluster of Products ──open()──► Source
//!                                                                 └─Subset──► NetCDF4
//! ```
//!
//! * [`Client`] reads a STAC API's landing page and searches it ([`Search`]: collections,
//!   bbox, datetime, `query` terms as pystac-client takes them, CQL2 `filter`, paging).
//! * [`Item`] is one search result; [`Item::products`] its cloud products, told apart as
//!   DataPoint does ([`identify_cloud_type`]: the asset's `cloud_format`, else its key), with
//!   [`Mapper`]s for catalogues that keep fields elsewhere.
//! * [`Product::open`] opens one through [`cloudify_open::Opener`]; [`Subset`] picks the
//!   selection out of it and writes it.
//!
//! No server is needed: the crate talks HTTP itself (blocking, with time-outs) and reads the
//! data through the same sources the server serves.
//!
//! ```no_run
//! use cloudify_datapoint::{Client, Search};
//!
//! let client = Client::open("https://api.stac.ceda.ac.uk")?;
//! let search = Search::new().collections(["cmip6"]).query(["variables=tas"]).max_items(10);
//! for item in client.search(&search)? {
//!     let item = item?;
//!     for product in item.products(&Default::default()).products() {
//!         println!("{} {} {}", product.id, product.format, product.href);
//!     }
//! }
//! # Ok::<(), cloudify_datapoint::Error>(())
//! ```
//!
//! `examples/search.rs` searches, opens the first product and writes a selection.

mod client;
mod item;
mod product;
mod subset;

pub use client::{Client, Collection, Items, Search};
pub use item::{Item, Mapper};
pub use product::{identify_cloud_type, CloudFormat, Cluster, Product, ProductOptions, Visibility};
pub use subset::{DataSelection, Subset, TimeRange};

/// What went wrong, naming the URL or the part of the request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached or the transfer failed.
    #[error("{url}: {reason}")]
    Http {
        /// What was asked for.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// What was asked for.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is not what a STAC API sends.
    #[error("{url}: {reason}")]
    Stac {
        /// What was asked for.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A product that is not there, or cannot be opened.
    #[error("{0}")]
    Product(String),
    /// A selection that names nothing in the data, or that the data cannot be cut by.
    #[error("{0}")]
    Selection(String),
    /// Reading the data failed.
    #[error("{0}")]
    Read(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// DataPoint's `help()`: what each part offers, for a reader at a terminal.
pub fn help() -> &'static str {
    "Client: open(url), collections(), search(Search)\n\
     Search: collections, bbox, datetime, intersects, query ['key=value', ...], filter (CQL2 JSON), ids, limit, max_items\n\
     Item: id, collection, bbox, start_datetime, end_datetime, variables, units, attribute(name), products(options)\n\
     Cluster: products(), get(index or id), Display lists '- id: format (visibility)'\n\
     Product: id, href, format, open_kwargs, visibility, open(opener), Display shows its item's properties\n\
     Subset: of(source, DataSelection), chunks(), bytes(), read(limit, tick), write(path)\n\
     Properties: id, meta, collection"
}

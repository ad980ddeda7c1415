//! `cloudify datapoint`: DataPoint's client at the command line — search a STAC API, show
//! a product, write a selection of one as NetCDF.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use clap::{Args, Subcommand};
use cloudify_datapoint::{Client, DataSelection, Item, Mapper, Product, ProductOptions, Search, Subset, TimeRange};
use cloudify_open::Opener;
use cloudify_store::Stores;
use serde_json::{json, Value};

use cloudify::config::Config;

#[derive(Subcommand)]
pub(crate) enum DatapointCommand {
    /// Search a STAC API: a table of the items found and their cloud products (kerchunk,
    /// Zarr, CFA), each named `ITEM_URL#ASSET` for `info` and `get`.
    Search(SearchArgs),
    /// Show an item's products (`ITEM_URL`) or one product (`ITEM_URL#ASSET`).
    Info {
        /// `ITEM_URL` or `ITEM_URL#ASSET` (as `search` prints them).
        product: String,
        /// Ask each product's URL whether it answers.
        #[arg(long)]
        check: bool,
    },
    /// Write a selection of a product as a CF NetCDF4 file.
    Get(GetArgs),
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// The STAC API's landing page.
    url: String,
    /// Only items of this collection (repeatable).
    #[arg(long = "collection")]
    collections: Vec<String>,
    /// Only items intersecting WEST,SOUTH,EAST,NORTH.
    #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
    bbox: Option<[f64; 4]>,
    /// Only items in START/END (RFC 3339, `..` an open end) or at one instant.
    #[arg(long)]
    datetime: Option<String>,
    /// A query term `key=value` (operators =, <>, <, <=, >, >=; repeatable).
    #[arg(long = "query")]
    query: Vec<String>,
    /// A CQL2 JSON filter.
    #[arg(long)]
    filter: Option<String>,
    /// Only these item ids (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Items per page asked of the server.
    #[arg(long)]
    limit: Option<u64>,
    /// Items listed at most.
    #[arg(long, default_value_t = 100)]
    max_items: u64,
    /// Ask each product's URL whether it answers (unreachable ones are not listed).
    #[arg(long)]
    check: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct GetArgs {
    /// `ITEM_URL#ASSET` (as `search` prints it), or `ITEM_URL` for its preferred product.
    product: String,
    /// Variables to keep with their coordinates (repeatable; default: all).
    #[arg(long = "var")]
    variables: Vec<String>,
    /// WEST,SOUTH,EAST,NORTH in degrees, along 1-D latitude and longitude.
    #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
    bbox: Option<[f64; 4]>,
    /// Times START:END (`2000-01:2000-12`, ends included to the end of their period).
    #[arg(long)]
    time: Option<String>,
    /// More selectors `dim=label` (`plev=85000`, `isel.time=-12:`; repeatable).
    #[arg(long = "sel")]
    sel: Vec<String>,
    /// Where a reference set's targets may be besides its own host (URL prefixes,
    /// `https://*`; repeatable).
    #[arg(long)]
    allow_targets: Vec<String>,
    /// Refuse selections larger than this many bytes.
    #[arg(long, default_value_t = 4 << 30)]
    max_bytes: u64,
    /// The NetCDF4 file to write.
    #[arg(long, short)]
    output: PathBuf,
}

fn parse_bbox(text: &str) -> Result<[f64; 4], String> {
    let numbers: Vec<f64> = text
        .split(',')
        .map(|n| n.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{text}: {e}"))?;
    <[f64; 4]>::try_from(numbers).map_err(|_| format!("{text}: give WEST,SOUTH,EAST,NORTH"))
}

/// `ITEM_URL#ASSET` split.
fn product_reference(text: &str) -> (&str, Option<&str>) {
    match text.split_once('#') {
        Some((url, asset)) if !asset.is_empty() => (url, Some(asset)),
        _ => (text.trim_end_matches('#'), None),
    }
}

fn fail(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("cloudify: {err}");
    ExitCode::FAILURE
}

pub(crate) fn run(command: DatapointCommand, config: &Config, runtime: &tokio::runtime::Runtime) -> ExitCode {
    match command {
        DatapointCommand::Search(args) => search(&args),
        DatapointCommand::Info { product, check } => info(&product, check),
        DatapointCommand::Get(args) => get(&args, config, runtime),
    }
}

fn search(args: &SearchArgs) -> ExitCode {
    let mut search = Search::new()
        .collections(args.collections.clone())
        .ids(args.ids.clone())
        .query(args.query.clone())
        .max_items(args.max_items);
    if let Some(bbox) = args.bbox {
        search = search.bbox(bbox);
    }
    if let Some(datetime) = &args.datetime {
        search = search.datetime(datetime.clone());
    }
    if let Some(limit) = args.limit {
        search = search.limit(limit);
    }
    if let Some(filter) = &args.filter {
        match serde_json::from_str(filter) {
            Ok(filter) => search = search.filter(filter),
            Err(err) => return fail(format!("--filter is not JSON: {err}")),
        }
    }
    let client = match Client::open(&args.url) {
        Ok(client) => client,
        Err(err) => return fail(err),
    };
    let items = match client.search(&search) {
        Ok(items) => items,
        Err(err) => return fail(err),
    };
    let options = ProductOptions { check_reachable: args.check, ..Default::default() };
    let mut found = Vec::new();
    for item in items {
        match item {
            Ok(item) => {
                let cluster = item.products(&options);
                found.push((item, cluster));
            }
            Err(err) => return fail(err),
        }
    }
    if args.json {
        let listed: Vec<Value> = found
            .iter()
            .map(|(item, cluster)| {
                let products: Vec<Value> = cluster
                    .products()
                    .iter()
                    .map(|p| {
                        json!({"id": p.id, "asset": p.asset_key, "cloud_format": p.format.label(), "href": p.href,
                               "visibility": p.visibility.to_string(), "product": reference(item, &p.asset_key)})
                    })
                    .collect();
                json!({"id": item.id, "collection": item.collection, "self": item.self_href(), "products": products})
            })
            .collect();
        println!("{}", Value::Array(listed));
        return ExitCode::SUCCESS;
    }
    let rows: Vec<[String; 4]> = found
        .iter()
        .map(|(item, cluster)| {
            let time = format!("{}..{}", date(item.start_datetime()), date(item.end_datetime()));
            let products: Vec<String> =
                cluster.products().iter().map(|p| format!("{} ({})", p.asset_key, p.format)).collect();
            [item.id.clone(), item.collection.clone().unwrap_or_default(), time, products.join(", ")]
        })
        .collect();
    let header = ["ITEM", "COLLECTION", "TIME", "PRODUCTS"].map(str::to_owned);
    let widths: Vec<usize> =
        (0..3).map(|c| rows.iter().chain([&header]).map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for row in [&header].into_iter().chain(&rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    println!("\n{} items; `cloudify datapoint info ITEM_URL[#ASSET]` on one of:", found.len());
    for (item, cluster) in &found {
        for product in cluster.products() {
            println!("  {}", reference(item, &product.asset_key));
        }
    }
    ExitCode::SUCCESS
}

/// `ITEM_URL#ASSET`, or the product id when the item has no `self` link.
fn reference(item: &Item, asset: &str) -> String {
    item.self_href().map_or_else(|| format!("{}-{asset}", item.id), |url| format!("{url}#{asset}"))
}

/// The date part of an RFC 3339 timestamp.
fn date(timestamp: Option<&str>) -> &str {
    timestamp.map_or("", |t| t.split('T').next().unwrap_or(t))
}

/// The product `text` names (`ITEM_URL#ASSET`), or its item's preferred one.
fn product(text: &str, check: bool) -> Result<(Item, Product), cloudify_datapoint::Error> {
    let (url, asset) = product_reference(text);
    let item = Item::fetch(url, &Mapper::default())?;
    let options = ProductOptions { check_reachable: check, show_unreachable: true, ..Default::default() };
    let product = item.products(&options).get(asset)?.clone();
    Ok((item, product))
}

fn info(text: &str, check: bool) -> ExitCode {
    let (url, asset) = product_reference(text);
    if asset.is_none() {
        let item = match Item::fetch(url, &Mapper::default()) {
            Ok(item) => item,
            Err(err) => return fail(err),
        };
        let options = ProductOptions { check_reachable: check, show_unreachable: true, ..Default::default() };
        print!("{item}{}", item.products(&options));
        return ExitCode::SUCCESS;
    }
    match product(text, check) {
        Ok((_, product)) => {
            print!("{product}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

fn get(args: &GetArgs, config: &Config, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let mut selection = DataSelection { variables: args.variables.clone(), bbox: args.bbox, ..Default::default() };
    if let Some(time) = &args.time {
        match TimeRange::parse(time) {
            Ok(range) => selection.time = Some(range),
            Err(err) => return fail(err),
        }
    }
    for pair in &args.sel {
        let Some((dim, label)) = pair.split_once('=') else { return fail(format!("--sel {pair}: give dim=label")) };
        selection.sel.push((dim.to_owned(), label.to_owned()));
    }
    let product = match product(&args.product, false) {
        Ok((_, product)) => product,
        Err(err) => return fail(err),
    };
    let opener = Opener::new(config.cache.dir().join("scans"), Arc::new(Stores::new()), config.limits.clone());
    let allow = args.allow_targets.clone();
    let written = runtime.block_on(async {
        let opened = tokio::task::spawn_blocking(move || product.open(&opener, &allow)).await;
        let source = opened.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let subset = Subset::of(source, &selection).await.map_err(|e| e.to_string())?;
        for (variable, reason) in subset.left_out() {
            eprintln!("cloudify: {variable} left out: {reason}");
        }
        let chunks = subset.chunks().map_err(|e| e.to_string())?;
        let bar = indicatif::ProgressBar::new(chunks).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chunks, {elapsed} ({eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let read = AtomicU64::new(0);
        let arrays = subset
            .read(args.max_bytes, &|| {
                read.fetch_add(1, Ordering::Relaxed);
                bar.inc(1);
            })
            .await
            .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        subset.write(&args.output, &arrays).map_err(|e| e.to_string())?;
        Ok::<_, String>((read.into_inner(), subset.bytes()))
    });
    match written {
        Ok((chunks, bytes)) => {
            eprintln!("wrote {} ({bytes} bytes of values from {chunks} chunks)", args.output.display());
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

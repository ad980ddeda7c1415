//! Search a STAC API, list each item's cloud products, open the first one and write it (or
//! the variables named) as NetCDF.
//!
//! `cargo run -p cloudify-datapoint --example search -- https://api.stac.ceda.ac.uk out.nc [VAR...]`

use std::{error::Error, path::PathBuf, sync::Arc};

use cloudify_datapoint::{Client, DataSelection, ProductOptions, Search, Subset};
use cloudify_dataset::Limits;
use cloudify_open::Opener;
use cloudify_store::Stores;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: search STAC_API_URL OUT.nc [VAR...]".into());
    };
    let client = Client::open(&url)?;
    let items = client.search(&Search::new().max_items(5))?.collect::<Result<Vec<_>, _>>()?;
    let options = ProductOptions::default();
    for item in &items {
        print!("{}", item.products(&options));
    }
    let product = items
        .iter()
        .find_map(|item| item.products(&options).get(None).ok().cloned())
        .ok_or("no item has a cloud product")?;
    print!("{product}");

    // Products are read through the data core: scans cached in a folder, bytes through the
    // byte stores, within the default limits.
    let opener = Opener::new(std::env::temp_dir().join("datapoint-scans"), Arc::new(Stores::new()), Limits::default());
    let runtime = tokio::runtime::Runtime::new()?;
    let source = runtime.block_on(tokio::task::spawn_blocking(move || product.open(&opener, &[])))??;
    let selection = DataSelection { variables: args.collect(), ..Default::default() };
    let subset = runtime.block_on(Subset::of(source, &selection))?;
    let arrays = runtime.block_on(subset.read(1 << 30, &|| ()))?;
    subset.write(&PathBuf::from(&out), &arrays)?;
    println!("wrote {out} ({} bytes)", subset.bytes());
    Ok(())
}

//! `cloudify-icechunk`: writing Icechunk repositories. `cloudify icechunk ...` runs it (it
//! lives beside the `cloudify` binary), so that only this program links the icechunk crate.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use cloudify_dataset::Limits;
use cloudify_icechunk_plugin::virtualize::{virtualize, Job, INLINE_THRESHOLD};

#[derive(Parser)]
#[command(name = "cloudify icechunk", bin_name = "cloudify icechunk", version, about = "Write Icechunk repositories")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write NetCDF files into a repository as virtual chunks (references into the files),
    /// one commit; several files are joined along --concat-dim (default: their unlimited
    /// dimension).
    Virtualize {
        /// NetCDF3 or NetCDF4 files, in the order they join.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The repository: a local folder or s3://bucket/prefix (AWS_* settings).
        #[arg(long)]
        repo: String,
        /// The dimension the files join along.
        #[arg(long)]
        concat_dim: Option<String>,
        /// The branch to commit to (created from main when missing).
        #[arg(long, default_value = "main")]
        branch: String,
        /// The commit message.
        #[arg(long, short)]
        message: Option<String>,
        /// PREFIX=URL: files under the local PREFIX are read by clients from URL
        /// (s3://, http(s)://); repeatable. Other files are referenced as file:// URLs.
        #[arg(long, value_parser = container)]
        container: Vec<(String, String)>,
        /// Add the files along the concatenated dimension to the branch's arrays (a new
        /// snapshot; the arrays must hold whole chunks along it).
        #[arg(long)]
        append: bool,
        /// Stored chunks smaller than this many bytes are copied in as native chunks.
        #[arg(long, default_value_t = INLINE_THRESHOLD)]
        inline_threshold: u64,
    },
}

fn container(text: &str) -> Result<(String, String), String> {
    let (prefix, url) = text.split_once('=').ok_or("give PREFIX=URL")?;
    if prefix.is_empty() || url.is_empty() {
        return Err("give PREFIX=URL".to_owned());
    }
    Ok((prefix.to_owned(), url.to_owned()))
}

fn main() -> ExitCode {
    let Command::Virtualize { files, repo, concat_dim, branch, message, container, append, inline_threshold } =
        Cli::parse().command;
    let job = Job { files, repo, concat_dim, branch, message, containers: container, append, inline_threshold };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cloudify: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(virtualize(&job, &Limits::default())) {
        Ok(written) => {
            println!(
                "snapshot {} on '{}': {} arrays, {} virtual chunks, {} native chunks",
                written.snapshot, job.branch, written.arrays, written.virtual_chunks, written.native_chunks
            );
            for prefix in &written.containers {
                println!("virtual chunk container {prefix} (readers authorize it)");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cloudify: {err}");
            ExitCode::FAILURE
        }
    }
}

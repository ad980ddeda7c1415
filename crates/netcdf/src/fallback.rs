//! Reading chunks through libnetcdf, for variables whose chunks are not byte ranges.

use std::path::PathBuf;

use cloudify_dataset::{pad_chunk, Error, FallbackReader, Result, VariableMeta};

/// Reads chunks of one file through libnetcdf (which decodes every filter it has plugins for).
#[derive(Debug)]
pub struct NetcdfFallback {
    path: PathBuf,
}

impl NetcdfFallback {
    /// A reader of the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl FallbackReader for NetcdfFallback {
    fn read_chunk(&self, name: &str, var: &VariableMeta, index: &[u64]) -> Result<Vec<u8>> {
        // Per thread in libhdf5: see hdf::scan.
        hdf5_metno::silence_errors(true);
        let read = |e: netcdf::Error| Error::Read(format!("{}: {name}: {e}", self.path.display()));
        let file = netcdf::open(&self.path).map_err(read)?;
        let variable = file.variable(name).ok_or_else(|| Error::Read(format!("{}: no variable {name}", self.path.display())))?;
        let start: Vec<u64> = index.iter().zip(&var.chunks).map(|(i, c)| i * c).collect();
        let count: Vec<u64> = start.iter().zip(&var.shape).zip(&var.chunks).map(|((s, n), c)| (*c).min(n - s)).collect();
        let extents: Vec<std::ops::Range<usize>> =
            start.iter().zip(&count).map(|(&s, &c)| s as usize..(s + c) as usize).collect();
        // libnetcdf converts to the machine's (little-endian) order.
        let values = variable.get_raw_values(extents.as_slice()).map_err(read)?;
        Ok(pad_chunk(&values, &count, var))
    }
}

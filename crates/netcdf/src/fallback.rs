//! Reading chunks through libnetcdf, for variables whose chunks are not byte ranges.

use std::{ops::Range, path::PathBuf};

use cloudify_dataset::{fill_element, hyperslab::unravel, pad_chunk, Error, FallbackReader, Result, VariableMeta};

/// Reads chunks of one group of one file through libnetcdf (which decodes every filter it
/// has plugins for).
#[derive(Debug)]
pub struct NetcdfFallback {
    path: PathBuf,
    group: Option<String>,
}

impl NetcdfFallback {
    /// A reader of the group at `group` (a path such as `forecast/members`; `None`: the root)
    /// of the file at `path`.
    pub fn new(path: impl Into<PathBuf>, group: Option<&str>) -> Self {
        Self { path: path.into(), group: group.map(str::to_owned) }
    }
}

impl FallbackReader for NetcdfFallback {
    fn read_chunk(&self, name: &str, var: &VariableMeta, index: &[u64]) -> Result<Vec<u8>> {
        let _library = crate::one_handle_at_a_time();
        // Per thread in libhdf5: see hdf::scan.
        hdf5_metno::silence_errors(true);
        let location = || format!("{}: {name}", self.path.display());
        let read = |e: netcdf::Error| Error::Library { location: location(), reason: e.to_string() };
        let file = netcdf::open(&self.path).map_err(read)?;
        let path = match &self.group {
            Some(group) => format!("{group}/{name}"),
            None => name.to_owned(),
        };
        let variable = file
            .variable(&path)
            .ok_or_else(|| Error::Library { location: location(), reason: "no such variable".into() })?;
        let start: Vec<u64> = index.iter().zip(&var.chunks).map(|(i, c)| i * c).collect();
        let count: Vec<u64> =
            start.iter().zip(&var.shape).zip(&var.chunks).map(|((s, n), c)| (*c).min(n - s)).collect();
        let extents: Vec<Range<usize>> =
            start.iter().zip(&count).map(|(&s, &c)| s as usize..(s + c) as usize).collect();
        // libnetcdf hands strings out as C pointers, one per element.
        let values = variable.get_raw_values(extents.as_slice()).map_err(read)?;
        if var.dtype.is_variable_length() {
            return Ok(string_chunk(values, &count, var));
        }
        // libnetcdf converts to the machine's (little-endian) order.
        Ok(pad_chunk(&values, &count, var))
    }
}

/// The strings libnetcdf wrote into `pointers` (a block of `count` elements), as a full chunk
/// of `var` in `cloudify_sdk::strings` layout, padded with the fill value; frees them.
#[allow(unsafe_code)]
fn string_chunk(mut pointers: Vec<u8>, count: &[u64], var: &VariableMeta) -> Vec<u8> {
    let n = pointers.len() / std::mem::size_of::<*mut std::ffi::c_char>();
    let read: Vec<Vec<u8>> = pointers
        .chunks_exact(std::mem::size_of::<usize>())
        .map(|word| {
            let address = usize::from_ne_bytes(word.try_into().unwrap_or_default());
            let pointer = std::ptr::with_exposed_provenance::<std::ffi::c_char>(address);
            if pointer.is_null() {
                // An element of a variable without fill mode that was never written.
                return Vec::new();
            }
            // SAFETY: libnetcdf filled the buffer with `n` pointers to NUL-terminated strings
            // (or null), alive until nc_free_string below.
            unsafe { std::ffi::CStr::from_ptr(pointer) }.to_bytes().to_vec()
        })
        .collect();
    // SAFETY: the `n` pointers were allocated by libnetcdf for this read and are freed once
    // (under the library lock the caller holds).
    unsafe { netcdf_sys::nc_free_string(n, pointers.as_mut_ptr().cast()) };
    let fill = fill_element(var);
    let total = var.chunks.iter().product::<u64>();
    let mut next = read.iter();
    cloudify_dataset::strings::encode((0..total).map(|flat| {
        let inside = unravel(flat, &var.chunks).iter().zip(count).all(|(i, c)| i < c);
        // The block fills the chunk's leading corner in C order, so its items come in turn.
        if inside {
            next.next().map_or(&fill[..], Vec::as_slice)
        } else {
            &fill[..]
        }
    }))
}

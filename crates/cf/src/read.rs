//! Values read through the host (region reads: only the chunks a block touches), decoded.

use cloudify_sdk::{
    meta::{DataType, VariableMeta},
    Error, ErrorKind, Host, HostExt,
};

use crate::values::{from_le_bytes, Decoding};

/// The block `start`/`count` of variable `name` of `dataset`, decoded ([`Decoding::of`]):
/// masked values are NaN.
///
/// # Errors
/// What the host's region read fails with (404, 413 over `max_region_bytes`, ...); text
/// variables are refused (400).
pub async fn block(
    host: &Host,
    dataset: &str,
    name: &str,
    var: &VariableMeta,
    start: &[u64],
    count: &[u64],
) -> Result<Vec<f64>, Error> {
    if matches!(var.dtype, DataType::Char | DataType::String) {
        return Err(Error::new(ErrorKind::INVALID_INPUT, format!("'{name}' holds text, not numbers")));
    }
    let bytes = host.region(dataset, name, start, count).await?;
    let mut values = from_le_bytes(&bytes, var.dtype);
    Decoding::of(var).apply(&mut values);
    Ok(values)
}

/// Every value of variable `name`, decoded, when it holds at most `max_bytes`.
///
/// # Errors
/// As [`block`]; 413 for a variable over `max_bytes`.
pub async fn all(
    host: &Host,
    dataset: &str,
    name: &str,
    var: &VariableMeta,
    max_bytes: u64,
) -> Result<Vec<f64>, Error> {
    let count: u64 = var.shape.iter().product();
    if count.saturating_mul(var.dtype.size() as u64) > max_bytes {
        let message = format!("'{name}' holds more than {max_bytes} bytes");
        return Err(Error::new(ErrorKind::TOO_LARGE, message));
    }
    block(host, dataset, name, var, &vec![0; var.shape.len()], &var.shape).await
}

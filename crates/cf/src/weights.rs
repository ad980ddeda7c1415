//! Area weights of a variable's horizontal cells, for area means (CDO's `fldmean`): the
//! variable's `cell_measures` area when the dataset has it; else cos(latitude) on
//! latitude/longitude grids (cos of the rotated latitude on rotated grids, where cell areas
//! follow it), and equal weights for HEALPix cells (equal area by construction) and for
//! unstructured cells without an area.

use cloudify_sdk::{meta::DatasetMeta, Error, Host};

use crate::{grid::in_radians, read, text, Grid};

/// Coordinates and areas larger than this are not read.
const MAX_BYTES: u64 = 256 << 20;

/// The area variable named by `cell_measures = "area: NAME"`, if the dataset has it.
pub fn cell_area<'a>(meta: &'a DatasetMeta, var: &str) -> Option<&'a str> {
    let measures = text(meta.variables.get(var)?, "cell_measures")?;
    let (_, rest) = measures.split_once("area:")?;
    let name = rest.split_whitespace().next()?;
    meta.variables.get_key_value(name).map(|(name, _)| name.as_str())
}

/// The values of row-major `all` (of `shape`) at `positions` (one list per axis), row-major.
pub fn at_positions(all: &[f64], shape: &[u64], positions: &[Vec<usize>]) -> Vec<f64> {
    let strides: Vec<usize> = (0..shape.len()).map(|d| shape[d + 1..].iter().product::<u64>() as usize).collect();
    let total: usize = positions.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0usize; positions.len()];
    for _ in 0..total {
        let flat: usize = index.iter().enumerate().map(|(d, &i)| positions[d][i] * strides[d]).sum();
        out.push(all.get(flat).copied().unwrap_or(f64::NAN));
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < positions[d].len() {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// The area weights of the cells of variable `var` at `positions` (one list per grid
/// dimension, in [`Grid::dimensions`] order), row-major; NaN areas weigh 0.
///
/// # Errors
/// What reading the area or the latitudes fails with.
pub async fn area(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    grid: &Grid,
    positions: &[Vec<usize>],
) -> Result<Vec<f64>, Error> {
    let cells: usize = positions.iter().map(Vec::len).product();
    let dims = grid.dimensions(meta);
    if let Some(area) = cell_area(meta, var) {
        let area_var = &meta.variables[area];
        // The area's own dimension order, each picked like the grid's dimension of that name.
        let picks: Option<Vec<Vec<usize>>> = area_var
            .dimensions
            .iter()
            .map(|d| dims.iter().position(|g| g == d).map(|i| positions[i].clone()))
            .collect();
        if let Some(picks) = picks.filter(|p| p.len() == dims.len()) {
            let all = read::all(host, &meta.id, area, area_var, MAX_BYTES).await?;
            let mut weights = at_positions(&all, &area_var.shape, &picks);
            if area_var.dimensions != dims {
                // Laid out in the area's order: put it in the grid's.
                weights = reorder(&weights, &area_var.dimensions, &dims, &picks);
            }
            return Ok(weights.into_iter().map(|w| if w.is_nan() { 0.0 } else { w }).collect());
        }
    }
    let cos = |name: &str, degrees_of: &[f64]| -> Vec<f64> {
        let radians = meta.variables.get(name).is_some_and(in_radians);
        degrees_of.iter().map(|&v| if radians { v.cos() } else { v.to_radians().cos() }.max(0.0)).collect()
    };
    match grid {
        Grid::Healpix { .. } | Grid::Unstructured { .. } => Ok(vec![1.0; cells]),
        Grid::Regular { lat, .. } | Grid::Rotated { rlat: lat, .. } => {
            let values = read::all(host, &meta.id, lat, &meta.variables[lat], MAX_BYTES).await?;
            let rows = cos(lat, &positions[0].iter().map(|&i| values[i]).collect::<Vec<_>>());
            let columns = positions.get(1).map_or(1, Vec::len);
            Ok(rows.iter().flat_map(|&w| std::iter::repeat_n(w, columns)).collect())
        }
        Grid::Curvilinear { lat, .. } => {
            let lat_var = &meta.variables[lat];
            let values = read::all(host, &meta.id, lat, lat_var, MAX_BYTES).await?;
            Ok(cos(lat, &at_positions(&values, &lat_var.shape, positions)))
        }
    }
}

/// Values laid out over `from` dimensions, laid out over `to` (the same names reordered).
fn reorder(values: &[f64], from: &[String], to: &[String], picks_from: &[Vec<usize>]) -> Vec<f64> {
    let lens: Vec<usize> = picks_from.iter().map(Vec::len).collect();
    let strides: Vec<usize> = (0..lens.len()).map(|d| lens[d + 1..].iter().product()).collect();
    let axes: Vec<usize> = to.iter().filter_map(|d| from.iter().position(|f| f == d)).collect();
    let new_lens: Vec<usize> = axes.iter().map(|&a| lens[a]).collect();
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; axes.len()];
    for _ in 0..values.len() {
        out.push(values[index.iter().zip(&axes).map(|(&i, &a)| i * strides[a]).sum::<usize>()]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < new_lens[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_layouts() {
        let all = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        assert_eq!(at_positions(&all, &[2, 3], &[vec![1, 0], vec![2, 0]]), [12.0, 10.0, 2.0, 0.0]);
        let (from, to) = (["x".to_owned(), "y".to_owned()], ["y".to_owned(), "x".to_owned()]);
        assert_eq!(
            reorder(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &from, &to, &[vec![0, 1], vec![0, 1, 2]]),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}

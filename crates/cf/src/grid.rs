//! Coordinate roles (from `axis`, `standard_name`, `units`, `positive`) and the horizontal grid
//! a variable lies on: regular (1-D latitude and longitude), curvilinear (2-D auxiliary
//! coordinates named by `coordinates`), unstructured cells (ICON's `clat`/`clon`, UGRID meshes),
//! rotated pole (`rotated_latitude_longitude`, true positions computed when the file has no
//! auxiliary latitude/longitude) and HEALPix (a `crs` with `grid_mapping_name = "healpix"`).

use cloudify_sdk::meta::{DataType, DatasetMeta, VariableMeta};

use crate::{number, text};

/// What a coordinate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Latitude (degrees north or radians).
    Latitude,
    /// Longitude (degrees east or radians).
    Longitude,
    /// CF time (`<unit> since <date>`).
    Time,
    /// Height, depth, pressure or a model level (`axis = "Z"`, `positive`).
    Vertical,
    /// A projection's or rotated grid's x (`axis = "X"`, `grid_longitude`, ...).
    X,
    /// A projection's or rotated grid's y.
    Y,
    /// Anything else (ensemble member, band, ...).
    Other,
}

const LATITUDE_UNITS: [&str; 6] = ["degrees_north", "degree_north", "degree_N", "degrees_N", "degreeN", "degreesN"];
const LONGITUDE_UNITS: [&str; 6] = ["degrees_east", "degree_east", "degree_E", "degrees_E", "degreeE", "degreesE"];
const VERTICAL_NAMES: [&str; 8] = [
    "air_pressure",
    "altitude",
    "depth",
    "height",
    "height_above_mean_sea_level",
    "model_level_number",
    "atmosphere_hybrid_sigma_pressure_coordinate",
    "atmosphere_hybrid_height_coordinate",
];

fn axis_is(var: &VariableMeta, axis: &str) -> bool {
    text(var, "axis").is_some_and(|a| a.eq_ignore_ascii_case(axis))
}

/// Whether `var` holds angles in radians (ICON's cell centres).
pub fn in_radians(var: &VariableMeta) -> bool {
    text(var, "units").is_some_and(|u| u.starts_with("rad"))
}

/// The role of coordinate `name`. CF's own attributes decide; names (`lat`, `lon`,
/// `nav_lat`, ...) only when the variable has no `standard_name`.
pub fn role_of(name: &str, var: &VariableMeta) -> Role {
    let standard = text(var, "standard_name");
    let units = text(var, "units").unwrap_or_default();
    if units.contains(" since ") && var.dtype != DataType::Char && var.dtype != DataType::String {
        return Role::Time;
    }
    let unnamed = standard.is_none();
    if standard == Some("latitude")
        || LATITUDE_UNITS.contains(&units)
        || (unnamed && matches!(name, "lat" | "latitude" | "nav_lat"))
    {
        return Role::Latitude;
    }
    if standard == Some("longitude")
        || LONGITUDE_UNITS.contains(&units)
        || (unnamed && matches!(name, "lon" | "longitude" | "nav_lon"))
    {
        return Role::Longitude;
    }
    if matches!(standard, Some("grid_longitude" | "projection_x_coordinate")) || axis_is(var, "x") {
        return Role::X;
    }
    if matches!(standard, Some("grid_latitude" | "projection_y_coordinate")) || axis_is(var, "y") {
        return Role::Y;
    }
    if axis_is(var, "z") || text(var, "positive").is_some() || standard.is_some_and(|s| VERTICAL_NAMES.contains(&s)) {
        return Role::Vertical;
    }
    Role::Other
}

/// The ordering of HEALPix cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// `nest`/`nested`.
    Nested,
    /// `ring`.
    Ring,
}

/// A HEALPix grid: `nside` (a power of two) and the cells' ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Healpix {
    /// Cells per side of each of the 12 base cells.
    pub nside: u32,
    /// How cell numbers run.
    pub ordering: Ordering,
}

impl Healpix {
    /// Largest `nside` whose cell numbers fit the u64 cdshealpix computes with (depth 29).
    const MAX_DEPTH: u8 = 29;

    fn depth(self) -> u8 {
        self.nside.trailing_zeros() as u8
    }

    /// How many cells the sphere has at this resolution.
    pub fn cells(self) -> u64 {
        12 * u64::from(self.nside) * u64::from(self.nside)
    }

    /// The centre of cell `cell` as (longitude, latitude) in degrees; `None` for a cell
    /// number the grid does not have.
    pub fn centre(self, cell: u64) -> Option<(f64, f64)> {
        let (lon, lat) = match self.ordering {
            _ if cell >= self.cells() => return None,
            Ordering::Nested => cdshealpix::nested::center(self.depth(), cell),
            Ordering::Ring => cdshealpix::ring::center(self.nside, cell),
        };
        Some((wrap_degrees(lon.to_degrees()), lat.to_degrees()))
    }

    /// The four corners of cell `cell` (south, east, north, west) as (longitude, latitude)
    /// in degrees.
    pub fn corners(self, cell: u64) -> Option<[(f64, f64); 4]> {
        let corners = match self.ordering {
            _ if cell >= self.cells() => return None,
            Ordering::Nested => cdshealpix::nested::vertices(self.depth(), cell),
            Ordering::Ring => cdshealpix::ring::vertices(self.nside, cell),
        };
        Some(corners.map(|(lon, lat)| (wrap_degrees(lon.to_degrees()), lat.to_degrees())))
    }

    /// The outline of cell `cell` as (longitude, latitude) in degrees, for drawing on a
    /// longitude/latitude plane: each edge cut into `steps` pieces, straight in longitude
    /// and sin(latitude) (where HEALPix edges are straight), longitudes continuous around
    /// the cell (they may pass ±180), and a corner at a pole drawn as the pole's stretch
    /// between the meridians of its neighbours.
    pub fn outline(self, cell: u64, steps: usize) -> Option<Vec<(f64, f64)>> {
        let corners = self.corners(cell)?;
        let reference = corners.iter().find(|c| c.1.abs() < 89.999).map_or(0.0, |c| c.0);
        let unwrap = |lon: f64| reference + wrap_degrees(lon - reference);
        let at_pole = |c: &(f64, f64)| c.1.abs() >= 89.999;
        let steps = steps.max(1);
        let mut outline = Vec::with_capacity(4 * steps + 2);
        for i in 0..4 {
            let (a, b) = (corners[i], corners[(i + 1) % 4]);
            // A pole has no longitude: it takes its neighbour's on each side.
            let a_lon = unwrap(if at_pole(&a) { b.0 } else { a.0 });
            let b_lon = unwrap(if at_pole(&b) { a.0 } else { b.0 });
            let (za, zb) = (a.1.to_radians().sin(), b.1.to_radians().sin());
            // An edge leaving a pole starts where the pole's stretch ended.
            for k in usize::from(at_pole(&a))..steps {
                let t = k as f64 / steps as f64;
                outline.push((a_lon + t * (b_lon - a_lon), (za + t * (zb - za)).clamp(-1.0, 1.0).asin().to_degrees()));
            }
            if at_pole(&b) {
                // The pole's stretch towards the next neighbour's meridian.
                let next = corners[(i + 2) % 4];
                outline.push((b_lon, b.1));
                outline.push((unwrap(next.0), b.1));
            }
        }
        Some(outline)
    }

    /// The grid a `crs`-like variable declares (`grid_mapping_name = "healpix"`,
    /// `healpix_nside`, `healpix_order`); `None` for anything else or an `nside` that is
    /// no power of two up to 2^29.
    pub fn of(crs: &VariableMeta) -> Option<Self> {
        if text(crs, "grid_mapping_name") != Some("healpix") {
            return None;
        }
        let nside = crs.attributes.get("healpix_nside").and_then(number)?;
        let valid = nside >= 1.0 && nside.fract() == 0.0 && nside <= f64::from(1u32 << Self::MAX_DEPTH);
        let nside = Some(nside as u32).filter(|n| valid && n.is_power_of_two())?;
        let ordering = match text(crs, "healpix_order").map(str::to_ascii_lowercase).as_deref() {
            Some("ring") => Ordering::Ring,
            Some("nest" | "nested") | None => Ordering::Nested,
            Some(_) => return None,
        };
        Some(Self { nside, ordering })
    }
}

/// A longitude in degrees moved into −180–180.
pub fn wrap_degrees(lon: f64) -> f64 {
    let wrapped = (lon + 180.0).rem_euclid(360.0) - 180.0;
    // 180 stays 180 rather than becoming −180: a grid's east edge.
    if wrapped == -180.0 && lon > 0.0 {
        180.0
    } else {
        wrapped
    }
}

/// A rotated pole (CF `rotated_latitude_longitude`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedPole {
    /// `grid_north_pole_latitude`, degrees.
    pub north_pole_latitude: f64,
    /// `grid_north_pole_longitude`, degrees.
    pub north_pole_longitude: f64,
}

impl RotatedPole {
    /// The pole a grid mapping variable declares; `None` for another mapping, or a
    /// `north_pole_grid_longitude` other than 0 (not handled).
    pub fn of(mapping: &VariableMeta) -> Option<Self> {
        if text(mapping, "grid_mapping_name") != Some("rotated_latitude_longitude") {
            return None;
        }
        let get = |name: &str| mapping.attributes.get(name).and_then(number);
        if get("north_pole_grid_longitude").is_some_and(|g| g != 0.0) {
            return None;
        }
        Some(Self {
            north_pole_latitude: get("grid_north_pole_latitude")?,
            north_pole_longitude: get("grid_north_pole_longitude")?,
        })
    }

    /// The true (longitude, latitude) in degrees of rotated position (`rlon`, `rlat`).
    pub fn to_true(self, rlon: f64, rlat: f64) -> (f64, f64) {
        let (sin_pole, cos_pole) = self.north_pole_latitude.to_radians().sin_cos();
        let pole_lon = self.north_pole_longitude.to_radians();
        let (sin_lat, cos_lat) = rlat.to_radians().sin_cos();
        let (sin_lon, cos_lon) = rlon.to_radians().sin_cos();
        let lat = (sin_pole * sin_lat + cos_pole * cos_lat * cos_lon).clamp(-1.0, 1.0).asin();
        let towards = -sin_pole * cos_lon * cos_lat + cos_pole * sin_lat;
        let x = pole_lon.cos() * towards + pole_lon.sin() * sin_lon * cos_lat;
        let y = pole_lon.sin() * towards - pole_lon.cos() * sin_lon * cos_lat;
        (wrap_degrees(y.atan2(x).to_degrees()), lat.to_degrees())
    }
}

/// The horizontal grid a variable lies on; coordinate names are variables of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Grid {
    /// 1-D latitude and longitude, each along a dimension of its own.
    Regular {
        /// The latitude coordinate (its dimension has the same name, or is its only one).
        lat: String,
        /// The longitude coordinate.
        lon: String,
    },
    /// 2-D latitude and longitude over the same two dimensions (`coordinates` attribute).
    Curvilinear {
        /// The latitude coordinate.
        lat: String,
        /// The longitude coordinate.
        lon: String,
    },
    /// Cells along one dimension, with 1-D latitude and longitude of that dimension.
    Unstructured {
        /// The latitude of each cell.
        lat: String,
        /// The longitude of each cell.
        lon: String,
    },
    /// A rotated-pole grid without true latitude/longitude in the file.
    Rotated {
        /// The rotated latitude (`grid_latitude`).
        rlat: String,
        /// The rotated longitude (`grid_longitude`).
        rlon: String,
        /// The pole.
        pole: RotatedPole,
    },
    /// HEALPix cells along the variable's last dimension.
    Healpix {
        /// The grid.
        grid: Healpix,
        /// The dimension of the cells.
        cell_dim: String,
        /// A coordinate holding each position's cell number (a regional subset); without
        /// it, position `i` is cell `i`.
        cells: Option<String>,
    },
}

impl Grid {
    /// The dataset dimensions the grid spans, in the order values are laid out for it
    /// (latitude's then longitude's for regular and rotated grids; the coordinates' own for
    /// curvilinear grids; the cells' for unstructured and HEALPix ones).
    pub fn dimensions(&self, meta: &DatasetMeta) -> Vec<String> {
        let dims_of = |name: &str| meta.variables.get(name).map(|v| v.dimensions.clone()).unwrap_or_default();
        match self {
            Self::Regular { lat, lon } | Self::Rotated { rlat: lat, rlon: lon, .. } => {
                let mut dims = dims_of(lat);
                dims.extend(dims_of(lon));
                dims
            }
            Self::Curvilinear { lat, .. } | Self::Unstructured { lat, .. } => dims_of(lat),
            Self::Healpix { cell_dim, .. } => vec![cell_dim.clone()],
        }
    }

    /// The names a selection of this grid's latitude and longitude may use: the coordinates'
    /// own names where the file has true latitude/longitude, else `lat` and `lon`.
    pub fn latitude_longitude_names(&self) -> [String; 2] {
        match self {
            Self::Regular { lat, lon } | Self::Curvilinear { lat, lon } | Self::Unstructured { lat, lon } => {
                [lat.clone(), lon.clone()]
            }
            Self::Rotated { .. } | Self::Healpix { .. } => ["lat".to_owned(), "lon".to_owned()],
        }
    }
}

/// The variables `var` names as coordinates: its dimensions' coordinate variables, its
/// `coordinates` attribute, and a UGRID mesh's coordinates for its `location`.
fn coordinates_of<'a>(meta: &'a DatasetMeta, var: &'a VariableMeta) -> Vec<(&'a str, &'a VariableMeta)> {
    let mut names: Vec<&str> = var.dimensions.iter().map(String::as_str).collect();
    names.extend(text(var, "coordinates").unwrap_or_default().split_whitespace());
    if let Some(mesh) = text(var, "mesh").and_then(|m| meta.variables.get(m)) {
        let key = match text(var, "location") {
            Some("node") => "node_coordinates",
            Some("edge") => "edge_coordinates",
            _ => "face_coordinates",
        };
        names.extend(text(mesh, key).unwrap_or_default().split_whitespace());
    }
    let mut seen = Vec::new();
    for name in names {
        if let Some((name, coord)) = meta.variables.get_key_value(name) {
            let fits = coord.dimensions.iter().all(|d| var.dimensions.contains(d));
            if fits && !seen.iter().any(|(n, _)| *n == name.as_str()) {
                seen.push((name.as_str(), coord));
            }
        }
    }
    seen
}

/// The horizontal grid of variable `name` of `meta`, or `None` when it has none this crate
/// knows (no latitude/longitude, or coordinates of mismatched shapes).
pub fn grid_of(meta: &DatasetMeta, name: &str) -> Option<Grid> {
    let var = meta.variables.get(name)?;
    let mapping = text(var, "grid_mapping").and_then(|m| meta.variables.get(m.split(':').next()?.trim()));
    let healpix = mapping.and_then(Healpix::of).or_else(|| {
        // Files without `grid_mapping` on each variable: one HEALPix crs, cells last.
        let mut declared = meta.variables.values().filter_map(Healpix::of);
        let grid = declared.next().filter(|_| declared.next().is_none())?;
        let last = meta.dimensions.get(var.dimensions.last()?)?;
        (*last <= grid.cells() && var.dimensions.last().is_some_and(|d| d == "cell" || d == "cells")).then_some(grid)
    });
    if let Some(grid) = healpix {
        let cell_dim = var.dimensions.last()?.clone();
        let cells = meta
            .variables
            .get(&cell_dim)
            .filter(|c| c.dimensions == [cell_dim.clone()] && crate::values::is_integer(c.dtype))
            .map(|_| cell_dim.clone());
        return Some(Grid::Healpix { grid, cell_dim, cells });
    }
    let coords = coordinates_of(meta, var);
    let find = |role: Role| coords.iter().find(|(n, c)| role_of(n, c) == role);
    if let (Some((lat, lat_var)), Some((lon, lon_var))) = (find(Role::Latitude), find(Role::Longitude)) {
        let (lat, lon) = (lat.to_string(), lon.to_string());
        return match (lat_var.dimensions.as_slice(), lon_var.dimensions.as_slice()) {
            ([y], [x]) if y != x => Some(Grid::Regular { lat, lon }),
            ([a], [b]) if a == b => Some(Grid::Unstructured { lat, lon }),
            ([y1, x1], [y2, x2]) if y1 == y2 && x1 == x2 => Some(Grid::Curvilinear { lat, lon }),
            _ => None,
        };
    }
    let pole = mapping.and_then(RotatedPole::of)?;
    let (rlat, _) = find(Role::Y)?;
    let (rlon, _) = find(Role::X)?;
    Some(Grid::Rotated { rlat: rlat.to_string(), rlon: rlon.to_string(), pole })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// A dataset from `(name, dtype, dimensions, attributes)`; dimension sizes 4.
    fn dataset(vars: &[(&str, &str, &[&str], Value)]) -> DatasetMeta {
        let mut variables = serde_json::Map::new();
        let mut dims = serde_json::Map::new();
        for (name, dtype, dimensions, attributes) in vars {
            for d in *dimensions {
                dims.insert((*d).to_owned(), json!(4));
            }
            let shape: Vec<u64> = dimensions.iter().map(|_| 4).collect();
            variables.insert(
                (*name).to_owned(),
                json!({"dtype": dtype, "dimensions": dimensions, "shape": shape, "chunks": shape, "attributes": attributes}),
            );
        }
        serde_json::from_value(json!({"id": "d", "dimensions": dims, "variables": variables})).unwrap()
    }

    #[test]
    fn roles_from_attributes_then_names() {
        let meta = dataset(&[
            ("t", "float64", &["t"], json!({"units": "hours since 2000-01-01"})),
            ("y", "float32", &["y"], json!({"units": "degrees_north"})),
            ("clon", "float64", &["cell"], json!({"standard_name": "longitude", "units": "radian"})),
            ("lat", "float32", &["lat"], json!({})),
            ("rlat", "float32", &["rlat"], json!({"standard_name": "grid_latitude", "units": "degrees"})),
            ("plev", "float64", &["plev"], json!({"positive": "down"})),
            ("lev", "float64", &["lev"], json!({"axis": "Z"})),
            ("lat2", "float64", &["lat2"], json!({"standard_name": "air_temperature"})),
            ("member", "int32", &["member"], json!({})),
        ]);
        let role = |n: &str| role_of(n, &meta.variables[n]);
        assert_eq!(role("t"), Role::Time);
        assert_eq!(role("y"), Role::Latitude);
        assert_eq!(role("clon"), Role::Longitude);
        assert!(in_radians(&meta.variables["clon"]));
        assert_eq!(role("lat"), Role::Latitude);
        assert_eq!(role("rlat"), Role::Y);
        assert_eq!((role("plev"), role("lev")), (Role::Vertical, Role::Vertical));
        // A standard_name that says otherwise wins over the name.
        assert_eq!((role("lat2"), role("member")), (Role::Other, Role::Other));
    }

    #[test]
    fn regular_curvilinear_and_unstructured_grids() {
        let meta = dataset(&[
            ("lat", "float64", &["lat"], json!({"units": "degrees_north"})),
            ("lon", "float64", &["lon"], json!({"units": "degrees_east"})),
            ("tas", "float32", &["time", "lat", "lon"], json!({})),
            ("nav_lat", "float32", &["y", "x"], json!({"standard_name": "latitude"})),
            ("nav_lon", "float32", &["y", "x"], json!({"standard_name": "longitude"})),
            ("sst", "float32", &["y", "x"], json!({"coordinates": "nav_lon nav_lat"})),
            ("clat", "float64", &["ncells"], json!({"standard_name": "latitude", "units": "radian"})),
            ("clon", "float64", &["ncells"], json!({"standard_name": "longitude", "units": "radian"})),
            ("ts", "float32", &["time", "ncells"], json!({"coordinates": "clat clon"})),
            ("mesh", "int32", &[], json!({"cf_role": "mesh_topology", "face_coordinates": "mesh_face_x mesh_face_y"})),
            ("mesh_face_x", "float64", &["nface"], json!({"standard_name": "longitude"})),
            ("mesh_face_y", "float64", &["nface"], json!({"standard_name": "latitude"})),
            ("zos", "float32", &["nface"], json!({"mesh": "mesh", "location": "face"})),
            ("flat", "float32", &["time"], json!({})),
        ]);
        assert_eq!(grid_of(&meta, "tas"), Some(Grid::Regular { lat: "lat".into(), lon: "lon".into() }));
        assert_eq!(grid_of(&meta, "sst"), Some(Grid::Curvilinear { lat: "nav_lat".into(), lon: "nav_lon".into() }));
        assert_eq!(grid_of(&meta, "ts"), Some(Grid::Unstructured { lat: "clat".into(), lon: "clon".into() }));
        assert_eq!(
            grid_of(&meta, "zos"),
            Some(Grid::Unstructured { lat: "mesh_face_y".into(), lon: "mesh_face_x".into() })
        );
        assert_eq!(grid_of(&meta, "flat"), None);
        assert_eq!(grid_of(&meta, "nothing"), None);
    }

    #[test]
    fn rotated_poles_give_true_positions() {
        let meta = dataset(&[
            ("rlat", "float64", &["rlat"], json!({"standard_name": "grid_latitude"})),
            ("rlon", "float64", &["rlon"], json!({"standard_name": "grid_longitude"})),
            (
                "rotated_pole",
                "int32",
                &[],
                json!({"grid_mapping_name": "rotated_latitude_longitude",
                       "grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0}),
            ),
            ("tas", "float32", &["rlat", "rlon"], json!({"grid_mapping": "rotated_pole"})),
        ]);
        let Some(Grid::Rotated { rlat, rlon, pole }) = grid_of(&meta, "tas") else { panic!("a rotated grid") };
        assert_eq!((rlat.as_str(), rlon.as_str()), ("rlat", "rlon"));
        // EURO-CORDEX: the rotated origin lies at 18°E 50.75°N; the rotated pole at the pole.
        let (lon, lat) = pole.to_true(0.0, 0.0);
        assert!((lon - 18.0).abs() < 1e-9 && (lat - 50.75).abs() < 1e-9, "{lon} {lat}");
        let (lon, lat) = pole.to_true(0.0, 90.0);
        assert!((lon + 162.0).abs() < 1e-9 && (lat - 39.25).abs() < 1e-9, "{lon} {lat}");
    }

    #[test]
    fn healpix_cells_from_the_crs() {
        let meta = dataset(&[
            ("crs", "int32", &[], json!({"grid_mapping_name": "healpix", "healpix_nside": 2, "healpix_order": "nest"})),
            ("tas", "float32", &["time", "cell"], json!({"grid_mapping": "crs"})),
            ("cell", "int64", &["cell"], json!({})),
        ]);
        let Some(Grid::Healpix { grid, cell_dim, cells }) = grid_of(&meta, "tas") else { panic!("healpix") };
        assert_eq!(
            (grid.nside, grid.ordering, cell_dim.as_str(), cells.as_deref()),
            (2, Ordering::Nested, "cell", Some("cell"))
        );
        assert_eq!(grid.cells(), 48);
        // Nested cell 0 at nside 2: the southern child of base cell 0, at z = 1/3.
        let (lon, lat) = grid.centre(0).unwrap();
        assert!((lon - 45.0).abs() < 1e-9 && (lat - (1.0f64 / 3.0).asin().to_degrees()).abs() < 1e-9, "{lon} {lat}");
        assert_eq!(grid.centre(48), None);
        // Ring and nested number the same cells differently.
        let ring = Healpix { ordering: Ordering::Ring, ..grid };
        let mut nested: Vec<(i64, i64)> =
            (0..48).map(|c| grid.centre(c).unwrap()).map(|(a, b)| ((a * 1e6) as i64, (b * 1e6) as i64)).collect();
        let mut ringed: Vec<(i64, i64)> =
            (0..48).map(|c| ring.centre(c).unwrap()).map(|(a, b)| ((a * 1e6) as i64, (b * 1e6) as i64)).collect();
        nested.sort_unstable();
        ringed.sort_unstable();
        assert_eq!(nested, ringed);
        let outline = grid.outline(0, 4).unwrap();
        assert!(outline.len() >= 16 && outline.iter().all(|(_, lat)| (0.0..=42.0).contains(lat)));
        let polar = Healpix { nside: 1, ordering: Ordering::Nested };
        let cap = polar.outline(0, 2).unwrap();
        assert_eq!(cap.iter().filter(|(_, lat)| *lat >= 89.999).count(), 2, "{cap:?}");
        let corners = grid.corners(0).unwrap();
        assert!(corners.iter().all(|(_, lat)| (0.0..=42.0).contains(lat)), "{corners:?}");
        let odd = |nside: Value| {
            let crs =
                dataset(&[("crs", "int32", &[], json!({"grid_mapping_name": "healpix", "healpix_nside": nside}))]);
            Healpix::of(&crs.variables["crs"])
        };
        assert!(odd(json!(3)).is_none() && odd(json!(0)).is_none() && odd(json!(1u64 << 40)).is_none());
    }
}

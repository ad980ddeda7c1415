//! Longitudes in any convention (0–360, −180–180, radians) brought to degrees in −180–180.
//! A 1-D longitude axis comes with the order to draw its positions in, so that the data are
//! permuted where they are used instead of copied per call.

use crate::grid::wrap_degrees;

/// A 1-D longitude axis in −180–180 degrees, in ascending order.
#[derive(Debug, Clone, PartialEq)]
pub struct Longitudes {
    /// The longitudes, ascending, in degrees within −180–180.
    pub degrees: Vec<f64>,
    /// For each entry of `degrees`, the position along the axis it comes from.
    pub order: Vec<usize>,
}

impl Longitudes {
    /// The axis of `values` (in radians when `radians`), wrapped into −180–180 and sorted.
    pub fn new(values: &[f64], radians: bool) -> Self {
        let wrapped: Vec<f64> =
            values.iter().map(|&v| wrap_degrees(if radians { v.to_degrees() } else { v })).collect();
        let mut order: Vec<usize> = (0..wrapped.len()).collect();
        // A stable sort keeps an axis that is already ascending as it is.
        order.sort_by(|&a, &b| wrapped[a].total_cmp(&wrapped[b]));
        Self { degrees: order.iter().map(|&i| wrapped[i]).collect(), order }
    }

    /// Whether drawing needs no permutation.
    pub fn is_identity(&self) -> bool {
        self.order.iter().enumerate().all(|(i, &o)| i == o)
    }
}

fn min_max(values: &[f64]) -> Option<[f64; 2]> {
    let mut iter = values.iter().copied().filter(|v| v.is_finite());
    let first = iter.next()?;
    Some(iter.fold([first, first], |[lo, hi], v| [lo.min(v), hi.max(v)]))
}

/// West and east edge of longitudes (degrees, any convention) in −180–180: the complement
/// of the widest gap between the covered longitudes, so a region across the antimeridian
/// gets west > east, and a grid covering every longitude −180–180.
pub fn extent(values: &[f64]) -> Option<[f64; 2]> {
    let [lo, hi] = min_max(values)?;
    if hi - lo >= 360.0 {
        return Some([-180.0, 180.0]);
    }
    let mut wrapped: Vec<f64> =
        values.iter().filter(|v| v.is_finite()).map(|v| (v + 180.0).rem_euclid(360.0) - 180.0).collect();
    wrapped.sort_by(f64::total_cmp);
    wrapped.dedup();
    let (first, last) = (*wrapped.first()?, *wrapped.last()?);
    // The gap across the antimeridian, then each gap between neighbours; a gap must be
    // clearly wider to win, so the equal gaps of a regular global grid keep −180–180.
    let mut widest = (first + 360.0 - last, [first, last]);
    for pair in wrapped.windows(2) {
        let gap = pair[1] - pair[0];
        if gap > widest.0 + 1e-6 * widest.0.max(1.0) {
            widest = (gap, [pair[1], pair[0]]);
        }
    }
    Some(widest.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_to_360_becomes_minus_180_to_180_with_its_permutation() {
        let axis = Longitudes::new(&[0.0, 90.0, 180.0, 270.0], false);
        assert_eq!(axis.degrees, [-90.0, 0.0, 90.0, 180.0]);
        assert_eq!(axis.order, [3, 0, 1, 2]);
        let radians = Longitudes::new(&[-std::f64::consts::FRAC_PI_2, 0.0], true);
        assert!(radians.is_identity());
        assert_eq!(radians.degrees, [-90.0, 0.0]);
    }

    #[test]
    fn extents_in_any_convention() {
        let global: Vec<f64> = (0..144).map(|i| f64::from(i) * 2.5).collect();
        assert_eq!(extent(&global), Some([-180.0, 177.5]));
        let bounds: Vec<f64> = (0..=144).map(|i| f64::from(i) * 2.5 - 1.25).collect();
        assert_eq!(extent(&bounds), Some([-180.0, 180.0]));
        // 350–370 east of Greenwich, written in 0–360.
        assert_eq!(extent(&[350.0, 355.0, 0.0, 5.0, 10.0]), Some([-10.0, 10.0]));
        // The Pacific across the antimeridian: west > east.
        assert_eq!(extent(&[170.0, 180.0, 190.0]), Some([170.0, -170.0]));
        assert_eq!(extent(&[-20.0, 40.0]), Some([-20.0, 40.0]));
        // Eight points 0–351: every gap 50.14° up to rounding, so the grid stays in one piece.
        let coarse: Vec<f64> = (0..8).map(|i| f64::from(i) * 351.0 / 7.0).collect();
        let [west, east] = extent(&coarse).unwrap();
        assert!((west + 159.428_571).abs() < 1e-5 && (east - 150.428_571).abs() < 1e-5, "{west} {east}");
        assert_eq!(extent(&[]), None);
    }
}

//! Reductions as xarray computes them by default: NaN skipped (`skipna=True`), `std`/`var`
//! with `ddof=0`, `sum` of nothing 0 and `count` of nothing 0, the rest of nothing NaN.
//! Accumulated one value at a time in f64, so a reduction never holds its inputs, except
//! `median`, which needs them all.

/// A reduction by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Arithmetic mean.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum (0 of nothing).
    Sum,
    /// Number of values (not NaN).
    Count,
    /// Standard deviation, `ddof=0`.
    Std,
    /// Variance, `ddof=0`.
    Var,
    /// Median (the mean of the middle two of an even count).
    Median,
    /// First value.
    First,
    /// Last value.
    Last,
}

impl Reduction {
    /// The names requests use (xarray's method names).
    pub const NAMES: [&'static str; 10] =
        ["mean", "min", "max", "sum", "count", "std", "var", "median", "first", "last"];

    /// The reduction named `name`.
    pub fn named(name: &str) -> Option<Self> {
        let all = [
            Self::Mean,
            Self::Min,
            Self::Max,
            Self::Sum,
            Self::Count,
            Self::Std,
            Self::Var,
            Self::Median,
            Self::First,
            Self::Last,
        ];
        Self::NAMES.iter().position(|n| *n == name).map(|i| all[i])
    }

    /// Whether it keeps every value (`median`).
    pub fn holds_values(self) -> bool {
        self == Self::Median
    }
}

/// One reduction's running state (Welford's algorithm for `std`/`var`).
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    count: u64,
    mean: f64,
    m2: f64,
    sum: f64,
    min: f64,
    max: f64,
    first: Option<f64>,
    last: Option<f64>,
    values: Vec<f64>,
}

impl Accumulator {
    /// Adds `v` (NaN is skipped); `keep` keeps it for a median.
    pub fn push(&mut self, v: f64, keep: bool) {
        if v.is_nan() {
            return;
        }
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.sum += v;
        if self.count == 1 {
            (self.min, self.max) = (v, v);
        } else {
            (self.min, self.max) = (self.min.min(v), self.max.max(v));
        }
        self.first.get_or_insert(v);
        self.last = Some(v);
        if keep {
            self.values.push(v);
        }
    }

    /// The result of `reduction` over what was pushed.
    pub fn finish(&mut self, reduction: Reduction) -> f64 {
        let empty = self.count == 0;
        match reduction {
            Reduction::Count => self.count as f64,
            Reduction::Sum => self.sum,
            _ if empty => f64::NAN,
            Reduction::Mean => self.mean,
            Reduction::Min => self.min,
            Reduction::Max => self.max,
            Reduction::Var => self.m2 / self.count as f64,
            Reduction::Std => (self.m2 / self.count as f64).sqrt(),
            Reduction::First => self.first.unwrap_or(f64::NAN),
            Reduction::Last => self.last.unwrap_or(f64::NAN),
            Reduction::Median => {
                self.values.sort_by(f64::total_cmp);
                let n = self.values.len();
                if n % 2 == 1 {
                    self.values[n / 2]
                } else {
                    (self.values[n / 2 - 1] + self.values[n / 2]) / 2.0
                }
            }
        }
    }
}

/// Many reductions of one kind side by side (one per output value), kept in a few flat
/// arrays: about 20 bytes per slot, values themselves only for `median`.
#[derive(Debug, Clone)]
pub struct Slots {
    reduction: Reduction,
    count: Vec<u64>,
    /// Sum (also for the mean), running mean (std, var), extreme, first or last value.
    a: Vec<f64>,
    /// Welford's M2 for `std`/`var`.
    b: Vec<f64>,
    values: Vec<Vec<f64>>,
}

impl Slots {
    /// `slots` empty reductions.
    pub fn new(reduction: Reduction, slots: usize) -> Self {
        let b = if matches!(reduction, Reduction::Std | Reduction::Var) { vec![0.0; slots] } else { Vec::new() };
        let values = if reduction.holds_values() { vec![Vec::new(); slots] } else { Vec::new() };
        Self { reduction, count: vec![0; slots], a: vec![0.0; slots], b, values }
    }

    /// Adds `v` to slot `slot` (NaN is skipped).
    pub fn push(&mut self, slot: usize, v: f64) {
        if v.is_nan() {
            return;
        }
        self.count[slot] += 1;
        let n = self.count[slot];
        let a = &mut self.a[slot];
        match self.reduction {
            Reduction::Sum | Reduction::Count | Reduction::Mean => *a += v,
            Reduction::Std | Reduction::Var => {
                let delta = v - *a;
                *a += delta / n as f64;
                self.b[slot] += delta * (v - *a);
            }
            Reduction::Min if n == 1 || v < *a => *a = v,
            Reduction::Max if n == 1 || v > *a => *a = v,
            Reduction::First if n == 1 => *a = v,
            Reduction::Last => *a = v,
            Reduction::Median => self.values[slot].push(v),
            Reduction::Min | Reduction::Max | Reduction::First => {}
        }
    }

    /// Adds `values` to the slots from `first` on, one each.
    pub fn push_row(&mut self, first: usize, values: &[f64]) {
        match self.reduction {
            // The common case without a branch per value on the reduction.
            Reduction::Mean | Reduction::Sum | Reduction::Count => {
                let slots = first..first + values.len();
                for ((count, a), &v) in self.count[slots.clone()].iter_mut().zip(&mut self.a[slots]).zip(values) {
                    if !v.is_nan() {
                        *count += 1;
                        *a += v;
                    }
                }
            }
            _ => values.iter().enumerate().for_each(|(i, &v)| self.push(first + i, v)),
        }
    }

    /// Every slot's result.
    pub fn finish(mut self) -> Vec<f64> {
        (0..self.count.len())
            .map(|slot| {
                let n = self.count[slot];
                match self.reduction {
                    Reduction::Count => n as f64,
                    Reduction::Sum => self.a[slot],
                    _ if n == 0 => f64::NAN,
                    Reduction::Mean => self.a[slot] / n as f64,
                    Reduction::Var => self.b[slot] / n as f64,
                    Reduction::Std => (self.b[slot] / n as f64).sqrt(),
                    Reduction::Median => {
                        let mut accumulator = Accumulator::default();
                        for &v in &self.values[slot] {
                            accumulator.push(v, true);
                        }
                        self.values[slot] = Vec::new();
                        accumulator.finish(Reduction::Median)
                    }
                    _ => self.a[slot],
                }
            })
            .collect()
    }
}

/// `reduction` over `values`.
pub fn reduce(values: impl IntoIterator<Item = f64>, reduction: Reduction) -> f64 {
    let mut accumulator = Accumulator::default();
    for v in values {
        accumulator.push(v, reduction.holds_values());
    }
    accumulator.finish(reduction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_xarray_with_nan_skipped() {
        let values = [2.0, f64::NAN, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let r = |name: &str| reduce(values, Reduction::named(name).unwrap());
        assert_eq!((r("mean"), r("min"), r("max"), r("sum"), r("count")), (5.0, 2.0, 9.0, 40.0, 8.0));
        assert_eq!((r("var"), r("std")), (4.0, 2.0));
        assert_eq!((r("median"), r("first"), r("last")), (4.5, 2.0, 9.0));
        let nothing = [f64::NAN, f64::NAN];
        assert_eq!((reduce(nothing, Reduction::Sum), reduce(nothing, Reduction::Count)), (0.0, 0.0));
        assert!(reduce(nothing, Reduction::Mean).is_nan() && reduce(nothing, Reduction::Median).is_nan());
        assert_eq!(reduce([3.0, 1.0, 2.0], Reduction::Median), 2.0);
        assert_eq!(Reduction::named("mode"), None);
    }

    #[test]
    fn slots_agree_with_single_reductions() {
        let columns = [[2.0, f64::NAN, 4.0, 4.0], [4.0, 5.0, f64::NAN, f64::NAN], [f64::NAN; 4]];
        for name in Reduction::NAMES {
            let reduction = Reduction::named(name).unwrap();
            let mut slots = Slots::new(reduction, 3);
            for (slot, column) in columns.iter().enumerate() {
                for &v in column {
                    slots.push(slot, v);
                }
            }
            // A row of values into consecutive slots: the same as one at a time.
            let mut rows = Slots::new(reduction, 3);
            for ((a, b), c) in columns[0].iter().zip(&columns[1]).zip(&columns[2]) {
                rows.push_row(0, &[*a, *b, *c]);
            }
            let by_rows = rows.finish();
            let got = slots.finish();
            for (slot, column) in columns.iter().enumerate() {
                let want = reduce(column.iter().copied(), reduction);
                assert!(
                    got[slot] == want || (got[slot].is_nan() && want.is_nan()),
                    "{name} slot {slot}: {} {want}",
                    got[slot]
                );
                let row = by_rows[slot];
                assert!(row == want || (row.is_nan() && want.is_nan()), "{name} by rows, slot {slot}: {row} {want}");
            }
        }
    }
}

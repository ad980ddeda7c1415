//! Groups of positions along a coordinate, as xarray forms them: `groupby("time.month")`
//! (also `time.season`, `time.year`, `time.dayofyear`, `time.hour`), `groupby(coord)` over
//! any 1-D coordinate's unique values, and `resample(time=freq)` bins (`1D`, `1MS`, `QS-DEC`,
//! `1YS` and their multiples) in every CF calendar.

use cloudify_cftime::DateTime;

use crate::{time::TimeAxis, Error, Result};

/// Most groups or bins one request may form (a `1D` resample over ten thousand years would
/// otherwise size its output from the request).
pub const MAX_GROUPS: usize = 1_000_000;

/// The positions of an axis in groups: each group's label and which group each position
/// is in (`None`: in no group, as NaN coordinate values are in xarray).
#[derive(Debug, Clone, PartialEq)]
pub struct Groups<L> {
    /// The groups' labels, in xarray's order.
    pub labels: Vec<L>,
    /// For each position of the axis, its group.
    pub of: Vec<Option<usize>>,
}

impl<L> Groups<L> {
    /// The positions of group `g`.
    pub fn members(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        self.of.iter().enumerate().filter(move |(_, &o)| o == Some(g)).map(|(i, _)| i)
    }
}

/// A component of time to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    /// 1–12.
    Month,
    /// `DJF`, `JJA`, `MAM`, `SON` (xarray's order: sorted).
    Season,
    /// The year as written in the calendar.
    Year,
    /// 1–366 (1–360 in 360_day).
    DayOfYear,
    /// 0–23.
    Hour,
}

impl TimePart {
    /// Names after `time.`, as xarray spells them.
    pub const NAMES: [&'static str; 5] = ["month", "season", "year", "dayofyear", "hour"];

    /// The part named `name` (`month`, `season`, `year`, `dayofyear`, `hour`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "month" => Some(Self::Month),
            "season" => Some(Self::Season),
            "year" => Some(Self::Year),
            "dayofyear" => Some(Self::DayOfYear),
            "hour" => Some(Self::Hour),
            _ => None,
        }
    }
}

/// A group label: a number, or a season's name.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Label {
    /// A numeric label (month, year, day of year, hour, a coordinate's value).
    Number(f64),
    /// A season.
    Text(&'static str),
}

fn season(month: u8) -> &'static str {
    match month {
        12 | 1 | 2 => "DJF",
        3..=5 => "MAM",
        6..=8 => "JJA",
        _ => "SON",
    }
}

fn number_groups(keys: Vec<Option<f64>>) -> Groups<Label> {
    let mut labels: Vec<f64> = keys.iter().flatten().copied().collect();
    labels.sort_by(f64::total_cmp);
    labels.dedup();
    let of = keys.iter().map(|k| k.and_then(|k| labels.binary_search_by(|l| l.total_cmp(&k)).ok())).collect();
    Groups { labels: labels.into_iter().map(Label::Number).collect(), of }
}

/// Groups of a time axis by one part of its dates.
///
/// # Errors
/// [`Error::Time`] for a date the axis' calendar does not have (day of year).
pub fn by_time(axis: &TimeAxis, part: TimePart) -> Result<Groups<Label>> {
    if part == TimePart::Season {
        const ORDER: [&str; 4] = ["DJF", "JJA", "MAM", "SON"];
        let present: Vec<&'static str> =
            ORDER.into_iter().filter(|s| axis.dates.iter().any(|d| season(d.month) == *s)).collect();
        let of = axis.dates.iter().map(|d| present.iter().position(|s| *s == season(d.month))).collect();
        return Ok(Groups { labels: present.into_iter().map(Label::Text).collect(), of });
    }
    let calendar = axis.calendar.as_deref();
    let day_of_year = |d: &DateTime| -> Result<f64> {
        let first = DateTime { month: 1, day: 1, hour: 0, minute: 0, second: 0, microsecond: 0, ..*d };
        let days = |x: &DateTime| cloudify_cftime::days(x, calendar).map_err(|e| Error::Time(e.to_string()));
        Ok((days(d)? - days(&first)?).floor() + 1.0)
    };
    let keys = axis
        .dates
        .iter()
        .map(|d| {
            Ok(Some(match part {
                TimePart::Month => f64::from(d.month),
                TimePart::Year => d.year as f64,
                TimePart::Hour => f64::from(d.hour),
                TimePart::DayOfYear => day_of_year(d)?,
                TimePart::Season => unreachable!("handled above"),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(number_groups(keys))
}

/// Groups of a 1-D coordinate's values: each distinct value, ascending; NaN in none.
pub fn by_values(values: &[f64]) -> Groups<Label> {
    number_groups(values.iter().map(|&v| Some(v).filter(|v| !v.is_nan())).collect())
}

/// A resampling frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// `nD`: bins of n days from midnight of the first day.
    Days(u32),
    /// `nMS`: bins of n months from the first day of the first month.
    MonthStart(u32),
    /// `QS-MON`: quarters starting in `anchor` (1–12) and every third month after.
    QuarterStart(u8),
    /// `nYS` (`AS`): bins of n years from January 1.
    YearStart(u32),
}

impl Frequency {
    /// Reads pandas' spelling: `1D`, `D`, `5D`, `MS`, `1MS`, `QS`, `QS-DEC`, `YS`, `1YS`, `AS`.
    ///
    /// # Errors
    /// [`Error::Selection`] listing what is understood.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Selection(format!(
                "'{text}' is not a frequency: nD, nMS, QS or QS-JAN..QS-DEC, nYS (n a whole number, 1 if left out)"
            ))
        };
        let digits = text.chars().take_while(char::is_ascii_digit).count();
        let n: u32 = if digits == 0 { 1 } else { text[..digits].parse().map_err(|_| bad())? };
        if n == 0 || n > 10_000 {
            return Err(bad());
        }
        const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
        match &text[digits..] {
            "D" => Ok(Self::Days(n)),
            "MS" => Ok(Self::MonthStart(n)),
            "YS" | "AS" => Ok(Self::YearStart(n)),
            "QS" if n == 1 => Ok(Self::QuarterStart(1)),
            rest => match rest.strip_prefix("QS-") {
                Some(month) if n == 1 => {
                    MONTHS.iter().position(|m| *m == month).map(|i| Self::QuarterStart(i as u8 + 1)).ok_or_else(bad)
                }
                _ => Err(bad()),
            },
        }
    }
}

fn midnight(date: &DateTime) -> DateTime {
    DateTime { hour: 0, minute: 0, second: 0, microsecond: 0, ..*date }
}

fn add_months(date: &DateTime, months: u32) -> DateTime {
    let total = date.year * 12 + i64::from(date.month - 1) + i64::from(months);
    DateTime { year: total.div_euclid(12), month: (total.rem_euclid(12) + 1) as u8, ..*date }
}

/// The resampling bins of a time axis: every bin from the one holding the earliest date to
/// the one holding the latest, empty ones included (as xarray's resample gives them), each
/// labelled with its start.
///
/// # Errors
/// [`Error::Time`] for an empty axis or dates the calendar does not have;
/// [`Error::Selection`] for more than [`MAX_GROUPS`] bins.
pub fn resample(axis: &TimeAxis, frequency: Frequency) -> Result<Groups<DateTime>> {
    let calendar = axis.calendar.as_deref();
    let (Some(first), Some(last)) = (axis.dates.iter().min(), axis.dates.iter().max()) else {
        return Err(Error::Time("the time axis is empty".to_owned()));
    };
    let start = match frequency {
        Frequency::Days(_) => midnight(first),
        Frequency::MonthStart(_) => DateTime { day: 1, ..midnight(first) },
        Frequency::YearStart(_) => DateTime { month: 1, day: 1, ..midnight(first) },
        Frequency::QuarterStart(anchor) => {
            let back = (i64::from(first.month) - i64::from(anchor)).rem_euclid(3);
            let month = DateTime { day: 1, ..midnight(first) };
            let total = month.year * 12 + i64::from(month.month - 1) - back;
            DateTime { year: total.div_euclid(12), month: (total.rem_euclid(12) + 1) as u8, ..month }
        }
    };
    let next = |d: &DateTime| -> Result<DateTime> {
        Ok(match frequency {
            Frequency::Days(n) => {
                cloudify_cftime::add_days(d, i64::from(n), calendar).map_err(|e| Error::Time(e.to_string()))?
            }
            Frequency::MonthStart(n) => add_months(d, n),
            Frequency::QuarterStart(_) => add_months(d, 3),
            Frequency::YearStart(n) => DateTime { year: d.year + i64::from(n), ..*d },
        })
    };
    let mut edges = vec![start];
    while edges.last().is_some_and(|e| e <= last) {
        if edges.len() > MAX_GROUPS {
            return Err(Error::Selection(format!("more than {MAX_GROUPS} resampling bins")));
        }
        let after = next(edges.last().unwrap_or(&start))?;
        edges.push(after);
    }
    let of = axis.dates.iter().map(|d| Some(edges.partition_point(|e| e <= d) - 1)).collect();
    edges.pop();
    Ok(Groups { labels: edges, of })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn axis(values: &[f64], units: &str, calendar: &str) -> TimeAxis {
        let var = serde_json::from_value(json!({"dtype": "float64", "dimensions": ["time"], "shape": [values.len()],
            "chunks": [values.len()], "attributes": {"units": units, "calendar": calendar}}))
        .unwrap();
        TimeAxis::decode(&var, values).unwrap()
    }

    #[test]
    fn months_seasons_years_days_and_hours() {
        // Mid-month of two noleap years.
        let mid: Vec<f64> = (0..24).map(|m| f64::from(m) * 365.0 / 12.0 + 15.0).collect();
        let axis = axis(&mid, "days since 2000-01-01", "noleap");
        let months = by_time(&axis, TimePart::Month).unwrap();
        assert_eq!(months.labels.len(), 12);
        assert_eq!(months.members(0).collect::<Vec<_>>(), [0, 12]);
        let seasons = by_time(&axis, TimePart::Season).unwrap();
        assert_eq!(seasons.labels, [Label::Text("DJF"), Label::Text("JJA"), Label::Text("MAM"), Label::Text("SON")]);
        assert_eq!(seasons.members(0).collect::<Vec<_>>(), [0, 1, 11, 12, 13, 23]);
        let years = by_time(&axis, TimePart::Year).unwrap();
        assert_eq!(years.labels, [Label::Number(2000.0), Label::Number(2001.0)]);
        let days = by_time(&axis, TimePart::DayOfYear).unwrap();
        assert_eq!(days.labels[0], Label::Number(16.0));
        let hours =
            by_time(&super::tests::axis(&[0.25, 0.5, 1.25], "days since 2000-01-01", "standard"), TimePart::Hour)
                .unwrap();
        assert_eq!(hours.labels, [Label::Number(6.0), Label::Number(12.0)]);
        assert_eq!(hours.of, [Some(0), Some(1), Some(0)]);
        assert_eq!(TimePart::named("week"), None);
        let values = by_values(&[3.0, 1.0, f64::NAN, 3.0]);
        assert_eq!(
            (values.labels, values.of),
            (vec![Label::Number(1.0), Label::Number(3.0)], vec![Some(1), Some(0), None, Some(1)])
        );
    }

    #[test]
    fn resampling_bins_in_any_calendar() {
        let daily = axis(&(0..70).map(f64::from).collect::<Vec<_>>(), "days since 2000-01-01 12:00", "360_day");
        let months = resample(&daily, Frequency::parse("1MS").unwrap()).unwrap();
        assert_eq!(months.labels.len(), 3);
        assert_eq!(months.members(1).count(), 30);
        assert_eq!((months.labels[2].month, months.labels[2].day), (3, 1));
        // Quarters from December: January 2000 lies in the one starting December 1999.
        let quarters = resample(&daily, Frequency::parse("QS-DEC").unwrap()).unwrap();
        assert_eq!((quarters.labels[0].year, quarters.labels[0].month), (1999, 12));
        assert_eq!(quarters.members(0).count(), 60);
        let two_days = resample(&daily, Frequency::parse("2D").unwrap()).unwrap();
        assert_eq!((two_days.labels.len(), two_days.members(0).count()), (35, 2));
        // Empty bins are kept.
        let sparse = axis(&[0.0, 400.0], "days since 2000-01-01", "standard");
        assert_eq!(resample(&sparse, Frequency::parse("MS").unwrap()).unwrap().labels.len(), 14);
        assert_eq!(resample(&sparse, Frequency::parse("YS").unwrap()).unwrap().labels.len(), 2);
        for bad in ["", "0D", "1W", "2QS", "QS-XYZ", "1M", "D1"] {
            assert!(Frequency::parse(bad).is_err(), "{bad}");
        }
        let far = axis(&[0.0, 1e7], "days since 2000-01-01", "standard");
        assert!(resample(&far, Frequency::Days(1)).is_err());
    }
}

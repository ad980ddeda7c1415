//! CF time: an axis decoded in its calendar (`cloudify-cftime`), labels such as `2000`,
//! `2000-01`, `2000-01-16` or `2000-01-16T12:00` read as the period they name, and dates
//! written as RFC 3339.

pub use cloudify_cftime::DateTime;
use cloudify_sdk::meta::VariableMeta;

use crate::{text, Error, Result};

/// A time coordinate decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    /// The dates, in the coordinate's order.
    pub dates: Vec<DateTime>,
    /// The calendar (`None`: standard).
    pub calendar: Option<String>,
}

impl TimeAxis {
    /// Decodes `values` of time coordinate `var` (its `units` and `calendar`).
    ///
    /// # Errors
    /// [`Error::Time`]: no CF time units, an unknown calendar, or a value out of range.
    pub fn decode(var: &VariableMeta, values: &[f64]) -> Result<Self> {
        let units = text(var, "units").ok_or_else(|| Error::Time("a time coordinate without units".to_owned()))?;
        let calendar = text(var, "calendar").map(str::to_owned);
        let dates =
            cloudify_cftime::decode(values, units, calendar.as_deref()).map_err(|e| Error::Time(e.to_string()))?;
        Ok(Self { dates, calendar })
    }

    /// Positions whose date lies in `[from, until)`.
    pub fn within(&self, from: &DateTime, until: &DateTime) -> Vec<usize> {
        (0..self.dates.len()).filter(|&i| self.dates[i] >= *from && self.dates[i] < *until).collect()
    }

    /// The position whose date is nearest to `date` (the earlier on a tie).
    ///
    /// # Errors
    /// [`Error::Time`]: an empty axis, or a date the calendar does not have.
    pub fn nearest(&self, date: &DateTime) -> Result<usize> {
        let days =
            |d: &DateTime| cloudify_cftime::days(d, self.calendar.as_deref()).map_err(|e| Error::Time(e.to_string()));
        let target = days(date)?;
        let mut best: Option<(f64, usize)> = None;
        for (i, d) in self.dates.iter().enumerate() {
            let distance = (days(d)? - target).abs();
            if best.is_none_or(|(b, _)| distance < b) {
                best = Some((distance, i));
            }
        }
        best.map(|(_, i)| i).ok_or_else(|| Error::Time("the time axis is empty".to_owned()))
    }
}

/// The period a label names: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant.
    pub start: DateTime,
    /// First instant after.
    pub end: DateTime,
}

/// Reads a time label: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, then optionally `THH`, `THH:MM`,
/// `THH:MM:SS` (or a space instead of `T`); a year may be negative. The period is the year,
/// month, day, hour, minute or second named. The end is the next one in lexical order
/// (`2001-02-29`), which bounds every calendar's dates correctly.
///
/// # Errors
/// [`Error::Time`] naming the label.
pub fn parse_label(label: &str) -> Result<Period> {
    let bad = || Error::Time(format!("'{label}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD[THH[:MM[:SS]]])"));
    let trimmed = label.trim();
    let (date, clock) = match trimmed.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock.trim_end_matches('Z'))),
        None => (trimmed, None),
    };
    let (negative, date) = match date.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, date),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next().filter(|y| !y.is_empty()).and_then(|y| y.parse().ok()).ok_or_else(bad)?;
    let year = if negative { -year } else { year };
    let mut fields: Vec<u8> = Vec::new();
    for part in parts {
        fields.push(part.parse().map_err(|_| bad())?);
    }
    if fields.len() > 2 {
        return Err(bad());
    }
    if let Some(clock) = clock {
        if fields.len() != 2 {
            return Err(bad());
        }
        for part in clock.split(':') {
            fields.push(part.parse().map_err(|_| bad())?);
        }
    }
    let limits = [(1, 12), (1, 31), (0, 23), (0, 59), (0, 59)];
    if fields.len() > limits.len() || fields.iter().zip(limits).any(|(&f, (lo, hi))| f < lo || f > hi) {
        return Err(bad());
    }
    let field = |i: usize, default: u8| fields.get(i).copied().unwrap_or(default);
    let start = DateTime {
        year,
        month: field(0, 1),
        day: field(1, 1),
        hour: field(2, 0),
        minute: field(3, 0),
        second: field(4, 0),
        microsecond: 0,
    };
    let mut end = start;
    match fields.len() {
        0 => end.year += 1,
        1 if start.month == 12 => (end.year, end.month) = (end.year + 1, 1),
        1 => end.month += 1,
        2 => end.day += 1,
        3 => end.hour += 1,
        4 => end.minute += 1,
        _ => end.second += 1,
    }
    Ok(Period { start, end })
}

/// A CF date as an RFC 3339 timestamp. RFC 3339 has Gregorian dates of years 1–9999 only:
/// a day the Gregorian month lacks (360_day's February 30) becomes the month's last day,
/// and years outside the range the nearest end.
pub fn rfc3339(date: &DateTime) -> String {
    if date.year < 1 {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    if date.year > 9999 {
        return "9999-12-31T23:59:59Z".to_owned();
    }
    let leap = date.year % 4 == 0 && (date.year % 100 != 0 || date.year % 400 == 0);
    let days = match date.month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = date.day.min(days);
    let fraction = if date.microsecond == 0 { String::new() } else { format!(".{:06}", date.microsecond) };
    format!(
        "{:04}-{:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        date.year, date.month, date.hour, date.minute, date.second
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn date(year: i64, month: u8, day: u8, hour: u8) -> DateTime {
        DateTime { year, month, day, hour, minute: 0, second: 0, microsecond: 0 }
    }

    #[test]
    fn labels_name_periods() {
        assert_eq!(parse_label("2000").unwrap(), Period { start: date(2000, 1, 1, 0), end: date(2001, 1, 1, 0) });
        assert_eq!(parse_label("2000-12").unwrap().end, date(2001, 1, 1, 0));
        assert_eq!(parse_label("2000-02").unwrap().end, date(2000, 3, 1, 0));
        assert_eq!(parse_label("2000-02-30").unwrap().end, date(2000, 2, 31, 0));
        assert_eq!(parse_label("2000-01-16T12").unwrap().start, date(2000, 1, 16, 12));
        assert_eq!(parse_label("2000-01-16 12:30").unwrap().end.minute, 31);
        assert_eq!(parse_label("-100-06").unwrap().start.year, -100);
        for bad in ["", "x", "2000-13", "2000-01-32", "2000T12", "2000-01-01T25", "2000-1-1-1", "2000-01-01T1:2:3:4"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_axis_selects_periods_and_nearest_dates_in_its_calendar() {
        let var: VariableMeta = serde_json::from_value(json!({"dtype": "float64", "dimensions": ["time"],
            "shape": [4], "chunks": [4], "attributes": {"units": "days since 2000-01-01", "calendar": "360_day"}}))
        .unwrap();
        let axis = TimeAxis::decode(&var, &[15.0, 45.0, 75.0, 59.5]).unwrap();
        assert_eq!(axis.dates[3], date(2000, 2, 30, 12));
        let february = parse_label("2000-02").unwrap();
        assert_eq!(axis.within(&february.start, &february.end), [1, 3]);
        assert_eq!(axis.nearest(&date(2000, 3, 1, 0)).unwrap(), 3);
        assert_eq!(axis.nearest(&date(1999, 1, 1, 0)).unwrap(), 0);
        assert!(axis.nearest(&date(2000, 2, 31, 0)).is_err());
    }

    #[test]
    fn dates_become_valid_rfc3339() {
        assert_eq!(rfc3339(&date(2001, 2, 30, 12)), "2001-02-28T12:00:00Z");
        assert_eq!(rfc3339(&date(2000, 2, 30, 12)), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(&date(1850, 1, 16, 12)), "1850-01-16T12:00:00Z");
        assert_eq!(rfc3339(&date(0, 1, 1, 0)), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(&date(12000, 1, 1, 0)), "9999-12-31T23:59:59Z");
    }
}

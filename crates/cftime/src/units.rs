//! Parsing `<unit> since <date>`.

use crate::{Error, Result};

/// Fixed-length time units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 7 days.
    Weeks,
    /// 86 400 s.
    Days,
    /// 3 600 s.
    Hours,
    /// 60 s.
    Minutes,
    /// 1 s.
    Seconds,
    /// 1 ms.
    Milliseconds,
    /// 1 µs.
    Microseconds,
}

impl Unit {
    /// Microseconds in one unit.
    pub fn micros(self) -> i64 {
        match self {
            Self::Weeks => 7 * 86_400_000_000,
            Self::Days => 86_400_000_000,
            Self::Hours => 3_600_000_000,
            Self::Minutes => 60_000_000,
            Self::Seconds => 1_000_000,
            Self::Milliseconds => 1_000,
            Self::Microseconds => 1,
        }
    }

    fn parse(word: &str) -> Result<Self> {
        Ok(match word.to_ascii_lowercase().as_str() {
            "week" | "weeks" => Self::Weeks,
            "day" | "days" | "d" => Self::Days,
            "hour" | "hours" | "hr" | "hrs" | "h" => Self::Hours,
            "minute" | "minutes" | "min" | "mins" => Self::Minutes,
            "second" | "seconds" | "sec" | "secs" | "s" => Self::Seconds,
            "millisecond" | "milliseconds" | "msec" | "msecs" | "ms" => Self::Milliseconds,
            "microsecond" | "microseconds" | "usec" | "usecs" | "us" => Self::Microseconds,
            _ => return Err(Error::Unit(word.to_owned())),
        })
    }
}

/// The reference date of `units`, as written (before any time-zone shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    /// Year.
    pub year: i64,
    /// Month.
    pub month: u8,
    /// Day.
    pub day: u8,
    /// Seconds into the day, time-zone offset removed (may leave the day).
    pub micros_of_day: i128,
}

/// Parsed `units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeUnits {
    /// The unit of the values.
    pub unit: Unit,
    /// The reference date.
    pub since: Since,
}

fn number<T: std::str::FromStr>(text: &str, units: &str) -> Result<T> {
    text.parse().map_err(|_| Error::Units(units.to_owned()))
}

impl TimeUnits {
    /// Parses `"days since 1850-01-01"`, `"hours since 2000-1-1 12:00:00.5"`,
    /// `"seconds since 1970-01-01T00:00:00Z"`, `"days since 2000-01-01 00:00:00 +05:30"`.
    ///
    /// # Errors
    /// [`Error::Units`] or [`Error::Unit`].
    pub fn parse(units: &str) -> Result<Self> {
        let bad = || Error::Units(units.to_owned());
        let lower = units.trim().to_ascii_lowercase();
        let (unit, rest) = lower.split_once(" since ").ok_or_else(bad)?;
        let unit = Unit::parse(unit.trim())?;
        let rest = rest.trim().replace(['T', 't'], " ");
        let mut parts = rest.split_whitespace();
        let date = parts.next().ok_or_else(bad)?;
        // A leading '-' is a negative year, the others separate the fields.
        let (sign, date) = match date.strip_prefix('-') {
            Some(d) => (-1, d),
            None => (1, date),
        };
        let fields: Vec<&str> = date.split('-').collect();
        let [y, m, d] = fields[..] else { return Err(bad()) };
        let (year, month, day) = (sign * number::<i64>(y, units)?, number::<u8>(m, units)?, number::<u8>(d, units)?);
        let mut micros: i128 = 0;
        let mut zone: i128 = 0;
        for part in parts {
            let part = part.trim_end_matches('z').trim_end_matches("utc");
            if part.is_empty() || part == "utc" || part == "z" {
                continue;
            }
            if let Some(offset) =
                part.strip_prefix('+').map(|o| (1, o)).or_else(|| part.strip_prefix('-').map(|o| (-1, o)))
            {
                let (sign, text) = offset;
                let (h, m) = text.split_once(':').unwrap_or((text, "0"));
                zone = sign * (number::<i128>(h, units)? * 3600 + number::<i128>(m, units)? * 60) * 1_000_000;
                continue;
            }
            let mut hms = part.splitn(3, ':');
            let h: i128 = number(hms.next().ok_or_else(bad)?, units)?;
            let m: i128 = hms.next().map_or(Ok(0), |t| number(t, units))?;
            let s: f64 = hms.next().map_or(Ok(0.0), |t| number(t, units))?;
            micros = (h * 3600 + m * 60) * 1_000_000 + (s * 1e6).round() as i128;
        }
        Ok(Self { unit, since: Since { year, month, day, micros_of_day: micros - zone } })
    }

    pub(crate) fn since_micros_of_day(&self) -> i128 {
        self.since.micros_of_day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_forms() {
        let u = TimeUnits::parse("hours since 2000-1-1 12:30:00.5").unwrap();
        assert_eq!((u.unit, u.since.year, u.since.month, u.since.day), (Unit::Hours, 2000, 1, 1));
        assert_eq!(u.since.micros_of_day, (12 * 3600 + 30 * 60) * 1_000_000 + 500_000);
        let z = TimeUnits::parse("seconds since 1970-01-01T00:00:00Z").unwrap();
        assert_eq!(z.since.micros_of_day, 0);
        let tz = TimeUnits::parse("days since 2000-01-01 00:00:00 +05:30").unwrap();
        assert_eq!(tz.since.micros_of_day, -(5 * 3600 + 30 * 60) * 1_000_000);
        assert!(matches!(TimeUnits::parse("months since 2000-01-01"), Err(Error::Unit(_))));
        assert!(matches!(TimeUnits::parse("days after 2000-01-01"), Err(Error::Units(_))));
    }
}

//! CF time decoding: numbers with `units = "<unit> since <date>"` and a `calendar` attribute
//! turned into calendar dates, for every calendar of the CF conventions (§4.4.1):
//! `standard`/`gregorian` (Julian before 1582-10-15, Gregorian after), `proleptic_gregorian`,
//! `julian`, `noleap`/`365_day`, `all_leap`/`366_day` and `360_day`. Dates are kept as fields
//! (a `360_day` date such as February 30 exists only in its calendar), with an ISO 8601 form.
//!
//! Results match `cftime.num2date` to the microsecond.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod calendar;
mod units;

pub use calendar::Calendar;
pub use units::{TimeUnits, Unit};

/// What can be wrong with time metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `units` attribute is not `<unit> since <date>`.
    #[error("invalid time units '{0}'")]
    Units(String),
    /// The unit is not a fixed length of time (`months`, `years` are not, in CF).
    #[error("unsupported time unit '{0}' (use days, hours, minutes, seconds or finer)")]
    Unit(String),
    /// Unknown calendar name.
    #[error("unknown calendar '{0}'")]
    Calendar(String),
    /// A date that does not exist in the calendar, or a value out of range.
    #[error("invalid date: {0}")]
    Date(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A date and time in some calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// Year, numbered as cftime does: `standard` and `julian` have no year 0 (1 BC is year
    /// -1); `proleptic_gregorian` (ISO 8601) and the idealized calendars do.
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, from 1.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
    /// Microsecond, 0–999 999.
    pub microsecond: u32,
}

impl std::fmt::Display for DateTime {
    /// ISO 8601: `2000-02-30T12:00:00`, with `.ffffff` when there are microseconds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        Ok(())
    }
}

const MICROS_PER_DAY: i128 = 86_400_000_000;

/// `value * unit` rounded to the nearest integer (ties to even) from the exact binary value
/// of `value`, as cftime computes it: a plain `f64` product loses microseconds past 2^53.
fn exact_micros(value: f64, unit: i64) -> Option<i128> {
    let bits = value.to_bits();
    let negative = bits >> 63 == 1;
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = i128::from(bits & ((1 << 52) - 1));
    let (mantissa, exp) = if exponent == 0 { (fraction, -1074) } else { (fraction | (1 << 52), exponent - 1075) };
    let product = mantissa.checked_mul(i128::from(unit))?;
    let magnitude = if exp >= 0 {
        product.checked_mul(1i128.checked_shl(u32::try_from(exp).ok()?)?)?
    } else if exp <= -126 {
        0
    } else {
        let shift = -exp as u32;
        let (quotient, remainder) = (product >> shift, product & ((1 << shift) - 1));
        let half = 1i128 << (shift - 1);
        if remainder > half || (remainder == half && quotient % 2 == 1) {
            quotient + 1
        } else {
            quotient
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Decodes `values` given CF `units` and `calendar` (`None`: `standard`).
///
/// # Errors
/// [`Error::Units`], [`Error::Unit`], [`Error::Calendar`], or [`Error::Date`] for a reference
/// date that does not exist in the calendar or a non-finite value.
pub fn decode(values: &[f64], units: &str, calendar: Option<&str>) -> Result<Vec<DateTime>> {
    let calendar = Calendar::parse(calendar.unwrap_or("standard"))?;
    let units = TimeUnits::parse(units)?;
    let origin =
        calendar.day_number(calendar.astronomical_year(units.since.year), units.since.month, units.since.day)?;
    let origin_micros = i128::from(origin) * MICROS_PER_DAY + units.since_micros_of_day();
    values
        .iter()
        .map(|&value| {
            if !value.is_finite() {
                return Err(Error::Date(format!("time value {value}")));
            }
            let offset = exact_micros(value, units.unit.micros())
                .ok_or_else(|| Error::Date(format!("time value {value} out of range")))?;
            let micros = origin_micros + offset;
            let day = micros.div_euclid(MICROS_PER_DAY);
            let of_day = micros.rem_euclid(MICROS_PER_DAY) as u64;
            let day = i64::try_from(day).map_err(|_| Error::Date(format!("time value {value} out of range")))?;
            let (year, month, day) = calendar.date(day);
            Ok(DateTime {
                year: calendar.display_year(year),
                month,
                day,
                hour: (of_day / 3_600_000_000) as u8,
                minute: (of_day / 60_000_000 % 60) as u8,
                second: (of_day / 1_000_000 % 60) as u8,
                microsecond: (of_day % 1_000_000) as u32,
            })
        })
        .collect()
}

/// Days from the calendar's epoch to `date` (with the time of day as a fraction): a number
/// that orders and spaces dates of one calendar, to find the nearest of them.
///
/// # Errors
/// [`Error::Calendar`], or [`Error::Date`] for a date the calendar does not have.
pub fn days(date: &DateTime, calendar: Option<&str>) -> Result<f64> {
    let calendar = Calendar::parse(calendar.unwrap_or("standard"))?;
    let day = calendar.day_number(calendar.astronomical_year(date.year), date.month, date.day)?;
    let micros = (u64::from(date.hour) * 3600 + u64::from(date.minute) * 60 + u64::from(date.second)) * 1_000_000
        + u64::from(date.microsecond);
    Ok(day as f64 + micros as f64 / MICROS_PER_DAY as f64)
}

/// `date` moved by whole `days` in its calendar, the time of day kept.
///
/// # Errors
/// [`Error::Calendar`], or [`Error::Date`] for a date the calendar does not have.
pub fn add_days(date: &DateTime, days: i64, calendar: Option<&str>) -> Result<DateTime> {
    let calendar = Calendar::parse(calendar.unwrap_or("standard"))?;
    let day = calendar.day_number(calendar.astronomical_year(date.year), date.month, date.day)?;
    let (year, month, day) = calendar.date(day + days);
    Ok(DateTime { year: calendar.display_year(year), month, day, ..*date })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_exact() {
        // 198200.113374 days is 17124489795513600.6698... µs exactly; a float product says ...600.
        assert_eq!(exact_micros(198_200.113_374, 86_400_000_000).unwrap() % 1_000_000, 513_601);
        assert_eq!(exact_micros(-1.5, 1_000_000), Some(-1_500_000));
        assert_eq!(exact_micros(0.0, 7), Some(0));
    }

    #[test]
    fn iso_form() {
        let dates = decode(&[0.0, 59.5], "days since 2000-01-01", Some("360_day")).unwrap();
        assert_eq!(dates[1].to_string(), "2000-02-30T12:00:00");
        assert!(decode(&[f64::NAN], "days since 2000-01-01", None).is_err());
        assert!(decode(&[0.0], "days since 2000-01-01", Some("lunar")).is_err());
    }

    #[test]
    fn days_space_dates_of_one_calendar() {
        let dates = decode(&[0.0, 59.5, 360.25], "days since 2000-01-01", Some("360_day")).unwrap();
        let numbers: Vec<f64> = dates.iter().map(|d| days(d, Some("360_day")).unwrap()).collect();
        assert_eq!((numbers[1] - numbers[0], numbers[2] - numbers[0]), (59.5, 360.25));
        let feb30 = DateTime { year: 2001, month: 2, day: 30, hour: 0, minute: 0, second: 0, microsecond: 0 };
        assert!(days(&feb30, None).is_err());
        assert_eq!(add_days(&feb30, 1, Some("360_day")).unwrap().month, 3);
        let feb28 = DateTime { day: 28, ..feb30 };
        assert_eq!(
            (add_days(&feb28, 1, Some("noleap")).unwrap().month, add_days(&feb28, 1, Some("all_leap")).unwrap().day),
            (3, 29)
        );
        // The standard calendar's Julian to Gregorian jump.
        let oct4 = DateTime { year: 1582, month: 10, day: 4, ..feb30 };
        assert_eq!(add_days(&oct4, 1, None).unwrap().day, 15);
    }
}

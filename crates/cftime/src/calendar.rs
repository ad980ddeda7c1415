//! Day numbers in each calendar, and back.

use crate::{Error, Result};

/// The CF calendars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// Julian before 1582-10-15, Gregorian from then on (`standard`, `gregorian`).
    Standard,
    /// Gregorian rules for every year.
    ProlepticGregorian,
    /// Julian rules for every year.
    Julian,
    /// Every year has 365 days (`noleap`, `365_day`).
    NoLeap,
    /// Every year has 366 days (`all_leap`, `366_day`).
    AllLeap,
    /// Twelve months of 30 days.
    Day360,
}

const MONTH_DAYS: [u8; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/// Julian day number of 1582-10-15, the first Gregorian day of the `standard` calendar.
const GREGORIAN_START: i64 = 2_299_161;

impl Calendar {
    /// The calendar named `name` (case-insensitive, CF names and aliases).
    ///
    /// # Errors
    /// [`Error::Calendar`] for an unknown name.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "standard" | "gregorian" => Self::Standard,
            "proleptic_gregorian" => Self::ProlepticGregorian,
            "julian" => Self::Julian,
            "noleap" | "365_day" => Self::NoLeap,
            "all_leap" | "366_day" => Self::AllLeap,
            "360_day" => Self::Day360,
            _ => return Err(Error::Calendar(name.to_owned())),
        })
    }

    /// Whether years are counted without a year 0 (cftime's `has_year_zero=False`).
    fn skips_year_zero(self) -> bool {
        matches!(self, Self::Standard | Self::Julian)
    }

    /// The astronomical year (year 0 = 1 BC) of a year as written in this calendar.
    pub(crate) fn astronomical_year(self, year: i64) -> i64 {
        if self.skips_year_zero() && year < 0 {
            year + 1
        } else {
            year
        }
    }

    /// A year as written in this calendar, from its astronomical number.
    pub(crate) fn display_year(self, year: i64) -> i64 {
        if self.skips_year_zero() && year <= 0 {
            year - 1
        } else {
            year
        }
    }

    fn month_length(self, year: i64, month: u8) -> u8 {
        let leap = match self {
            Self::NoLeap => false,
            Self::AllLeap => true,
            Self::Day360 => return 30,
            Self::Julian => year.rem_euclid(4) == 0,
            Self::ProlepticGregorian | Self::Standard => {
                year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
            }
        };
        if month == 2 && leap {
            29
        } else {
            MONTH_DAYS[usize::from(month - 1)]
        }
    }

    /// A day number for `year-month-day`: consecutive days get consecutive numbers (Julian day
    /// numbers for the real-world calendars).
    ///
    /// # Errors
    /// [`Error::Date`] for a date that does not exist in this calendar (including the days
    /// 1582-10-05 to 1582-10-14 of the `standard` calendar).
    pub fn day_number(self, year: i64, month: u8, day: u8) -> Result<i64> {
        let julian_rules = match self {
            Self::Julian => true,
            Self::Standard => (year, month, day) < (1582, 10, 15),
            _ => false,
        };
        let real_length = match (self, julian_rules) {
            (Self::Standard, true) => Self::Julian.month_length(year, month.clamp(1, 12)),
            _ => self.month_length(year, month.clamp(1, 12)),
        };
        if !(1..=12).contains(&month) || day == 0 || day > real_length {
            return Err(Error::Date(format!("{year:04}-{month:02}-{day:02} does not exist in this calendar")));
        }
        if self == Self::Standard && (year, month, day) >= (1582, 10, 5) && (year, month, day) < (1582, 10, 15) {
            return Err(Error::Date(format!("{year:04}-{month:02}-{day:02} falls in the Julian-Gregorian gap")));
        }
        let (d, m) = (i64::from(day), i64::from(month));
        Ok(match self {
            Self::Day360 => year * 360 + (m - 1) * 30 + d - 1,
            Self::NoLeap | Self::AllLeap => {
                let days_before: i64 = (1..month).map(|mm| i64::from(self.month_length(year, mm))).sum();
                year * if self == Self::NoLeap { 365 } else { 366 } + days_before + d - 1
            }
            _ => {
                let a = (14 - m).div_euclid(12);
                let y = year + 4800 - a;
                let mm = m + 12 * a - 3;
                let common = d + (153 * mm + 2).div_euclid(5) + 365 * y + y.div_euclid(4);
                if julian_rules {
                    common - 32083
                } else {
                    common - y.div_euclid(100) + y.div_euclid(400) - 32045
                }
            }
        })
    }

    /// The date of day number `n` (the inverse of [`Calendar::day_number`]).
    pub fn date(self, n: i64) -> (i64, u8, u8) {
        match self {
            Self::Day360 => {
                let year = n.div_euclid(360);
                let rest = n.rem_euclid(360);
                (year, (rest / 30 + 1) as u8, (rest % 30 + 1) as u8)
            }
            Self::NoLeap | Self::AllLeap => {
                let len = if self == Self::NoLeap { 365 } else { 366 };
                let year = n.div_euclid(len);
                let mut rest = n.rem_euclid(len);
                let mut month = 1;
                while rest >= i64::from(self.month_length(year, month)) {
                    rest -= i64::from(self.month_length(year, month));
                    month += 1;
                }
                (year, month, (rest + 1) as u8)
            }
            _ => {
                let gregorian = match self {
                    Self::Julian => false,
                    Self::Standard => n >= GREGORIAN_START,
                    _ => true,
                };
                let (b, c) = if gregorian {
                    let a = n + 32044;
                    let b = (4 * a + 3).div_euclid(146_097);
                    (b, a - (146_097 * b).div_euclid(4))
                } else {
                    (0, n + 32082)
                };
                let d = (4 * c + 3).div_euclid(1461);
                let e = c - (1461 * d).div_euclid(4);
                let m = (5 * e + 2).div_euclid(153);
                let day = e - (153 * m + 2).div_euclid(5) + 1;
                let month = m + 3 - 12 * m.div_euclid(10);
                let year = 100 * b + d - 4800 + m.div_euclid(10);
                (year, month as u8, day as u8)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_in_every_calendar() {
        for calendar in [
            Calendar::Standard,
            Calendar::ProlepticGregorian,
            Calendar::Julian,
            Calendar::NoLeap,
            Calendar::AllLeap,
            Calendar::Day360,
        ] {
            let start = calendar.day_number(-10, 1, 1).unwrap();
            for n in start..start + 800_000 {
                let (y, m, d) = calendar.date(n);
                assert_eq!(calendar.day_number(y, m, d).unwrap(), n, "{calendar:?} {y}-{m}-{d}");
            }
        }
    }

    #[test]
    fn the_standard_calendar_jumps_from_julian_to_gregorian() {
        let c = Calendar::Standard;
        assert_eq!(c.day_number(1582, 10, 15).unwrap() - c.day_number(1582, 10, 4).unwrap(), 1);
        assert!(c.day_number(1582, 10, 10).is_err());
        assert_eq!(c.day_number(2000, 1, 1).unwrap(), 2_451_545);
        assert!(Calendar::Day360.day_number(2001, 2, 30).is_ok());
        assert!(Calendar::NoLeap.day_number(2000, 2, 29).is_err());
        assert!(Calendar::Julian.day_number(1900, 2, 29).is_ok());
        assert!(Calendar::ProlepticGregorian.day_number(1900, 2, 29).is_err());
    }
}

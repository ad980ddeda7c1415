"""Prints what cftime.num2date gives for a spread of units, calendars and values (JSON)."""

import json

import cftime
import numpy as np

CALENDARS = ["standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day",
             "all_leap", "366_day", "360_day"]
UNITS = ["days since 1850-01-01", "hours since 2000-01-01 12:00:00", "seconds since 1970-01-01T00:00:00Z",
         "minutes since 1582-10-01", "days since 0001-01-01", "days since 1582-10-15 00:00:00",
         "milliseconds since 2010-02-28 23:59:59.5", "weeks since 1900-03-01"]

rng = np.random.default_rng(7)
values = [0.0, 0.5, 1.0, 59.0, 365.25, 1461.0, 10000.123456, -1.0, -400.75] + list(rng.uniform(-2e5, 2e5, 20).round(6))
cases = []
for calendar in CALENDARS:
    for units in UNITS:
        dates = []
        for v in values:
            try:
                d = cftime.num2date(v, units, calendar, only_use_cftime_datetimes=True)
            except ValueError:
                dates.append(None)
                continue
            text = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
            if d.microsecond:
                text += f".{d.microsecond:06d}"
            dates.append(text)
        cases.append({"units": units, "calendar": calendar, "values": values, "dates": dates})
print(json.dumps(cases))

//! Time for `when` conditions: the time zone that `days` and `hours` are read in, and the
//! conversion of TOML date-times into Unix seconds for `not_before` and `not_after`.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use toml::value::{Datetime, Offset};

const SECONDS_PER_DAY: i64 = 86_400;

/// The time zone of a `when` table: UTC unless the table or one around it names an IANA
/// zone. Zones come from the time zone database built into the binary, so a policy means
/// the same on every machine, and `check` agrees with the proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Zone(Option<TimeZone>);

impl Zone {
    /// Looks up an IANA time zone name such as `Europe/Berlin`, ignoring ASCII case.
    pub(crate) fn named(name: &str) -> Option<Zone> {
        let zone = TimeZoneDatabase::bundled().get(name).ok()?;
        Some(Zone(Some(zone)))
    }

    /// Returns the Unix time shifted by the zone's UTC offset at that instant, so that
    /// UTC arithmetic on the result reads the zone's wall clock.
    pub(crate) fn wall_clock_seconds(&self, unix_time: i64) -> i64 {
        let Some(zone) = &self.0 else {
            return unix_time;
        };
        match Timestamp::from_second(unix_time) {
            Ok(timestamp) => unix_time + i64::from(zone.to_offset(timestamp).seconds()),
            // jiff's timestamps end at the years -9999 and 9999, so UTC is used beyond.
            Err(_) => unix_time,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_ref().and_then(TimeZone::iana_name) {
            Some(name) => f.write_str(name),
            None => f.write_str("UTC"),
        }
    }
}

/// The reason a TOML date-time cannot be turned into one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeError {
    /// Not a date or a date-time (a bare time, say).
    Malformed,
    /// A date-time without an offset, in a table without a time zone.
    NoOffset,
    /// A wall-clock time that the zone's clocks pass twice, when they are set back.
    Repeated,
    /// A wall-clock time that the zone's clocks skip, when they are set forward.
    Skipped,
}

/// Converts a TOML date-time into Unix seconds. A date-time with an offset means that
/// instant. Without an offset, a date means the start of that day in the table's zone
/// (midnight, unless the clocks change then), and a date-time means that wall-clock time
/// in the table's zone. In a table without a zone, a date-time without an offset is
/// rejected, because the zone its author meant is unknown.
pub(crate) fn unix_seconds(datetime: &Datetime, zone: &Zone) -> Result<i64, TimeError> {
    let date = datetime.date.ok_or(TimeError::Malformed)?;
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let (hour, minute, second) = datetime
        .time
        .map_or((0, 0, 0), |time| (time.hour, time.minute, time.second));
    let seconds_of_day = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    let wall_clock = days * SECONDS_PER_DAY + seconds_of_day;

    match (datetime.offset, &zone.0) {
        (Some(Offset::Z), _) => Ok(wall_clock),
        (Some(Offset::Custom { minutes }), _) => Ok(wall_clock - i64::from(minutes) * 60),
        (None, None) if datetime.time.is_none() => Ok(wall_clock),
        (None, None) => Err(TimeError::NoOffset),
        (None, Some(zone)) => {
            let civil = DateTime::new(
                i16::try_from(date.year).map_err(|_| TimeError::Malformed)?,
                i8::try_from(date.month).map_err(|_| TimeError::Malformed)?,
                i8::try_from(date.day).map_err(|_| TimeError::Malformed)?,
                i8::try_from(hour).map_err(|_| TimeError::Malformed)?,
                i8::try_from(minute).map_err(|_| TimeError::Malformed)?,
                i8::try_from(second).map_err(|_| TimeError::Malformed)?,
                0,
            )
            .map_err(|_| TimeError::Malformed)?;
            let offset = match zone.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset,
                // A date means the first instant of its day, as jiff's `start_of_day` reads
                // it: the earlier of two midnights, or the instant the clocks skip to when
                // midnight falls in a gap (Santiago and Beirut skip 00:00-01:00).
                AmbiguousOffset::Fold { before, .. } if datetime.time.is_none() => before,
                AmbiguousOffset::Gap { before, .. } if datetime.time.is_none() => before,
                AmbiguousOffset::Fold { .. } => return Err(TimeError::Repeated),
                AmbiguousOffset::Gap { .. } => return Err(TimeError::Skipped),
            };
            Ok(wall_clock - i64::from(offset.seconds()))
        }
    }
}

/// Returns the days since 1970-01-01 of a proleptic Gregorian date, counted in 400-year eras
/// of 146,097 days so that leap years need no loop.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests;

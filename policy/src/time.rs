//! Conversion of TOML date-times into Unix seconds, for `not_before` and `not_after`.

use toml::value::{Datetime, Offset};

const SECONDS_PER_DAY: i64 = 86_400;

/// Converts a TOML date-time into Unix seconds. A date without a time means midnight UTC.
/// A date-time without an offset is rejected, because the time zone its author meant is
/// unknown.
pub(crate) fn unix_seconds(datetime: &Datetime) -> Result<i64, ()> {
    let date = datetime.date.ok_or(())?;
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let Some(time) = datetime.time else {
        return Ok(days * SECONDS_PER_DAY);
    };
    let offset_minutes = match datetime.offset.ok_or(())? {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes),
    };
    let seconds_of_day =
        i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second);
    Ok(days * SECONDS_PER_DAY + seconds_of_day - offset_minutes * 60)
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
mod tests {
    use super::*;

    #[test]
    fn epoch_is_day_zero() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn leap_day_converts() {
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn offset_is_subtracted() {
        let utc: Datetime = "2026-01-31T18:00:00Z".parse().unwrap();
        let plus_two: Datetime = "2026-01-31T20:00:00+02:00".parse().unwrap();
        assert_eq!(unix_seconds(&utc), unix_seconds(&plus_two));
        assert_eq!(unix_seconds(&utc), Ok(1_769_882_400));
    }

    #[test]
    fn date_only_means_midnight_utc() {
        let date: Datetime = "2026-01-31".parse().unwrap();
        assert_eq!(unix_seconds(&date), Ok(1_769_817_600));
    }

    #[test]
    fn local_datetime_is_rejected() {
        let local: Datetime = "2026-01-31T18:00:00".parse().unwrap();
        assert_eq!(unix_seconds(&local), Err(()));
    }
}

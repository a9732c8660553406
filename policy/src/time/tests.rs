use super::*;

fn datetime(text: &str) -> Datetime {
    text.parse().unwrap()
}

fn berlin() -> Zone {
    Zone::named("Europe/Berlin").unwrap()
}

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
    let utc = unix_seconds(&datetime("2026-01-31T18:00:00Z"), &Zone::default());
    let plus_two = unix_seconds(&datetime("2026-01-31T20:00:00+02:00"), &Zone::default());
    assert_eq!(utc, plus_two);
    assert_eq!(utc, Ok(1_769_882_400));
}

#[test]
fn date_only_means_midnight_utc() {
    let date = datetime("2026-01-31");
    assert_eq!(unix_seconds(&date, &Zone::default()), Ok(1_769_817_600));
}

#[test]
fn local_datetime_is_rejected_in_utc() {
    let local = datetime("2026-01-31T18:00:00");
    assert_eq!(
        unix_seconds(&local, &Zone::default()),
        Err(TimeError::NoOffset)
    );
}

#[test]
fn bare_time_is_malformed() {
    let time = datetime("18:00:00");
    assert_eq!(unix_seconds(&time, &berlin()), Err(TimeError::Malformed));
}

#[test]
fn local_datetime_is_read_in_the_zone() {
    // Winter in Berlin is UTC+1, summer UTC+2.
    let winter = unix_seconds(&datetime("2026-01-31T19:00:00"), &berlin());
    assert_eq!(winter, Ok(1_769_882_400));
    let summer = unix_seconds(&datetime("2026-07-01T20:00:00"), &berlin());
    let summer_utc = unix_seconds(&datetime("2026-07-01T18:00:00Z"), &Zone::default());
    assert_eq!(summer, summer_utc);
}

#[test]
fn date_only_means_midnight_in_the_zone() {
    let date = unix_seconds(&datetime("2026-01-31"), &berlin());
    assert_eq!(date, Ok(1_769_817_600 - 3600));
}

#[test]
fn explicit_offset_wins_over_the_zone() {
    let with_offset = unix_seconds(&datetime("2026-01-31T18:00:00Z"), &berlin());
    assert_eq!(with_offset, Ok(1_769_882_400));
}

#[test]
fn clock_change_times_are_rejected() {
    // Berlin set its clocks forward at 02:00 on 2026-03-29 and back at 03:00 on 2026-10-25.
    let skipped = unix_seconds(&datetime("2026-03-29T02:30:00"), &berlin());
    assert_eq!(skipped, Err(TimeError::Skipped));
    let repeated = unix_seconds(&datetime("2026-10-25T02:30:00"), &berlin());
    assert_eq!(repeated, Err(TimeError::Repeated));
}

#[test]
fn wall_clock_follows_daylight_saving() {
    let winter_noon_utc = 1_769_860_800; // 2026-01-31T12:00:00Z
    assert_eq!(
        berlin().wall_clock_seconds(winter_noon_utc),
        winter_noon_utc + 3600
    );
    let summer_noon_utc = 1_782_907_200; // 2026-07-01T12:00:00Z
    assert_eq!(
        berlin().wall_clock_seconds(summer_noon_utc),
        summer_noon_utc + 7200
    );
    assert_eq!(Zone::default().wall_clock_seconds(42), 42);
}

#[test]
fn zone_names_are_looked_up_without_case() {
    assert_eq!(Zone::named("europe/berlin"), Some(berlin()));
    assert_eq!(berlin().to_string(), "Europe/Berlin");
    assert_eq!(Zone::default().to_string(), "UTC");
    assert_eq!(Zone::named("Europe/Berln"), None);
}

#[test]
fn date_in_midnight_gap_starts_after_it() {
    // Santiago and Beirut set their clocks forward from 00:00 to 01:00, so the day begins
    // at 01:00 local time.
    let santiago = Zone::named("America/Santiago").unwrap();
    let spring = unix_seconds(&datetime("2026-09-06"), &santiago);
    let first_instant = unix_seconds(&datetime("2026-09-06T01:00:00-03:00"), &santiago);
    assert_eq!(spring, first_instant);
    assert_eq!(spring, Ok(1_788_667_200));

    let beirut = Zone::named("Asia/Beirut").unwrap();
    let spring = unix_seconds(&datetime("2026-03-29"), &beirut);
    assert_eq!(spring, Ok(1_774_735_200));
}

#[test]
fn date_with_repeated_midnight_starts_first() {
    // The Azores set their clocks back from 01:00 to 00:00 on 2026-10-25, so midnight
    // happens twice and the day begins at the first one, still at UTC+0.
    let azores = Zone::named("Atlantic/Azores").unwrap();
    let autumn = unix_seconds(&datetime("2026-10-25"), &azores);
    assert_eq!(autumn, Ok(1_792_886_400));
}

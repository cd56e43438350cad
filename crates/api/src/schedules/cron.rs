//! When a schedule fires next: five-field cron expressions (minute, hour, day of month, month, day
//! of week) in an IANA time zone, as the original's `scheduler.ComputeNextRun`
//! (`internal/scheduler/scheduler.go:828-841` at 624ef4d0, robfig/cron's standard parser).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use thiserror::Error;

/// Why a schedule has no next run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CronError {
    #[error("invalid timezone: {0}")]
    Timezone(String),
    #[error("invalid cron expression")]
    Expression,
    /// A valid expression that never matches (Feb 30): the original stored the zero time and
    /// then fired the schedule on every tick.
    #[error("cron expression never fires")]
    Never,
}

/// How far ahead a next run is looked for, as the original's library.
const HORIZON_YEARS: i32 = 5;

/// The zone of a schedule: `""` (and `Local`, which has no meaning for a server shared by
/// replicas in different places) is UTC.
pub fn parse_timezone(timezone: &str) -> Result<Tz, CronError> {
    match timezone {
        "" | "UTC" | "Local" => Ok(Tz::UTC),
        name => name
            .parse::<Tz>()
            .map_err(|_| CronError::Timezone(name.to_string())),
    }
}

/// The first fire time strictly after `after`, evaluated in the zone, in UTC. A leading
/// `CRON_TZ=<zone> ` or `TZ=<zone> ` overrides `timezone`, as in the original.
pub fn next_run(
    expression: &str,
    timezone: &str,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, CronError> {
    let (expression, timezone) = split_zone_prefix(expression, timezone)?;
    let zone = parse_timezone(timezone)?;
    let cron = parse(expression)?;
    let start = after.with_timezone(&zone);
    let next = cron
        .find_next_occurrence(&start, false)
        .map_err(|_| CronError::Never)?;
    let horizon = start
        .date_naive()
        .with_year(start.year() + HORIZON_YEARS)
        .unwrap_or(chrono::NaiveDate::MAX);
    if next.date_naive() > horizon {
        return Err(CronError::Never);
    }
    Ok(next.with_timezone(&Utc))
}

use chrono::Datelike;

fn split_zone_prefix<'a>(
    expression: &'a str,
    timezone: &'a str,
) -> Result<(&'a str, &'a str), CronError> {
    let expression = expression.trim();
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(rest) = expression.strip_prefix(prefix) {
            // The original's library panicked on a prefix without an expression after it.
            let (zone, rest) = rest.split_once(' ').ok_or(CronError::Expression)?;
            return Ok((rest, zone));
        }
    }
    Ok((expression, timezone))
}

/// Exactly five fields, without the extensions croner accepts but robfig's standard parser does
/// not (`@daily`, `L`, `W`, `#`, a seconds field).
fn parse(expression: &str) -> Result<Cron, CronError> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 || expression.contains('@') {
        return Err(CronError::Expression);
    }
    let day_of_month = fields[2];
    let day_of_week = fields[4];
    if day_of_month.contains(['L', 'W', 'l', 'w']) || day_of_week.contains(['#', 'L', 'l']) {
        return Err(CronError::Expression);
    }
    Cron::new(expression)
        .parse()
        .map_err(|_| CronError::Expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn next_run_is_strictly_after_and_in_the_zone() {
        let after = at("2026-05-06T10:00:00Z");
        assert_eq!(
            next_run("0 9 * * *", "UTC", after),
            Ok(at("2026-05-07T09:00:00Z"))
        );
        assert_eq!(
            next_run("0 10 * * *", "", after),
            Ok(at("2026-05-07T10:00:00Z"))
        );
        // 09:00 in New York (EDT, UTC-4) is 13:00 UTC.
        assert_eq!(
            next_run("0 9 * * *", "America/New_York", after),
            Ok(at("2026-05-06T13:00:00Z"))
        );
        assert_eq!(
            next_run("CRON_TZ=Asia/Tokyo 0 9 * * *", "UTC", after),
            Ok(at("2026-05-07T00:00:00Z"))
        );
        assert_eq!(
            next_run("*/15 * * * *", "UTC", after),
            Ok(at("2026-05-06T10:15:00Z"))
        );
        assert_eq!(
            next_run("0 9 * * MON", "UTC", after),
            Ok(at("2026-05-11T09:00:00Z"))
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let after = at("2026-05-06T10:00:00Z");
        assert_eq!(
            next_run("0 9 * * *", "Mars/Olympus", after),
            Err(CronError::Timezone("Mars/Olympus".to_string()))
        );
        for bad in [
            "",
            "not a cron",
            "0 0 9 * * *",
            "@daily",
            "61 * * * *",
            "0 0 L * *",
            "CRON_TZ=UTC",
        ] {
            assert_eq!(
                next_run(bad, "UTC", after),
                Err(CronError::Expression),
                "{bad}"
            );
        }
        assert_eq!(next_run("0 0 30 2 *", "UTC", after), Err(CronError::Never));
    }
}

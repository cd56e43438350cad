//! JSON helpers for wire parity with the Go original.

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::ApiError;

/// `value` as JSON text, for what is stored or announced as it is (activity bodies, event
/// payloads) without building a tree again.
pub fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("values with string keys serialize")
}

/// Parses a JSON body, answering 400 with the route's own message when it does not bind.
pub fn parse_body<T: DeserializeOwned>(body: &[u8], message: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::BadRequest(message.to_string()))
}

/// Writes an `f64` the way Go's encoding/json does: integral values without a fraction
/// (`100`, not `100.0`), so clients grepping `"x":100` keep working.
pub fn go_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// Writes a UTC timestamp as RFC 3339 with `Z` and trailing fraction zeros trimmed (Go's
/// RFC3339Nano).
pub fn go_time<S: Serializer>(
    value: &chrono::DateTime<chrono::Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_go_time(value))
}

/// Like [`go_time`] for an optional timestamp (`null` when absent).
pub fn go_time_opt<S: Serializer>(
    value: &Option<chrono::DateTime<chrono::Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(t) => serializer.serialize_str(&format_go_time(t)),
        None => serializer.serialize_none(),
    }
}

/// RFC 3339 UTC with nanoseconds, trailing zeros of the fraction trimmed.
pub fn format_go_time(value: &chrono::DateTime<chrono::Utc>) -> String {
    let text = value.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn integral_floats_print_without_fraction() {
        #[derive(serde::Serialize)]
        struct P {
            #[serde(serialize_with = "go_float")]
            x: f64,
            #[serde(serialize_with = "go_float")]
            y: f64,
        }
        let text = serde_json::to_string(&P { x: 100.0, y: 0.25 }).unwrap();
        assert_eq!(text, r#"{"x":100,"y":0.25}"#);
    }

    #[test]
    fn times_trim_fraction_zeros() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_go_time(&t), "2026-01-02T03:04:05Z");
        let t = t + chrono::Duration::milliseconds(120);
        assert_eq!(format_go_time(&t), "2026-01-02T03:04:05.12Z");
    }
}

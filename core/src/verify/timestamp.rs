//! Signed timestamps and the freshness window. A timestamp is only trusted when the signature
//! covers it, so the window is checked after the signature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::VerifyError;

/// Where the sender puts the timestamp. In YAML: `{header: NAME}`, `{list_key: t}` or
/// `{json: /pointer}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "FromKeys")]
pub enum TimestampFrom {
    /// Its own header (`X-Slack-Request-Timestamp`).
    Header(String),
    /// A key of the signature header's list (Stripe's `t=`, Buildkite's `timestamp=`).
    ListKey(String),
    /// A JSON pointer into the signed body (Linear's `/webhookTimestamp`).
    Json(String),
}

/// The YAML form of [`TimestampFrom`]: a mapping with one key. (serde_norway reads a plain
/// enum only from a YAML tag such as `!header X`, which nobody writes by hand.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromKeys {
    header: Option<String>,
    list_key: Option<String>,
    json: Option<String>,
}

impl TryFrom<FromKeys> for TimestampFrom {
    type Error = &'static str;

    fn try_from(k: FromKeys) -> Result<Self, Self::Error> {
        match (k.header, k.list_key, k.json) {
            (Some(h), None, None) => Ok(TimestampFrom::Header(h)),
            (None, Some(l), None) => Ok(TimestampFrom::ListKey(l)),
            (None, None, Some(j)) if j.starts_with('/') => Ok(TimestampFrom::Json(j)),
            (None, None, Some(_)) => Err("`json` takes a JSON pointer such as /webhookTimestamp"),
            _ => Err("write exactly one of {header: NAME}, {list_key: KEY}, {json: /pointer}"),
        }
    }
}

/// How the timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// Unix seconds.
    #[default]
    Unix,
    /// Unix milliseconds.
    UnixMs,
    /// RFC 3339 / ISO 8601 (`2023-11-14T22:13:20Z`).
    Rfc3339,
}

/// The timestamp rule of a scheme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// Where it is.
    pub from: TimestampFrom,
    /// How it is written.
    #[serde(default)]
    pub format: TimestampFormat,
    /// Largest accepted distance from now, in seconds; `None` signs the timestamp without a
    /// window (Discord documents none).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: Option<u64>,
    /// Only reject timestamps too far in the past (Stripe's SDKs), not in the future.
    #[serde(default)]
    pub past_only: bool,
    /// Reject a request without it. When false, a missing timestamp skips the window (the
    /// Linear SDK's behaviour, where the field sits inside the signed body).
    #[serde(default = "yes")]
    pub required: bool,
}

fn default_tolerance() -> Option<u64> {
    Some(300)
}

fn yes() -> bool {
    true
}

impl TimestampSpec {
    /// A header timestamp in Unix seconds with a symmetric window.
    pub fn header(name: &str, tolerance_secs: u64) -> Self {
        TimestampSpec {
            from: TimestampFrom::Header(name.to_ascii_lowercase()),
            format: TimestampFormat::Unix,
            tolerance_secs: Some(tolerance_secs),
            past_only: false,
            required: true,
        }
    }

    /// A key of the signature list in Unix seconds with a symmetric window.
    pub fn list_key(key: &str, tolerance_secs: u64) -> Self {
        TimestampSpec {
            from: TimestampFrom::ListKey(key.to_owned()),
            ..Self::header("", tolerance_secs)
        }
    }

    /// Parses a presented timestamp into Unix milliseconds.
    pub fn parse(&self, text: &str) -> Result<i64, VerifyError> {
        parse(self.format, text)
    }

    /// Checks the window for a timestamp (Unix milliseconds) against `now`.
    pub fn check(&self, at_ms: i64, now: SystemTime) -> Result<(), VerifyError> {
        let Some(tolerance) = self.tolerance_secs else {
            return Ok(());
        };
        let now_ms = millis(now);
        let age = now_ms.saturating_sub(at_ms);
        let limit = (tolerance as i64).saturating_mul(1000);
        if age > limit || (!self.past_only && -age > limit) {
            return Err(VerifyError::Stale);
        }
        Ok(())
    }
}

/// Unix milliseconds of a time (negative before 1970).
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The time `ms` milliseconds after the epoch.
pub fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn parse(format: TimestampFormat, text: &str) -> Result<i64, VerifyError> {
    let digits = |t: &str| {
        (!t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<i64>().ok())
            .flatten()
            .ok_or(VerifyError::Malformed)
    };
    match format {
        TimestampFormat::Unix => Ok(digits(text)?.saturating_mul(1000)),
        TimestampFormat::UnixMs => digits(text),
        TimestampFormat::Rfc3339 => humantime::parse_rfc3339(text)
            .map(millis)
            .map_err(|_| VerifyError::Malformed),
    }
}

/// Formats `now` the way a sender would, for `hookwire send`.
pub fn format(format: TimestampFormat, now: SystemTime) -> String {
    match format {
        TimestampFormat::Unix => (millis(now) / 1000).to_string(),
        TimestampFormat::UnixMs => millis(now).to_string(),
        TimestampFormat::Rfc3339 => humantime::format_rfc3339_seconds(now).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_symmetric_unless_past_only() {
        let now = from_millis(1_700_000_000_000);
        let mut spec = TimestampSpec::header("t", 300);
        assert_eq!(spec.check(1_700_000_000_000 - 300_000, now), Ok(()));
        assert_eq!(
            spec.check(1_700_000_000_000 - 300_001, now),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            spec.check(1_700_000_000_000 + 300_001, now),
            Err(VerifyError::Stale)
        );
        spec.past_only = true;
        assert_eq!(spec.check(1_700_000_000_000 + 900_000, now), Ok(()));
    }

    #[test]
    fn formats_parse() {
        assert_eq!(parse(TimestampFormat::Unix, "1700000000"), Ok(1_700_000_000_000));
        assert_eq!(
            parse(TimestampFormat::UnixMs, "1700000000123"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse(TimestampFormat::Rfc3339, "2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse(TimestampFormat::Unix, "-5"), Err(VerifyError::Malformed));
        assert_eq!(parse(TimestampFormat::Unix, "1e9"), Err(VerifyError::Malformed));
        assert_eq!(parse(TimestampFormat::Unix, ""), Err(VerifyError::Malformed));
    }
}

//! Time-series requests: a validated range and the bucket width to aggregate it by.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::FieldError;

/// Bucket widths a client may ask for, with their names on the wire.
pub const BUCKETS: [(&str, Duration); 6] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
    ("15m", Duration::from_secs(900)),
    ("1h", Duration::from_secs(3600)),
    ("6h", Duration::from_secs(6 * 3600)),
    ("1d", Duration::from_secs(86400)),
];

/// Most buckets an answer may hold; the automatic choice stays under it.
pub const MAX_POINTS: u64 = 1000;

/// Longest range one request may cover.
pub const MAX_SPAN: Duration = Duration::from_secs(400 * 86400);

/// A range `[from, to)` and the bucket width to aggregate it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Duration,
    pub bucket_name: &'static str,
}

impl SeriesRequest {
    /// Checks the range and picks the bucket: the one asked for, or the finest that keeps the
    /// answer within [`MAX_POINTS`].
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let span = (to - from).to_std().ok().filter(|span| !span.is_zero());
        match span {
            None => errors.push(FieldError::new("to", "must be later than `from`")),
            Some(span) if span > MAX_SPAN => errors.push(FieldError::new(
                "to",
                format!(
                    "the range may span at most {} days",
                    MAX_SPAN.as_secs() / 86400
                ),
            )),
            Some(_) => {}
        }
        let chosen = match bucket {
            Some(name) => match BUCKETS.iter().find(|(known, _)| *known == name) {
                Some(&found) => Some(found),
                None => {
                    let names: Vec<_> = BUCKETS.iter().map(|(name, _)| *name).collect();
                    errors.push(FieldError::new(
                        "bucket",
                        format!("must be one of {}", names.join(", ")),
                    ));
                    None
                }
            },
            None => span.map(auto_bucket),
        };
        if let (Some(span), Some((name, width))) = (span, chosen)
            && points(span, width) > MAX_POINTS * 10
        {
            errors.push(FieldError::new(
                "bucket",
                format!(
                    "`{name}` would give {} points; choose a wider bucket",
                    points(span, width)
                ),
            ));
        }
        match chosen {
            Some((bucket_name, bucket)) if errors.is_empty() => Ok(Self {
                from,
                to,
                bucket,
                bucket_name,
            }),
            _ => Err(errors),
        }
    }
}

fn points(span: Duration, width: Duration) -> u64 {
    span.as_secs().div_ceil(width.as_secs())
}

fn auto_bucket(span: Duration) -> (&'static str, Duration) {
    BUCKETS
        .iter()
        .copied()
        .find(|&(_, width)| points(span, width) <= MAX_POINTS)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    fn request(span: Span, bucket: Option<&str>) -> Result<SeriesRequest, Vec<String>> {
        let to = Utc::now();
        SeriesRequest::new(to - span, to, bucket)
            .map_err(|errors| errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn the_automatic_bucket_is_the_finest_under_a_thousand_points() {
        assert_eq!(request(Span::hours(1), None).unwrap().bucket_name, "1m");
        assert_eq!(request(Span::hours(16), None).unwrap().bucket_name, "1m");
        assert_eq!(request(Span::hours(17), None).unwrap().bucket_name, "5m");
        assert_eq!(request(Span::days(7), None).unwrap().bucket_name, "15m");
        assert_eq!(request(Span::days(30), None).unwrap().bucket_name, "1h");
        assert_eq!(request(Span::days(365), None).unwrap().bucket_name, "1d");
    }

    #[test]
    fn a_requested_bucket_is_kept_when_known_and_not_absurd() {
        assert_eq!(
            request(Span::days(1), Some("5m")).unwrap().bucket_name,
            "5m"
        );
        assert_eq!(
            request(Span::days(1), Some("2m")),
            Err(vec!["bucket".into()])
        );
        assert_eq!(
            request(Span::days(30), Some("1m")),
            Err(vec!["bucket".into()]),
            "43 200 points"
        );
    }

    #[test]
    fn the_range_must_be_forward_and_bounded() {
        assert_eq!(request(Span::zero(), None), Err(vec!["to".into()]));
        assert_eq!(request(Span::hours(-1), None), Err(vec!["to".into()]));
        assert_eq!(request(Span::days(401), None), Err(vec!["to".into()]));
    }
}

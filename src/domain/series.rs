//! Time-series requests: a validated range and the bucket width to aggregate it by.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::FieldError;

/// Bucket widths a client may ask for, by their names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
pub enum Bucket {
    #[oai(rename = "1m")]
    OneMinute,
    #[oai(rename = "5m")]
    FiveMinutes,
    #[oai(rename = "15m")]
    FifteenMinutes,
    #[oai(rename = "1h")]
    OneHour,
    #[oai(rename = "6h")]
    SixHours,
    #[oai(rename = "1d")]
    OneDay,
}

/// Where a bucket's aggregates are read from: the coarsest data that has its resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The raw snapshots (buckets finer than the smallest rollup).
    Raw,
    /// The `*_metrics_5m` rollups.
    FiveMinutes,
    /// The `*_metrics_1h` rollups.
    OneHour,
}

impl Bucket {
    pub const ALL: [Bucket; 6] = [
        Bucket::OneMinute,
        Bucket::FiveMinutes,
        Bucket::FifteenMinutes,
        Bucket::OneHour,
        Bucket::SixHours,
        Bucket::OneDay,
    ];

    pub fn width(self) -> Duration {
        Duration::from_secs(match self {
            Bucket::OneMinute => 60,
            Bucket::FiveMinutes => 300,
            Bucket::FifteenMinutes => 900,
            Bucket::OneHour => 3600,
            Bucket::SixHours => 6 * 3600,
            Bucket::OneDay => 86400,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::OneMinute => "1m",
            Bucket::FiveMinutes => "5m",
            Bucket::FifteenMinutes => "15m",
            Bucket::OneHour => "1h",
            Bucket::SixHours => "6h",
            Bucket::OneDay => "1d",
        }
    }

    pub fn source(self) -> Source {
        match self {
            Bucket::OneMinute => Source::Raw,
            Bucket::FiveMinutes | Bucket::FifteenMinutes => Source::FiveMinutes,
            Bucket::OneHour | Bucket::SixHours | Bucket::OneDay => Source::OneHour,
        }
    }
}

/// Most buckets an answer may hold; the automatic choice stays under it.
pub const MAX_POINTS: u64 = 1000;

/// Longest range one request may cover.
pub const MAX_SPAN: Duration = Duration::from_secs(400 * 86400);

/// The range a request that names no start covers: the hour before its end.
pub const DEFAULT_SPAN: chrono::Duration = chrono::Duration::hours(1);

/// A range `[since, until)` widened to whole buckets, and the bucket width to aggregate it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRequest {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket: Bucket,
}

impl SeriesRequest {
    /// Checks the range and picks the bucket: the one asked for, or the finest that keeps the
    /// answer within [`MAX_POINTS`]. A range left open ends `now` and starts [`DEFAULT_SPAN`]
    /// before its end. The range is widened to whole buckets (aligned to the Unix epoch, as
    /// `time_bucket` aligns them), so every bucket of the answer is complete.
    pub fn new(
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        bucket: Option<Bucket>,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let until = until.unwrap_or(now);
        let since = since.unwrap_or(until - DEFAULT_SPAN);
        let mut errors = Vec::new();
        let span = (until - since).to_std().ok().filter(|span| !span.is_zero());
        match span {
            None => errors.push(FieldError::new("until", "must be later than `since`")),
            Some(span) if span > MAX_SPAN => errors.push(FieldError::new(
                "until",
                format!(
                    "the range may span at most {} days",
                    MAX_SPAN.as_secs() / 86400
                ),
            )),
            Some(_) => {}
        }
        let chosen = bucket.or_else(|| span.map(auto_bucket));
        if let (Some(span), Some(bucket)) = (span, chosen)
            && points(span, bucket.width()) > MAX_POINTS * 10
        {
            errors.push(FieldError::new(
                "bucket",
                format!(
                    "`{}` would give {} points; choose a wider bucket",
                    bucket.name(),
                    points(span, bucket.width())
                ),
            ));
        }
        match chosen {
            Some(bucket) if errors.is_empty() => Ok(Self {
                since: align_down(since, bucket.width()),
                until: align_up(until, bucket.width()),
                bucket,
            }),
            _ => Err(errors),
        }
    }
}

fn align_down(time: DateTime<Utc>, width: Duration) -> DateTime<Utc> {
    let width = width.as_secs() as i64;
    let seconds = time.timestamp().div_euclid(width) * width;
    DateTime::from_timestamp(seconds, 0).unwrap_or(time)
}

fn align_up(time: DateTime<Utc>, width: Duration) -> DateTime<Utc> {
    let down = align_down(time, width);
    if down == time {
        time
    } else {
        down + chrono::Duration::seconds(width.as_secs() as i64)
    }
}

fn points(span: Duration, width: Duration) -> u64 {
    span.as_secs().div_ceil(width.as_secs())
}

fn auto_bucket(span: Duration) -> Bucket {
    Bucket::ALL
        .into_iter()
        .find(|bucket| points(span, bucket.width()) <= MAX_POINTS)
        .unwrap_or(Bucket::OneDay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    fn request(span: Span, bucket: Option<Bucket>) -> Result<SeriesRequest, Vec<String>> {
        let to = Utc::now();
        SeriesRequest::new(Some(to - span), Some(to), bucket, to)
            .map_err(|errors| errors.into_iter().map(|e| e.field).collect())
    }

    fn chosen(span: Span) -> &'static str {
        request(span, None).unwrap().bucket.name()
    }

    #[test]
    fn the_automatic_bucket_is_the_finest_under_a_thousand_points() {
        assert_eq!(chosen(Span::hours(1)), "1m");
        assert_eq!(chosen(Span::hours(16)), "1m");
        assert_eq!(chosen(Span::hours(17)), "5m");
        assert_eq!(chosen(Span::days(7)), "15m");
        assert_eq!(chosen(Span::days(30)), "1h");
        assert_eq!(chosen(Span::days(365)), "1d");
    }

    #[test]
    fn a_requested_bucket_is_kept_unless_absurd() {
        let day = request(Span::days(1), Some(Bucket::FiveMinutes)).unwrap();
        assert_eq!(day.bucket, Bucket::FiveMinutes);
        assert_eq!(
            request(Span::days(30), Some(Bucket::OneMinute)),
            Err(vec!["bucket".into()]),
            "43 200 points"
        );
    }

    #[test]
    fn the_range_is_widened_to_whole_buckets() {
        let from = "2026-12-01T10:07:30Z".parse().unwrap();
        let to = "2026-12-01T12:00:00Z".parse().unwrap();
        let request =
            SeriesRequest::new(Some(from), Some(to), Some(Bucket::FifteenMinutes), to).unwrap();
        assert_eq!(request.since.to_rfc3339(), "2026-12-01T10:00:00+00:00");
        assert_eq!(request.until, to, "already aligned");
        let until = from + Span::minutes(1);
        let request = SeriesRequest::new(Some(from), Some(until), Some(Bucket::OneHour), to);
        assert_eq!(
            request.unwrap().until.to_rfc3339(),
            "2026-12-01T11:00:00+00:00"
        );
    }

    #[test]
    fn each_bucket_reads_the_coarsest_source_with_its_resolution() {
        let sources: Vec<_> = Bucket::ALL.into_iter().map(Bucket::source).collect();
        assert_eq!(
            sources,
            [
                Source::Raw,
                Source::FiveMinutes,
                Source::FiveMinutes,
                Source::OneHour,
                Source::OneHour,
                Source::OneHour
            ]
        );
        for bucket in Bucket::ALL {
            let source_width = match bucket.source() {
                Source::Raw => 1,
                Source::FiveMinutes => 300,
                Source::OneHour => 3600,
            };
            assert_eq!(bucket.width().as_secs() % source_width, 0, "{bucket:?}");
        }
    }

    #[test]
    fn a_range_left_open_is_the_hour_before_its_end_which_is_now_by_default() {
        let now = "2026-12-01T12:00:00Z".parse().unwrap();
        let range = |since: Option<&str>, until: Option<&str>| {
            let parse = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
            let request = SeriesRequest::new(
                since.map(parse),
                until.map(parse),
                Some(Bucket::OneMinute),
                now,
            )
            .unwrap();
            (request.since.to_rfc3339(), request.until.to_rfc3339())
        };
        let hour_before_now = (
            "2026-12-01T11:00:00+00:00".to_owned(),
            "2026-12-01T12:00:00+00:00".to_owned(),
        );
        assert_eq!(range(None, None), hour_before_now);
        assert_eq!(range(Some("2026-12-01T11:00:00Z"), None), hour_before_now);
        assert_eq!(range(None, Some("2026-12-01T12:00:00Z")), hour_before_now);
        assert_eq!(
            range(None, Some("2026-12-01T08:00:00Z")),
            (
                "2026-12-01T07:00:00+00:00".to_owned(),
                "2026-12-01T08:00:00+00:00".to_owned()
            )
        );
    }

    #[test]
    fn the_range_must_be_forward_and_bounded() {
        assert_eq!(request(Span::zero(), None), Err(vec!["until".into()]));
        assert_eq!(request(Span::hours(-1), None), Err(vec!["until".into()]));
        assert_eq!(request(Span::days(401), None), Err(vec!["until".into()]));
    }
}

//! The read API: aggregated series, containers with their latest state, events; and the query
//! plans that keep a week of 30 s data fast.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, at, payload, rfc3339};

fn range(from: Duration, to: Duration) -> String {
    let encode = |offset| rfc3339(Utc::now() + offset).replace('+', "%2B");
    format!("since={}&until={}", encode(from), encode(to))
}

#[tokio::test]
async fn host_metrics_are_averaged_and_maxed_per_bucket_with_sample_counts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    for (seconds, cpu) in [(-50, 10.0), (-40, 30.0), (-30, 50.0)] {
        let mut body = payload(&at(Duration::seconds(seconds)), &[]);
        body["host"]["metrics"]["cpu_percent"] = json!(cpu);
        assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
    }

    let answer = app
        .admin(
            Method::GET,
            &format!(
                "/hosts/{host}/metrics?{}&bucket=1d",
                range(Duration::hours(-1), Duration::minutes(1))
            ),
            Some(&admin),
            None,
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["bucket"], "1d");
    let points = answer.body["points"].as_array().unwrap();
    let samples: i64 = points.iter().map(|p| p["samples"].as_i64().unwrap()).sum();
    assert_eq!(samples, 3);
    let max = points
        .iter()
        .map(|p| p["cpu_percent"]["max"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(max, 50.0);
    if points.len() == 1 {
        assert_eq!(points[0]["cpu_percent"]["avg"], 30.0);
    }
}

#[tokio::test]
async fn without_a_bucket_the_answer_stays_under_a_thousand_points() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;

    let hour = app
        .admin(
            Method::GET,
            &format!(
                "/hosts/{host}/metrics?{}",
                range(Duration::hours(-1), Duration::zero())
            ),
            Some(&admin),
            None,
        )
        .await;
    let week = app
        .admin(
            Method::GET,
            &format!(
                "/hosts/{host}/metrics?{}",
                range(Duration::days(-7), Duration::zero())
            ),
            Some(&admin),
            None,
        )
        .await;

    assert_eq!(hour.body["bucket"], "1m");
    assert_eq!(week.body["bucket"], "15m");
}

#[tokio::test]
async fn the_deprecated_from_and_to_give_the_same_answer_as_since_and_until() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    let posted = app
        .post_telemetry(
            &token,
            &payload(&at(Duration::minutes(-2)), &[("c1", "running")]),
        )
        .await;
    assert_eq!(posted.status(), 204);
    let current = range(Duration::hours(-1), Duration::zero());
    let deprecated = current.replace("since=", "from=").replace("until=", "to=");
    let mixed = current.replace("since=", "from=");

    let mut answers = Vec::new();
    for query in [&current, &deprecated, &mixed] {
        let answer = app
            .admin(
                Method::GET,
                &format!("/hosts/{host}/metrics?{query}&bucket=5m"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        assert_eq!(answer.body["since"], answer.body["from"], "{query}");
        assert_eq!(answer.body["until"], answer.body["to"], "{query}");
        answers.push(answer.body);
    }
    assert_eq!(answers[0]["points"].as_array().map(Vec::len), Some(1));
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

#[tokio::test]
async fn values_read_back_as_posted_from_raw_rows_rollups_and_the_container_list() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    let mut body = payload(&at(Duration::minutes(-1)), &[("c1", "running")]);
    body["host"]["metrics"]["cpu_percent"] = json!(12.34);
    body["host"]["metrics"]["load_average"] = json!(0.42);
    let container = &mut body["containers"][0]["metrics"];
    container["cpu_percent"] = json!(12.34);
    (container["memory_usage_mb"], container["memory_limit_mb"]) = (json!(1), json!(3));
    assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
    app.refresh_rollups().await;

    let listed = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/containers"),
            Some(&admin),
            None,
        )
        .await;
    let latest = &listed.body["items"][0];
    assert_eq!(latest["cpu_percent"], json!(12.34), "{latest}");
    assert_eq!(latest["memory_percent"], json!(33.33), "{latest}");
    let container = latest["id"].as_i64().unwrap();

    // One sample: its average and extremes are the value itself, from every source (raw rows
    // at 1m, the 5-minute rollup, the hourly one); the range left out is the last hour.
    for bucket in ["1m", "5m", "1h"] {
        let series = |path: String| {
            let app = &app;
            let admin = &admin;
            async move {
                let answer = app.admin(Method::GET, &path, Some(admin), None).await;
                assert_eq!(answer.status, 200, "{path}: {}", answer.body);
                let points = answer.body["points"].as_array().unwrap().clone();
                assert_eq!(points.len(), 1, "{path}: {}", answer.body);
                points[0].clone()
            }
        };
        let host_point = series(format!("/hosts/{host}/metrics?bucket={bucket}")).await;
        let container_point =
            series(format!("/containers/{container}/metrics?bucket={bucket}")).await;
        for stat in ["avg", "min", "max"] {
            for (point, gauge, sent) in [
                (&host_point, "cpu_percent", 12.34),
                (&host_point, "load_average", 0.42),
                (&container_point, "cpu_percent", 12.34),
                (&container_point, "memory_percent", 33.33),
            ] {
                assert_eq!(point[gauge][stat], json!(sent), "{bucket} {gauge} {stat}");
            }
        }
    }
}

#[tokio::test]
async fn bad_ranges_and_buckets_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    let cases = [
        (range(Duration::zero(), Duration::hours(-1)), "until"),
        (range(Duration::days(-500), Duration::zero()), "until"),
        (
            format!("{}&bucket=2m", range(Duration::hours(-1), Duration::zero())),
            "bucket",
        ),
        (
            format!("{}&bucket=1m", range(Duration::days(-30), Duration::zero())),
            "bucket",
        ),
        ("from=yesterday&to=today".into(), "from"),
        // `until` defaults to now: a start after it, or over 400 days before it.
        ("since=2099-01-01T00:00:00Z".into(), "until"),
        ("since=2020-01-01T00:00:00Z".into(), "until"),
        (
            "since=2026-01-01T00:00:00Z&from=2026-01-02T00:00:00Z&until=2026-01-03T00:00:00Z"
                .into(),
            "since",
        ),
    ];
    for (query, field) in cases {
        let answer = app
            .admin(
                Method::GET,
                &format!("/hosts/{host}/metrics?{query}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(answer.status, 422, "{query}: {}", answer.body);
        assert!(
            answer.error_fields().contains(&field.to_string()),
            "{query}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn unknown_hosts_and_containers_are_404_and_agent_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, agent_token) = app.host_with_token("web-01").await;
    let window = range(Duration::hours(-1), Duration::zero());

    for path in [
        format!("/hosts/999999/metrics?{window}"),
        format!("/containers/999999/metrics?{window}"),
        "/hosts/999999/containers".into(),
        "/hosts/999999/events".into(),
    ] {
        assert_eq!(
            app.admin(Method::GET, &path, Some(&admin), None)
                .await
                .status,
            404,
            "{path}"
        );
    }
    let refused = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/events"),
            Some(&agent_token),
            None,
        )
        .await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn a_hosts_containers_carry_their_latest_metrics_and_stale_ones_are_flagged() {
    let app = TestApp::spawn_with(&["--container-stale-seconds", "60"]).await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(
            &at(Duration::minutes(-5)),
            &[("gone", "running"), ("web", "running")],
        ),
    )
    .await;
    app.post_telemetry(
        &token,
        &payload(
            &at(Duration::zero()),
            &[("web", "running"), ("job", "exited")],
        ),
    )
    .await;

    let all = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/containers"),
            Some(&admin),
            None,
        )
        .await;
    let running = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/containers?state=running"),
            Some(&admin),
            None,
        )
        .await;

    let items = all.body["items"].as_array().unwrap();
    let stale: Vec<(&str, bool)> = items
        .iter()
        .map(|c| {
            (
                c["container_id"].as_str().unwrap(),
                c["stale"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(stale, [("gone", true), ("job", false), ("web", false)]);
    assert_eq!(items[2]["memory_percent"], 25.0);
    let running: Vec<&str> = running.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container_id"].as_str().unwrap())
        .collect();
    assert_eq!(running, ["gone", "web"]);

    let container = items[2]["id"].as_i64().unwrap();
    let series = app
        .admin(
            Method::GET,
            &format!(
                "/containers/{container}/metrics?{}",
                range(Duration::hours(-1), Duration::minutes(1))
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(series.status, 200);
    let samples: i64 = series.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["samples"].as_i64().unwrap())
        .sum();
    assert_eq!(samples, 2);
}

#[tokio::test]
async fn events_come_newest_first_in_stable_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    for kind in ["online", "offline", "recovered", "offline", "recovered"] {
        app.db
            .execute(
                "INSERT INTO host_events (host_id, kind) VALUES ($1, $2)",
                &[&host, &kind],
            )
            .await
            .unwrap();
    }

    let first = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/events?limit=2"),
            Some(&admin),
            None,
        )
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/events?limit=2&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;
    let cursor = second.body["next_cursor"].as_str().unwrap().to_owned();
    let third = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/events?limit=2&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;

    let kinds = |answer: &crate::helpers::Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kinds(&first), ["recovered", "offline"]);
    assert_eq!(kinds(&second), ["recovered", "offline"]);
    assert_eq!(kinds(&third), ["online"]);
    assert!(third.body["next_cursor"].is_null());
}

#[tokio::test]
async fn a_week_of_30_second_data_is_read_through_the_primary_key_index() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let containers: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "running")).collect();
    app.post_telemetry(&token, &payload(&at(Duration::zero()), &containers))
        .await;
    // A week of 30 s snapshots for this host and 9 others, and for its 20 containers.
    app.db
        .batch_execute(&format!(
            "INSERT INTO hosts (name, slug) SELECT 'h' || i, 'h-' || i FROM generate_series(1, 9) i;
             INSERT INTO host_metric_snapshots (host_id, recorded_at, cpu_percent)
             SELECT h.id, t, random() * 100 FROM hosts h,
                    generate_series(now() - interval '7 days', now() - interval '1 minute', interval '30 seconds') t
             WHERE h.id <> {host} OR true
             ON CONFLICT DO NOTHING;
             INSERT INTO container_metric_snapshots (container_id, host_id, recorded_at, cpu_percent)
             SELECT c.id, c.host_id, t, random() FROM containers c,
                    generate_series(now() - interval '7 days', now() - interval '1 minute', interval '30 seconds') t
             ON CONFLICT DO NOTHING;
             ANALYZE host_metric_snapshots; ANALYZE container_metric_snapshots;"
        ))
        .await
        .unwrap();
    let host_query = format!(
        "EXPLAIN SELECT time_bucket('15 minutes', recorded_at) b, avg(cpu_percent) FROM host_metric_snapshots
         WHERE host_id = {host} AND recorded_at >= now() - interval '7 days' AND recorded_at < now() GROUP BY b"
    );
    let container_query = "EXPLAIN SELECT time_bucket('15 minutes', recorded_at) b, avg(cpu_percent) FROM container_metric_snapshots
         WHERE container_id = (SELECT min(id) FROM containers) AND recorded_at >= now() - interval '7 days' AND recorded_at < now() GROUP BY b";

    for query in [host_query.as_str(), container_query] {
        let plan: Vec<String> = app
            .db
            .query(query, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("_pkey"),
            "the (id, recorded_at) primary key serves it:\n{plan}"
        );
        // A chunk of a few rows (today's, just after midnight) is rightly read whole.
        let big_seq_scans = plan
            .lines()
            .filter(|line| line.contains("Seq Scan") && planned_rows(line) > 100)
            .count();
        assert_eq!(
            big_seq_scans, 0,
            "no sequential scan of a real chunk:\n{plan}"
        );
    }

    let admin = app.admin_token().await;
    let to = Utc::now();
    let from = to - Duration::days(7);
    // 672 or 673 buckets with data, depending on where the 15-minute boundaries fall: ask the
    // database how many there are in this range widened to whole buckets.
    let buckets: i64 = app
        .db
        .query_one(
            "SELECT count(DISTINCT time_bucket('15 minutes', recorded_at)) FROM host_metric_snapshots
             WHERE host_id = $1 AND recorded_at >= time_bucket('15 minutes', $2::timestamptz)
               AND recorded_at < $3",
            &[&host, &from, &to],
        )
        .await
        .unwrap()
        .get(0);
    assert!((7 * 96..=7 * 96 + 1).contains(&buckets), "{buckets}");
    let started = std::time::Instant::now();
    let encode = |time| rfc3339(time).replace('+', "%2B");
    let answer = app
        .admin(
            Method::GET,
            &format!(
                "/hosts/{host}/metrics?from={}&to={}",
                encode(from),
                encode(to)
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["points"].as_array().unwrap().len(),
        buckets as usize
    );
    eprintln!(
        "a week at 15 min buckets answered in {:?}",
        started.elapsed()
    );
}

/// The `rows=` estimate of a plan line.
fn planned_rows(line: &str) -> u64 {
    line.split("rows=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_state_filter_with_a_nul_character_is_422_not_500() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;

    let answer = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/containers?state=run%00ning"),
            Some(&admin),
            None,
        )
        .await;

    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.error_fields(), ["state"]);
}

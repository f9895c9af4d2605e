//! A small fleet with hours of history, written straight into the hypertables, and the checks
//! for the tests that run analysts' SQL (docs/analytics.md, the Grafana dashboard) as
//! `nexus_analyst`.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;

use crate::helpers::TestApp;

/// A row of an answer: column name to value.
pub type Row = serde_json::Map<String, Value>;

/// Hours of history each host and container gets, ending now.
pub const HOURS: i64 = 3;

/// What [`seed`] wrote: host ids, and the container row ids (`containers.id`) of each host.
pub struct Fleet {
    pub hosts: Vec<i64>,
    pub containers: Vec<i64>,
}

/// One online host per name with two running containers each, and a sample every 30 s over
/// the last [`HOURS`] hours for each of them. Gauges move like real ones; counters grow and
/// reset to zero every 97 (hosts) and 61 (containers) samples, as on a reboot or a restart.
pub async fn seed(app: &TestApp, names: &[&str]) -> Fleet {
    let now = Utc::now();
    // Whole minutes, so every 5-minute window holds ten samples.
    let start = (now - Duration::hours(HOURS))
        .duration_trunc(Duration::minutes(1))
        .unwrap();
    let samples = HOURS * 120;
    let mut fleet = Fleet {
        hosts: Vec::new(),
        containers: Vec::new(),
    };
    for (n, name) in (0_i64..).zip(names) {
        let host = app.create_host(name).await;
        app.db
            .execute(
                "UPDATE hosts SET status = 'online', last_seen_at = $2 WHERE id = $1",
                &[&host, &(start + Duration::seconds(30 * (samples - 1)))],
            )
            .await
            .unwrap();
        insert_host_samples(app, host, n, start, samples).await;
        for (m, container) in [(0_i64, "web"), (1, "worker")] {
            let id = insert_container(app, host, container, start).await;
            insert_container_samples(app, id, host, n * 2 + m, start, samples).await;
            fleet.containers.push(id);
        }
        fleet.hosts.push(host);
    }
    fleet
}

/// `samples` host rows every 30 s from `start`; `n` varies the values between hosts.
pub async fn insert_host_samples(
    app: &TestApp,
    host: i64,
    n: i64,
    start: DateTime<Utc>,
    samples: i64,
) {
    app.db
        .execute(
            "INSERT INTO host_metric_snapshots
                 (host_id, recorded_at, cpu_percent, memory_used_mb, memory_total_mb, disk_used_gb,
                  disk_total_gb, network_rx_bytes, network_tx_bytes, load_average)
             SELECT $1, $2::timestamptz + i * interval '30 seconds',
                    round((20 + 5 * $4::int8 + 10 * sin(i / 7.0))::numeric, 2),
                    2000 + 500 * $4::int8 + (i % 17) * 10, 8192, 40 + i / 100, 100,
                    (i % 97) * 12345 * ($4::int8 + 1), (i % 97) * 777 * ($4::int8 + 1),
                    round((0.5 + (i % 9) / 10.0)::numeric, 2)
             FROM generate_series(0, $3::int8 - 1) AS i",
            &[&host, &start, &samples, &n],
        )
        .await
        .unwrap();
}

/// A running container row named (and identified as) `name`; its row id.
pub async fn insert_container(app: &TestApp, host: i64, name: &str, start: DateTime<Utc>) -> i64 {
    app.db
        .query_one(
            "INSERT INTO containers (host_id, container_id, name, image, image_tag, status, state,
                                     started_at, first_seen_at, recorded_at)
             VALUES ($1, $2::text, $2::text, 'ghcr.io/acme/' || $2::text, '1.4.2', 'Up 3 hours',
                     'running', $3::timestamptz - interval '1 day', $3, $3)
             RETURNING id",
            &[&host, &name, &start],
        )
        .await
        .unwrap()
        .get(0)
}

/// `samples` container rows every 30 s from `start`; `n` varies the values.
pub async fn insert_container_samples(
    app: &TestApp,
    container: i64,
    host: i64,
    n: i64,
    start: DateTime<Utc>,
    samples: i64,
) {
    app.db
        .execute(
            "INSERT INTO container_metric_snapshots
                 (container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, memory_limit_mb,
                  network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes)
             SELECT $1, $2, $3::timestamptz + i * interval '30 seconds',
                    round((5 + 2 * $5::int8 + 3 * cos(i / 5.0))::numeric, 2), 200 + 50 * $5::int8 + (i % 13),
                    1024, (i % 61) * 4096 + i % 7, (i % 61) * 999, (i % 61) * 512 * ($5::int8 + 1),
                    (i % 61) * 8192
             FROM generate_series(0, $4::int8 - 1) AS i",
            &[&container, &host, &start, &samples, &n],
        )
        .await
        .unwrap();
}

/// Runs `sql` and returns its rows as JSON objects (column name to value).
pub async fn query_rows(app: &TestApp, sql: &str, what: &str) -> Vec<Row> {
    let sql = sql.trim().trim_end_matches(';');
    let wrapped = format!("SELECT to_jsonb(q) FROM ({sql}) q");
    app.db
        .query(&wrapped, &[])
        .await
        .unwrap_or_else(|e| {
            let cause = e
                .as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned());
            panic!("{what}: {cause}\n{sql}")
        })
        .iter()
        .map(|row| match row.get::<_, Value>(0) {
            Value::Object(object) => object,
            other => panic!("{what}: a row is an object, not {other}"),
        })
        .collect()
}

/// Rows, and in them a value for every column: a column that is null in every row (a rate
/// over too few samples, a misspelt column) answers nothing useful.
pub fn assert_filled(rows: &[Row], what: &str, sql: &str) {
    assert!(!rows.is_empty(), "{what}: no rows from\n{sql}");
    for column in rows[0].keys() {
        assert!(
            rows.iter().any(|row| !row[column].is_null()),
            "{what}: column {column} is null in every row of\n{sql}"
        );
    }
}

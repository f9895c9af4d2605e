//! The Grafana dashboard (deploy/grafana/nexus-telemetry.json) cannot rot: every variable's
//! and every panel's SQL, with Grafana's macros and variables expanded as its PostgreSQL data
//! source expands them, runs as `nexus_analyst` against a seeded fleet and returns rows.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use regex::{Captures, Regex};
use serde_json::Value;

use crate::fleet::{self, Row, assert_filled, query_rows};
use crate::helpers::{ROLLUPS, TestApp};

const DASHBOARD: &str = include_str!("../../deploy/grafana/nexus-telemetry.json");

/// How the data source writes `$__timeGroup`: its "TimescaleDB" option off or on.
#[derive(Debug, Clone, Copy)]
enum TimeGroup {
    Epoch,
    TimeBucket,
}

/// What Grafana knows when it expands a query: the time range, the interval, the variables.
struct Context<'a> {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// `$__interval` as Grafana writes it, e.g. `5m`.
    interval: &'a str,
    time_group: TimeGroup,
    /// Values of the dashboard's variables, by name.
    variables: &'a [(String, String)],
}

/// Grafana's interval syntax, for the units this dashboard uses.
fn parse_interval(text: &str) -> Result<StdDuration, String> {
    let text = text.trim().trim_matches('\'');
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("interval {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("interval {text:?} has no number"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("interval {text:?}: unknown unit")),
    };
    Ok(StdDuration::from_secs(number * unit))
}

/// Expands exactly the macros and variables the dashboard uses, the way Grafana's PostgreSQL
/// data source does (pkg/tsdb/grafana-postgresql-datasource/macros.go); anything else that
/// starts with `$` is an error, so a panel cannot use what this test does not check.
fn expand(sql: &str, context: &Context) -> Result<String, String> {
    let interval = Regex::new(r"\$__interval\b").unwrap();
    let sql = interval.replace_all(sql, context.interval);

    let mut errors = Vec::new();
    let macros = Regex::new(r"\$(__[A-Za-z0-9_]+)\(([^)]*)\)").unwrap();
    let sql = macros.replace_all(&sql, |call: &Captures| {
        let args: Vec<&str> = call[2].split(',').map(str::trim).collect();
        let expanded = match (&call[1], args.as_slice()) {
            ("__timeFilter", [column]) => Ok(format!(
                "{column} BETWEEN '{}' AND '{}'",
                context.from.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                context.to.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )),
            ("__timeGroupAlias", [column, width]) => {
                parse_interval(width).map(|width| match context.time_group {
                    TimeGroup::Epoch => {
                        let seconds = width.as_secs();
                        format!(
                            "floor(extract(epoch from {column})/{seconds})*{seconds} AS \"time\""
                        )
                    }
                    TimeGroup::TimeBucket => format!(
                        "time_bucket('{:.3}s',{column}) AS \"time\"",
                        width.as_secs_f64()
                    ),
                })
            }
            (name, _) => Err(format!("unknown macro ${name}({})", &call[2])),
        };
        expanded.unwrap_or_else(|error| {
            errors.push(error);
            String::new()
        })
    });

    let variables = Regex::new(r"\$(\{[^}]*\}|[A-Za-z0-9_]+)").unwrap();
    let sql = variables.replace_all(&sql, |name: &Captures| {
        match context
            .variables
            .iter()
            .find(|(variable, _)| *variable == name[1])
        {
            Some((_, value)) => value.clone(),
            None => {
                errors.push(format!("unknown variable ${}", &name[1]));
                String::new()
            }
        }
    });
    if errors.is_empty() {
        Ok(sql.into_owned())
    } else {
        Err(errors.join("; "))
    }
}

/// `now` or `now-<interval>`, as in the dashboard's default time range.
fn relative_time(text: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    match text.strip_prefix("now") {
        Some("") => now,
        Some(ago) => {
            let ago = parse_interval(ago.strip_prefix('-').expect("now-…")).unwrap();
            now - Duration::from_std(ago).unwrap()
        }
        None => panic!("time {text:?} is not relative to now"),
    }
}

/// A time series must name its time column `time` and be sorted by it.
fn assert_time_series(rows: &[Row], what: &str) {
    let times: Vec<&Value> = rows
        .iter()
        .map(|row| {
            row.get("time")
                .unwrap_or_else(|| panic!("{what}: no column \"time\""))
        })
        .collect();
    let sorted = times.windows(2).all(|pair| match (pair[0], pair[1]) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() <= b.as_f64(),
        (Value::String(a), Value::String(b)) => a <= b,
        _ => false,
    });
    assert!(sorted, "{what}: rows are not sorted by time");
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("the dashboard is JSON")
}

/// Every panel but rows, those inside collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            all.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            all.push(panel);
        }
    }
    all
}

async fn check_dashboard(app: &TestApp) {
    let fleet = fleet::seed(app, &["web-01", "db-01", "cache-01"]).await;
    assert_eq!(fleet.containers.len(), 6);
    seed_events(app).await;
    seed_firing_alerts(app).await;
    app.db
        .batch_execute("SET ROLE nexus_analyst")
        .await
        .unwrap();

    let dashboard = dashboard();
    let now = Utc::now();
    let from = relative_time(dashboard["time"]["from"].as_str().unwrap(), now);
    let to = relative_time(dashboard["time"]["to"].as_str().unwrap(), now);
    let mut variables: Vec<(String, String)> = Vec::new();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        match variable["type"].as_str().unwrap() {
            "datasource" => continue,
            "query" => {}
            other => panic!("variable {name}: type {other} is not checked by this test"),
        }
        let what = format!("variable {name}");
        let sql = expand(
            variable["query"].as_str().expect("a query"),
            &Context {
                from,
                to,
                interval: "5m",
                time_group: TimeGroup::Epoch,
                variables: &variables,
            },
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let rows = query_rows(app, &sql, &what).await;
        assert_filled(&rows, &what, &sql);
        // Grafana selects the first option when nothing is chosen yet.
        let value = match &rows[0]["__value"] {
            Value::Number(n) => n.to_string(),
            other => panic!("{what}: __value is {other}, not an id"),
        };
        variables.push((name.to_owned(), value));
    }
    assert_eq!(
        variables
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["host_id", "container_id"]
    );

    let panels = panels(&dashboard);
    assert!(panels.len() >= 15, "fleet, host and container panels");
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: panels use the data source variable, so the dashboard imports anywhere"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: a panel has a query");
        for target in targets {
            let raw = target["rawSql"].as_str().expect("rawSql");
            assert!(
                ROLLUPS.iter().any(|rollup| raw.contains(rollup))
                    || raw.contains("FROM events")
                    || raw.contains("FROM alerts"),
                "{title}: panels read the rollups (or the events, or the alerts)\n{raw}"
            );
            let interval = panel["interval"].as_str().unwrap_or("5m");
            for time_group in [TimeGroup::Epoch, TimeGroup::TimeBucket] {
                let what = format!("panel {title:?} ({time_group:?}, {interval})");
                let context = Context {
                    from,
                    to,
                    interval,
                    time_group,
                    variables: &variables,
                };
                let sql = expand(raw, &context).unwrap_or_else(|e| panic!("{what}: {e}"));
                let rows = query_rows(app, &sql, &what).await;
                assert_filled(&rows, &what, &sql);
                if target["format"] == "time_series" {
                    assert_time_series(&rows, &what);
                }
            }
        }
    }
}

/// Each container's life as events the ingest would have written: created two hours into the
/// range, then an exit and a restart by Docker.
async fn seed_events(app: &TestApp) {
    app.db
        .batch_execute(
            "INSERT INTO events (at, kind, host_id, container_id, from_value, to_value, exit_code)
             SELECT now() - step.ago, step.kind, c.host_id, c.container_id, step.from_value,
                    step.to_value, step.exit_code
             FROM containers c
             CROSS JOIN (VALUES
                 (interval '4 hours', 'created', NULL, 'running', NULL),
                 (interval '2 hours', 'state_changed', 'running', 'exited', 137),
                 (interval '119 minutes', 'state_changed', 'exited', 'running', NULL),
                 (interval '119 minutes', 'restarted', '0', '1', NULL)
             ) AS step (ago, kind, from_value, to_value, exit_code)
             ORDER BY step.ago DESC, c.id",
        )
        .await
        .unwrap();
}

/// What the evaluator would have written: a host's disk alert and a container's restart-loop
/// alert firing, and one resolved (which the firing-alerts panel must not show).
async fn seed_firing_alerts(app: &TestApp) {
    app.db
        .batch_execute(
            "INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                                 pending_since, started_at, resolved_at)
             SELECT r.id, c.host_id, CASE WHEN r.kind = 'container_restarting' THEN c.container_id END,
                    md5(r.id || '/' || c.container_id), step.state, step.value,
                    now() - interval '20 minutes', now() - interval '10 minutes',
                    CASE WHEN step.state = 'resolved' THEN now() END
             FROM (SELECT DISTINCT ON (host_id) host_id, container_id FROM containers
                   ORDER BY host_id, id) c
             CROSS JOIN (VALUES ('disk almost full', 'firing', 93.5),
                                ('container restarting', 'firing', 4),
                                ('host offline', 'resolved', NULL)) AS step (rule, state, value)
             JOIN alert_rules r ON r.name = step.rule",
        )
        .await
        .unwrap();
}

/// The firing-alerts panel lists exactly the firing alerts, most severe first.
async fn check_firing_alerts_panel(app: &TestApp) {
    let dashboard = dashboard();
    let panel = panels(&dashboard)
        .into_iter()
        .find(|panel| panel["title"] == "Firing alerts")
        .expect("a firing-alerts panel");
    let sql = panel["targets"][0]["rawSql"].as_str().unwrap();
    let rows = query_rows(app, sql, "firing alerts").await;
    let firing = app
        .count("SELECT count(*) FROM alerts WHERE state = 'firing'")
        .await;
    assert_eq!(rows.len() as i64, firing);
    assert_eq!(rows[0]["severity"], "critical");
    assert_eq!(rows[0]["rule"], "disk almost full");
    assert!(
        rows.iter()
            .any(|row| row["rule"] == "container restarting" && row["container"] != ""),
        "container alerts name their container"
    );
}

#[tokio::test]
async fn every_dashboard_query_runs_as_the_analyst_and_returns_rows() {
    // DATABASE_URL's cluster: the community edition in CI, where real-time aggregation shows
    // the freshly seeded rows without a refresh.
    let app = TestApp::spawn().await;
    check_dashboard(&app).await;
    check_firing_alerts_panel(&app).await;
}

#[tokio::test]
async fn every_dashboard_query_returns_rows_on_the_apache_edition_too() {
    let app = TestApp::spawn_on_apache_edition().await;
    check_dashboard(&app).await;
    check_firing_alerts_panel(&app).await;
}

#[test]
fn the_expander_writes_grafanas_sql_and_refuses_what_it_does_not_know() {
    let variables = [("host_id".to_owned(), "7".to_owned())];
    let from = "2026-01-02T03:04:05Z".parse().unwrap();
    let to = "2026-01-02T09:04:05.5Z".parse().unwrap();
    let context = |time_group| Context {
        from,
        to,
        interval: "1h",
        time_group,
        variables: &variables,
    };
    let sql = "SELECT $__timeGroupAlias(bucket, $__interval), x FROM t \
               WHERE host_id = $host_id AND $__timeFilter(bucket)";
    assert_eq!(
        expand(sql, &context(TimeGroup::Epoch)).unwrap(),
        "SELECT floor(extract(epoch from bucket)/3600)*3600 AS \"time\", x FROM t \
         WHERE host_id = 7 AND bucket BETWEEN '2026-01-02T03:04:05Z' AND '2026-01-02T09:04:05.500Z'"
    );
    assert_eq!(
        expand(
            "SELECT $__timeGroupAlias(bucket, '5m')",
            &context(TimeGroup::TimeBucket)
        )
        .unwrap(),
        "SELECT time_bucket('300.000s',bucket) AS \"time\""
    );
    for unknown in [
        "SELECT $__timeFrom()",
        "SELECT $__unixEpochFilter(bucket)",
        "SELECT $__interval_ms",
        "SELECT $container_id",
        "SELECT ${host_id}",
        "SELECT $1",
        "SELECT $__timeGroupAlias(bucket, 5 minutes)",
    ] {
        assert!(
            expand(unknown, &context(TimeGroup::Epoch)).is_err(),
            "{unknown} is refused"
        );
    }
}

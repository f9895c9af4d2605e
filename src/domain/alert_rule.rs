//! Alert rules as operators define them: the one definition the admin API and the CLI both
//! check (`RuleDefinition::check`), so a rule is refused for the same reasons, with the same
//! field names, however it arrives.
//!
//! Per-field bounds are the `oai(validator(...))` attributes of [`RuleDefinition`] (published in
//! the OpenAPI document, enforced by [`Schema`]); what a schema cannot say lives here: the closed
//! sets (`kind`, `severity`, `metric`, `operator`), which parameters belong to which kind, and
//! which a kind requires.

use poem_openapi::{Enum, Object};
use serde_json::Value;

use super::FieldError;
use super::host::HostLabels;
use crate::domain::schema_check::Schema;

/// What a rule watches (docs/alerts.md, "Rules").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RuleKind {
    /// The host stopped reporting (its status turned `offline`).
    HostOffline,
    /// A container seen running is now exited or dead (`ignore_exit_code_zero` spares clean
    /// exits).
    ContainerNotRunning,
    /// A container's health status is `unhealthy`.
    ContainerUnhealthy,
    /// A container restarted at least `restarts` times within `window_seconds`.
    ContainerRestarting,
    /// The kernel's OOM killer ended a container's last run.
    ContainerOomKilled,
    /// A host or container gauge or rate (`metric`) compared by `operator` with `threshold`.
    MetricThreshold,
}

/// How urgent a rule's alerts are.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

/// What a `metric_threshold` rule compares: `host_…` metrics make host alerts, `container_…`
/// ones container alerts. Percentages are 0–100; rates are bytes per second.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Metric {
    HostCpuPercent,
    HostMemoryPercent,
    HostDiskUsedPercent,
    HostLoadAverage,
    HostNetworkRxBytesPerSecond,
    HostNetworkTxBytesPerSecond,
    ContainerCpuPercent,
    ContainerMemoryPercent,
    ContainerNetworkRxBytesPerSecond,
    ContainerNetworkTxBytesPerSecond,
    ContainerBlockReadBytesPerSecond,
    ContainerBlockWriteBytesPerSecond,
}

/// How a `metric_threshold` rule compares the metric with its threshold: `gt` (>), `ge`
/// (>=), `lt` (<), `le` (<=). Words, not symbols, so generated clients can name them; the
/// table stores the symbols.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Operator {
    #[value(alias = ">")]
    Gt,
    #[value(alias = ">=")]
    Ge,
    #[value(alias = "<")]
    Lt,
    #[value(alias = "<=")]
    Le,
}

impl Operator {
    const SYMBOLS: [(Operator, &'static str); 4] = [
        (Operator::Gt, ">"),
        (Operator::Ge, ">="),
        (Operator::Lt, "<"),
        (Operator::Le, "<="),
    ];

    /// The symbol in `alert_rules.operator`.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS
            .iter()
            .find(|(operator, _)| *operator == self)
            .map_or(">", |(_, symbol)| symbol)
    }

    /// Reads `alert_rules.operator` (its CHECK admits only these symbols).
    pub fn of_symbol(symbol: &str) -> Self {
        Self::SYMBOLS
            .iter()
            .find(|(_, known)| *known == symbol)
            .map(|(operator, _)| *operator)
            .unwrap_or_else(|| panic!("{symbol:?} is not an operator the table admits"))
    }
}

/// The name of a closed-set value, as stored and sent (its serde name).
pub fn name_of(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => unreachable!("closed sets serialise as strings"),
    }
}

/// Reads a stored closed-set value (the table's CHECK constraints admit only these names).
pub fn from_name<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_value(Value::String(name.to_owned()))
        .unwrap_or_else(|_| panic!("{name:?} is not a value the table admits"))
}

/// The kind-specific parameters, with the kinds they belong to and whether those require them.
const PARAMETERS: [(&str, RuleKind, bool); 6] = [
    (
        "ignore_exit_code_zero",
        RuleKind::ContainerNotRunning,
        false,
    ),
    ("restarts", RuleKind::ContainerRestarting, true),
    ("window_seconds", RuleKind::ContainerRestarting, true),
    ("metric", RuleKind::MetricThreshold, true),
    ("operator", RuleKind::MetricThreshold, true),
    ("threshold", RuleKind::MetricThreshold, true),
];

/// A rule as it is written: the body of `POST /api/v1/alert-rules` and
/// `PUT /api/v1/alert-rules/{id}` (which replaces every field), and what the CLI builds from
/// its flags. Parameters of another kind than `kind` are refused by name.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize, serde::Deserialize)]
#[oai(example)]
pub struct RuleDefinition {
    /// Unique name, e.g. `disk almost full`.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// What the rule watches.
    pub kind: RuleKind,
    /// Only these hosts (ids); with `host_labels`, a host must match both. Absent, null or
    /// empty: not restricted by id (every host when `host_labels` is absent too). An id no
    /// host has matches nothing.
    #[oai(validator(max_items = 1000, minimum(value = "1")))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<Vec<i64>>,
    /// Only hosts whose labels contain all of these (at most 64; keys and values at most 255
    /// characters). Absent, null or empty: not restricted by labels.
    #[oai(validator(max_properties = 64, max_length = 255))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_labels: Option<HostLabels>,
    /// Seconds the condition must hold before the alert fires (it is `pending` until then);
    /// at most a week. 0 when absent: it fires when first seen.
    #[oai(validator(minimum(value = "0"), maximum(value = "604800")))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_seconds: Option<u32>,
    /// How urgent the rule's alerts are; `warning` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What a person reading the alert should know; empty when absent.
    #[oai(validator(max_length = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A disabled rule is not evaluated (its open alerts resolve); true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `container_not_running` only: a container that exited with code 0 does not count
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_exit_code_zero: Option<bool>,
    /// `container_restarting` only (required there): how many restarts within
    /// `window_seconds` fire the alert.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// `container_restarting` only (required there): the window restarts are counted in, in
    /// seconds (at most a day).
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
    /// `metric_threshold` only (required there): what is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// `metric_threshold` only (required there): how `metric` is compared with `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    /// `metric_threshold` only (required there): the value `metric` is compared with, in the
    /// metric's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl poem_openapi::types::Example for RuleDefinition {
    fn example() -> Self {
        Self {
            name: "disk almost full".into(),
            kind: RuleKind::MetricThreshold,
            host_ids: None,
            host_labels: Some(HostLabels::from([("env".into(), "prod".into())])),
            for_seconds: Some(600),
            severity: Some(Severity::Critical),
            summary: Some("A host's disk is more than 90% full".into()),
            enabled: Some(true),
            ignore_exit_code_zero: None,
            restarts: None,
            window_seconds: None,
            metric: Some(Metric::HostDiskUsedPercent),
            operator: Some(Operator::Gt),
            threshold: Some(90.0),
        }
    }
}

/// A rule definition that passed every check; only [`RuleDefinition::check`] makes one. It is
/// normalised: defaults filled in, empty selectors `None`, host ids sorted and unique.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRule(RuleDefinition);

impl ValidRule {
    pub fn definition(&self) -> &RuleDefinition {
        &self.0
    }
}

/// The closed-set fields: their names and the values they admit.
fn closed_sets() -> [(&'static str, Vec<String>); 4] {
    fn names<T: clap::ValueEnum + serde::Serialize>() -> Vec<String> {
        T::value_variants().iter().map(name_of).collect()
    }
    [
        ("kind", names::<RuleKind>()),
        ("severity", names::<Severity>()),
        ("metric", names::<Metric>()),
        ("operator", names::<Operator>()),
    ]
}

impl RuleDefinition {
    /// Checks a rule written as JSON (a request body, or the CLI's flags as one) and names every
    /// failing field: the schema's bounds, the closed sets, and the parameters of its kind.
    pub fn check(value: &Value) -> Result<ValidRule, Vec<FieldError>> {
        let mut errors = Schema::of::<RuleDefinition>().check(value);
        let Value::Object(body) = value else {
            return Err(errors);
        };
        let given = |name: &str| body.get(name).is_some_and(|value| !value.is_null());
        let mut more = Vec::new();
        for (field, admitted) in closed_sets() {
            if let Some(Value::String(text)) = body.get(field)
                && !admitted.contains(text)
            {
                more.push(FieldError::new(
                    field,
                    format!("must be one of `{}`", admitted.join("`, `")),
                ));
            }
        }
        let kind = body
            .get("kind")
            .and_then(|kind| serde_json::from_value::<RuleKind>(kind.clone()).ok());
        if let Some(kind) = kind {
            let kind_name = name_of(kind);
            for (field, owner, required) in PARAMETERS {
                if owner != kind && given(field) {
                    more.push(FieldError::new(
                        field,
                        format!(
                            "does not apply to kind `{kind_name}` (only to `{}`)",
                            name_of(owner)
                        ),
                    ));
                } else if owner == kind && required && !given(field) {
                    more.push(FieldError::new(
                        field,
                        format!("is required for kind `{kind_name}`"),
                    ));
                }
            }
        }
        // One message per field: the schema's, when it has one.
        for error in more {
            if !errors.iter().any(|known| known.field == error.field) {
                errors.push(error);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut rule: RuleDefinition = serde_json::from_value(value.clone())
            .map_err(|error| vec![FieldError::new("", error.to_string())])?;
        if let Some(ids) = &mut rule.host_ids {
            ids.sort_unstable();
            ids.dedup();
        }
        rule.host_ids = rule.host_ids.filter(|ids| !ids.is_empty());
        rule.host_labels = rule.host_labels.filter(|labels| !labels.is_empty());
        rule.for_seconds = Some(rule.for_seconds.unwrap_or(0));
        rule.severity = Some(rule.severity.unwrap_or_default());
        rule.summary = Some(rule.summary.unwrap_or_default());
        rule.enabled = Some(rule.enabled.unwrap_or(true));
        if rule.kind == RuleKind::ContainerNotRunning {
            rule.ignore_exit_code_zero = Some(rule.ignore_exit_code_zero.unwrap_or(false));
        }
        Ok(ValidRule(rule))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Vec<String> {
        RuleDefinition::check(&value)
            .unwrap_err()
            .into_iter()
            .map(|error| error.field)
            .collect()
    }

    #[test]
    fn a_metric_rule_with_its_parameters_passes_and_its_scope_is_normalised() {
        let rule = RuleDefinition::check(&json!({
            "name": "hot", "kind": "metric_threshold", "metric": "host_cpu_percent",
            "operator": "ge", "threshold": 95, "host_ids": [3, 1, 3], "host_labels": {}
        }))
        .unwrap();
        let rule = rule.definition();
        assert_eq!(rule.operator, Some(Operator::Ge));
        assert_eq!(rule.host_ids, Some(vec![1, 3]));
        assert_eq!(rule.host_labels, None);
        assert_eq!(rule.severity, Some(Severity::Warning));
        assert_eq!(rule.enabled, Some(true));
    }

    #[test]
    fn parameters_of_another_kind_and_missing_ones_are_each_named() {
        assert_eq!(
            fields(
                json!({"name": "x", "kind": "host_offline", "restarts": 3, "metric": "host_cpu_percent"})
            ),
            ["restarts", "metric"]
        );
        assert_eq!(
            fields(json!({"name": "x", "kind": "metric_threshold", "ignore_exit_code_zero": true})),
            ["ignore_exit_code_zero", "metric", "operator", "threshold"]
        );
    }

    #[test]
    fn schema_bounds_and_closed_sets_are_reported_together() {
        assert_eq!(
            fields(
                json!({"name": "", "kind": "container_restarting", "restarts": 0,
                          "severity": "loud", "for_seconds": -1})
            ),
            [
                "name",
                "for_seconds",
                "severity",
                "restarts",
                "window_seconds"
            ]
        );
        assert_eq!(fields(json!({"kind": "nope"})), ["name", "kind"]);
        assert_eq!(
            fields(json!({"name": "x", "kind": "host_offline", "host_ids": [1, 0]})),
            ["host_ids.1"]
        );
    }

    #[test]
    fn every_closed_set_value_reads_back_from_its_name() {
        for kind in <RuleKind as clap::ValueEnum>::value_variants() {
            assert_eq!(from_name::<RuleKind>(&name_of(kind)), *kind);
        }
        assert_eq!(name_of(Operator::Le), "le");
        for (operator, symbol) in Operator::SYMBOLS {
            assert_eq!(Operator::of_symbol(operator.symbol()), operator);
            assert_eq!(operator.symbol(), symbol);
        }
        assert_eq!(
            name_of(Metric::HostDiskUsedPercent),
            "host_disk_used_percent"
        );
    }
}

//! Checks a JSON value against the schema poem-openapi derives for a type, collecting every
//! failing field with its path.
//!
//! The bounds of the contract are written once, as `oai(validator(...))` attributes; this module
//! enforces exactly what the OpenAPI document publishes, and reports all violations at once (the
//! derive's own parser stops at the first). Beyond the schema it refuses strings holding a NUL
//! character, which PostgreSQL cannot store. String `pattern`s are regular expressions
//! (`regex` syntax, anchored by the pattern itself). Unknown properties are ignored; `null` stands for
//! an absent optional field.
//!
//! Building a `Value` costs more than the typed parse itself, so the telemetry payload is
//! normally read by its reader (`api::body::reader`), and [`Schema::check`] runs for the bodies it
//! declines and for the admin API's small, rare bodies. The reader checks against the same
//! schema, compiled (`api::body::schema`), by the same leaf [`rules`].

pub(crate) mod rules;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde_json::Value;

use crate::domain::FieldError;
use rules::{TextRules, check_range, string_problem};

/// The schema of one type, with the registry its references resolve in.
pub struct Schema {
    registry: Registry,
    root: MetaSchemaRef,
}

impl Schema {
    /// The schema of `T`, built once per type and shared.
    pub fn of<T: Type + 'static>() -> Arc<Schema> {
        static CACHE: OnceLock<RwLock<HashMap<TypeId, Arc<Schema>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let id = TypeId::of::<T>();
        if let Some(schema) = cache.read().expect("schema cache").get(&id) {
            return schema.clone();
        }
        let mut registry = Registry::new();
        T::register(&mut registry);
        let root = T::schema_ref();
        let schema = Arc::new(Schema { registry, root });
        cache
            .write()
            .expect("schema cache")
            .entry(id)
            .or_insert(schema)
            .clone()
    }

    /// Every way `value` breaks the schema; empty when it conforms.
    pub fn check(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.check_ref(value, &self.root, &mut Vec::new(), &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a MetaSchemaRef) -> &'a MetaSchema {
        match schema {
            MetaSchemaRef::Inline(schema) => schema,
            MetaSchemaRef::Reference(name) => &self.registry.schemas[name],
        }
    }

    fn check_ref(
        &self,
        value: &Value,
        schema: &MetaSchemaRef,
        path: &mut Vec<String>,
        errors: &mut Vec<FieldError>,
    ) {
        let schema = self.resolve(schema);
        // poem-openapi wraps a described reference as `allOf: [$ref, {description}]`.
        for part in &schema.all_of {
            self.check_ref(value, part, path, errors);
        }
        let mut fail = |message: String| errors.push(FieldError::new(path.join("."), message));
        match (schema.ty, value) {
            (_, Value::Null) if schema.ty != "null" => {} // optional fields; `required` is checked by the parent
            ("object", Value::Object(map)) => {
                if let Some(max) = schema.max_properties.filter(|max| map.len() > *max) {
                    fail(format!("must have at most {max} entries"));
                }
                for name in &schema.required {
                    if map.get(*name).is_none_or(Value::is_null) {
                        path.push(name.to_string());
                        errors.push(FieldError::new(path.join("."), "is required"));
                        path.pop();
                    }
                }
                for (name, property) in &schema.properties {
                    if let Some(value) = map.get(*name) {
                        path.push(name.to_string());
                        self.check_ref(value, property, path, errors);
                        path.pop();
                    }
                }
                if let Some(entries) = &schema.additional_properties {
                    let max_key = self.resolve(entries).max_length;
                    for (key, value) in map {
                        path.push(key.clone());
                        if let Some(problem) = string_problem(key, max_key) {
                            errors.push(FieldError::new(path.join("."), format!("key {problem}")));
                        }
                        self.check_ref(value, entries, path, errors);
                        path.pop();
                    }
                }
            }
            ("array", Value::Array(items)) => {
                if let Some(max) = schema.max_items.filter(|max| items.len() > *max) {
                    fail(format!("must have at most {max} items"));
                } else if let Some(item_schema) = &schema.items {
                    for (index, item) in items.iter().enumerate() {
                        path.push(index.to_string());
                        self.check_ref(item, item_schema, path, errors);
                        path.pop();
                    }
                }
            }
            ("string", Value::String(_))
                if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) =>
            {
                let allowed: Vec<&str> =
                    schema.enum_items.iter().filter_map(Value::as_str).collect();
                fail(format!("must be one of `{}`", allowed.join("`, `")));
            }
            ("string", Value::String(_)) if !schema.enum_items.is_empty() => {}
            ("string", Value::String(text)) => {
                if let Some(problem) = TextRules::of(schema).problem(text) {
                    fail(problem);
                }
            }
            ("integer", Value::Number(number)) => match number.as_i64() {
                Some(n) if schema.format == Some("int32") && i32::try_from(n).is_err() => {
                    fail("is out of range for a 32-bit integer".into())
                }
                Some(n) => check_range(n as f64, schema.minimum, schema.maximum, &mut fail),
                None if number.is_u64() => fail("is too large for a 64-bit integer".into()),
                None => fail("must be an integer".into()),
            },
            ("number", Value::Number(number)) => match number.as_f64() {
                Some(n) => check_range(n, schema.minimum, schema.maximum, &mut fail),
                None => fail("must be a number".into()),
            },
            ("boolean", Value::Bool(_)) => {}
            ("object" | "array" | "string" | "integer" | "number" | "boolean", _) => {
                fail(format!("must be {}", article(schema.ty, schema.format)))
            }
            _ => {} // any-typed
        }
    }
}

fn article(ty: &str, format: Option<&str>) -> String {
    match (ty, format) {
        ("string", Some("date-time")) => "an RFC 3339 timestamp string".into(),
        ("object" | "array" | "integer", _) => format!("an {ty}"),
        _ => format!("a {ty}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_contract::TelemetryPayload;
    use serde_json::json;

    fn errors(value: Value) -> Vec<(String, String)> {
        Schema::of::<TelemetryPayload>()
            .check(&value)
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn fields(value: Value) -> Vec<String> {
        errors(value).into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn a_minimal_payload_conforms() {
        assert_eq!(
            errors(json!({"recorded_at": "2024-05-01T12:00:00Z", "host": {"metrics": {}}})),
            vec![]
        );
    }

    #[test]
    fn every_failing_field_is_reported_by_path() {
        let value = json!({
            "recorded_at": "yesterday",
            "host": {"metrics": {"cpu_percent": 101, "memory_used_mb": -1}, "facts": {"cpu_count": 0}},
            "containers": [
                {"container_id": "a", "name": "n", "image": "i"},
                {"container_id": "", "name": "n", "metrics": {"cpu_percent": "high"}}
            ]
        });
        assert_eq!(
            fields(value),
            [
                "recorded_at",
                "host.metrics.cpu_percent",
                "host.metrics.memory_used_mb",
                "host.facts.cpu_count",
                "containers.1.image",
                "containers.1.container_id",
                "containers.1.metrics.cpu_percent",
            ]
        );
    }

    #[test]
    fn recorded_at_must_be_a_string() {
        for bad in [json!(0), json!(false), json!([])] {
            let got = errors(json!({"recorded_at": bad, "host": {"metrics": {}}}));
            assert_eq!(
                got,
                [(
                    "recorded_at".to_string(),
                    "must be an RFC 3339 timestamp string".to_string()
                )],
                "{bad}"
            );
        }
    }

    #[test]
    fn nulls_stand_for_absent_optional_fields_but_not_required_ones() {
        let got = fields(
            json!({"recorded_at": null, "host": {"metrics": {"cpu_percent": null}, "facts": null}, "containers": null}),
        );
        assert_eq!(got, ["recorded_at"]);
    }

    #[test]
    fn integers_beyond_64_bits_and_fractions_are_refused() {
        let got = errors(
            json!({"recorded_at": "2024-05-01T12:00:00Z", "host": {"metrics": {"network_rx_bytes": 18446744073709551615u64, "network_tx_bytes": 1.5}}}),
        );
        assert_eq!(
            got,
            [
                (
                    "host.metrics.network_rx_bytes".into(),
                    "is too large for a 64-bit integer".into()
                ),
                (
                    "host.metrics.network_tx_bytes".into(),
                    "must be an integer".into()
                ),
            ]
        );
    }

    #[test]
    fn nul_characters_are_refused_in_values_and_label_keys() {
        let got = fields(json!({
            "recorded_at": "2024-05-01T12:00:00Z",
            "host": {"metrics": {}, "facts": {"os": "linux\u{0}"}},
            "containers": [{"container_id": "a", "name": "n", "image": "i", "labels": {"k\u{0}": "v"}}]
        }));
        assert_eq!(got, ["host.facts.os", "containers.0.labels.k\u{0}"]);
    }

    #[test]
    fn string_lengths_count_characters_not_bytes() {
        let os = "é".repeat(80);
        assert_eq!(
            fields(
                json!({"recorded_at": "2024-05-01T12:00:00Z", "host": {"metrics": {}, "facts": {"os": os}}})
            ),
            Vec::<String>::new()
        );
        let os = "é".repeat(81);
        assert_eq!(
            fields(
                json!({"recorded_at": "2024-05-01T12:00:00Z", "host": {"metrics": {}, "facts": {"os": os}}})
            ),
            ["host.facts.os"]
        );
    }

    /// A list with a bound on its length (the telemetry payload has none left).
    #[derive(poem_openapi::Object)]
    struct Bounded {
        #[oai(validator(max_items = 3))]
        items: Vec<Value>,
    }

    #[test]
    fn too_many_items_is_one_error_not_one_per_item() {
        let got: Vec<_> = Schema::of::<Bounded>()
            .check(&json!({"items": [{"a": 1}, 2, 3, 4, 5]}))
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect();
        assert_eq!(
            got,
            [("items".to_string(), "must have at most 3 items".to_string())]
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            fields(
                json!({"recorded_at": "2024-05-01T12:00:00Z", "host": {"metrics": {}, "gpu": 1}, "extra": true})
            ),
            Vec::<String>::new()
        );
    }
}

//! The fast path of [`schema_check`](super::schema_check): a schema compiled once per type, then
//! checked against the JSON text while it is parsed, without building a `serde_json::Value`.
//!
//! It answers one question: would `Schema::check` pass this document with no errors? Parsing into
//! a `Value` allocates a node per string, array and object, which made the check cost several
//! times the typed parse it guards; this scan allocates nothing on the way. It never words an
//! error: on any doubt it says no, and the caller takes the `Value` path, which names every
//! failing field. So it only has to be *at least as strict* as `check`, and exact for documents
//! that conform. Its leaf rules (string, number, range) are `schema_check`'s own functions, so
//! the two cannot drift apart on a bound.
//!
//! It says no (where `check` might say yes) to: a known property given twice in one object
//! (where a `Value` keeps only the last one and a typed parse refuses), an object whose keys,
//! repeats counted, outnumber its `maxProperties`, and any document whose schema it does not
//! model (see [`Compiled::new`]).

use std::collections::HashMap;
use std::fmt;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::schema_check::{TextRules, check_range, string_problem};

type NodeId = usize;

/// A schema flattened into an arena of nodes, with references resolved and patterns compiled.
pub struct Compiled {
    nodes: Vec<Node>,
    root: NodeId,
}

/// What one node demands of a JSON value. `null` conforms to every node: it stands for an
/// absent optional field (required fields are the parent object's business).
enum Node {
    /// Anything goes (a schema without a checked type).
    Any,
    /// An object with named properties; others are ignored.
    Object {
        properties: Vec<(&'static str, NodeId)>,
        /// Bit `i` set: `properties[i]` is required (present and not null).
        required: u64,
        max_properties: Option<usize>,
    },
    /// An object whose every entry follows one schema (`additionalProperties`).
    Map {
        max_properties: Option<usize>,
        /// Keys are held to the entry schema's `maxLength`, as `check` does.
        key_max_length: Option<usize>,
        values: NodeId,
    },
    Array {
        max_items: Option<usize>,
        items: Option<NodeId>,
    },
    String(TextRules),
    Integer {
        int32: bool,
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    Number {
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    Boolean,
}

impl Compiled {
    /// Compiles the schema `root` of `registry`; `None` when it uses something this scan does
    /// not model, in which case every document takes the `Value` path. Not modelled: a `null`
    /// type, more than one checked schema for one value (`allOf` beyond poem-openapi's
    /// "reference plus description" wrapper), an object with both properties and
    /// `additionalProperties`, required names that are not properties, more than 64
    /// properties, recursive references and patterns that do not compile.
    pub fn new(registry: &Registry, root: &MetaSchemaRef) -> Option<Self> {
        let mut compiler = Compiler {
            registry,
            nodes: Vec::new(),
            references: HashMap::new(),
        };
        let root = compiler.compile(root)?;
        Some(Self {
            nodes: compiler.nodes,
            root,
        })
    }

    /// Whether `text` holds one JSON document that conforms to the schema. False when it does
    /// not, when it is not JSON, and when this scan cannot tell.
    pub fn conforms(&self, text: &str) -> bool {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let scan = Scan {
            compiled: self,
            node: self.root,
        };
        scan.deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok()
    }
}

struct Compiler<'r> {
    registry: &'r Registry,
    nodes: Vec<Node>,
    /// Compiled references; `None` while one is being compiled (to refuse recursion).
    references: HashMap<&'r str, Option<NodeId>>,
}

impl<'r> Compiler<'r> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile(&mut self, schema: &'r MetaSchemaRef) -> Option<NodeId> {
        match schema {
            MetaSchemaRef::Inline(schema) => self.compile_schema(schema),
            MetaSchemaRef::Reference(name) => {
                if let Some(done) = self.references.get(name.as_str()) {
                    return *done;
                }
                self.references.insert(name, None);
                let node = self.compile_schema(self.registry.schemas.get(name)?)?;
                self.references.insert(name, Some(node));
                Some(node)
            }
        }
    }

    /// `check` applies every `allOf` part and then the schema's own type to the same value; a
    /// single pass can follow one of them, so at most one may check anything.
    fn compile_schema(&mut self, schema: &'r MetaSchema) -> Option<NodeId> {
        let mut checked = None;
        for part in &schema.all_of {
            let part = self.compile(part)?;
            if !matches!(self.nodes[part], Node::Any) && checked.replace(part).is_some() {
                return None;
            }
        }
        let own = self.own_node(schema)?;
        if matches!(own, Node::Any) {
            return Some(checked.unwrap_or_else(|| self.push(Node::Any)));
        }
        if checked.is_some() {
            return None;
        }
        Some(self.push(own))
    }

    /// The node for the schema's own `type`, ignoring its `allOf`.
    fn own_node(&mut self, schema: &'r MetaSchema) -> Option<Node> {
        let node = match schema.ty {
            "null" => return None,
            "object" => return self.object_node(schema),
            "array" => Node::Array {
                max_items: schema.max_items,
                items: match &schema.items {
                    Some(items) => Some(self.compile(items)?),
                    None => None,
                },
            },
            "string" => Node::String(TextRules::try_of(schema).ok()?),
            "integer" => Node::Integer {
                int32: schema.format == Some("int32"),
                minimum: schema.minimum,
                maximum: schema.maximum,
            },
            "number" => Node::Number {
                minimum: schema.minimum,
                maximum: schema.maximum,
            },
            "boolean" => Node::Boolean,
            _ => Node::Any,
        };
        Some(node)
    }

    fn object_node(&mut self, schema: &'r MetaSchema) -> Option<Node> {
        if let Some(entries) = &schema.additional_properties {
            if !schema.properties.is_empty() || !schema.required.is_empty() {
                return None;
            }
            // As `check`: the key limit is the entry schema's own `maxLength`, one level deep.
            let key_max_length = match &**entries {
                MetaSchemaRef::Inline(entries) => entries.max_length,
                MetaSchemaRef::Reference(name) => self.registry.schemas.get(name)?.max_length,
            };
            return Some(Node::Map {
                max_properties: schema.max_properties,
                key_max_length,
                values: self.compile(entries)?,
            });
        }
        if schema.properties.len() > 64 {
            return None;
        }
        let mut properties = Vec::with_capacity(schema.properties.len());
        for (name, property) in &schema.properties {
            properties.push((*name, self.compile(property)?));
        }
        let mut required = 0u64;
        for name in &schema.required {
            let index = properties.iter().position(|(known, _)| known == name)?;
            required |= 1 << index;
        }
        Some(Node::Object {
            properties,
            required,
            max_properties: schema.max_properties,
        })
    }
}

/// Checks one value against one node while it is parsed. Yields whether the value was
/// non-null (for the parent's `required`); any failure is an error that ends the scan.
#[derive(Clone, Copy)]
struct Scan<'c> {
    compiled: &'c Compiled,
    node: NodeId,
}

impl<'c> Scan<'c> {
    fn node(&self) -> &'c Node {
        &self.compiled.nodes[self.node]
    }

    fn at(&self, node: NodeId) -> Self {
        Self { node, ..*self }
    }
}

/// The scan's only error: its message is never shown (the `Value` path words the errors).
fn nonconforming<E: de::Error>() -> E {
    E::custom("does not conform")
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a value that conforms to the schema")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        match self.node() {
            Node::Any | Node::Boolean => Ok(true),
            _ => Err(nonconforming()),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<bool, E> {
        let (minimum, maximum) = match *self.node() {
            Node::Any => return Ok(true),
            Node::Integer { int32, .. } if int32 && i32::try_from(n).is_err() => {
                return Err(nonconforming());
            }
            Node::Integer {
                minimum, maximum, ..
            }
            | Node::Number { minimum, maximum } => (minimum, maximum),
            _ => return Err(nonconforming()),
        };
        in_range(n as f64, minimum, maximum)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        match (self.node(), i64::try_from(n)) {
            (Node::Number { minimum, maximum }, _) => in_range(n as f64, *minimum, *maximum),
            (_, Ok(n)) => self.visit_i64(n),
            // An integer beyond i64 is refused by `check`.
            (Node::Any, Err(_)) => Ok(true),
            (_, Err(_)) => Err(nonconforming()),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<bool, E> {
        match *self.node() {
            Node::Any => Ok(true),
            Node::Number { minimum, maximum } => in_range(n, minimum, maximum),
            _ => Err(nonconforming()),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
        match self.node() {
            Node::Any => Ok(true),
            Node::String(rules) if rules.problem(text).is_none() => Ok(true),
            _ => Err(nonconforming()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let (max_items, items) = match *self.node() {
            Node::Any => (None, None),
            Node::Array { max_items, items } => (max_items, items),
            _ => return Err(nonconforming()),
        };
        let mut count = 0usize;
        loop {
            let more = match items {
                Some(items) => seq.next_element_seed(self.at(items))?.is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(true);
            }
            count += 1;
            if max_items.is_some_and(|max| count > max) {
                return Err(nonconforming());
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        match self.node() {
            Node::Any => {
                IgnoredAny.visit_map(map)?;
                Ok(true)
            }
            Node::Object {
                properties,
                required,
                max_properties,
            } => self.object(map, properties, *required, *max_properties),
            Node::Map {
                max_properties,
                key_max_length,
                values,
            } => self.map(map, *max_properties, *key_max_length, *values),
            _ => Err(nonconforming()),
        }
    }
}

impl Scan<'_> {
    /// Entries are counted as they come, so a repeated key counts twice: stricter than
    /// `check`, which counts distinct keys, and never laxer.
    fn object<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
        properties: &[(&'static str, NodeId)],
        required: u64,
        max_properties: Option<usize>,
    ) -> Result<bool, A::Error> {
        let (mut seen, mut present, mut count) = (0u64, 0u64, 0usize);
        while let Some(index) = map.next_key_seed(PropertyKey(properties))? {
            count += 1;
            let Some(index) = index else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let bit = 1u64 << index;
            if seen & bit != 0 {
                return Err(nonconforming());
            }
            seen |= bit;
            if map.next_value_seed(self.at(properties[index].1))? {
                present |= bit;
            }
        }
        if required & !present != 0 || max_properties.is_some_and(|max| count > max) {
            return Err(nonconforming());
        }
        Ok(true)
    }

    fn map<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
        max_properties: Option<usize>,
        key_max_length: Option<usize>,
        values: NodeId,
    ) -> Result<bool, A::Error> {
        let mut count = 0usize;
        while map.next_key_seed(MapKey(key_max_length))?.is_some() {
            count += 1;
            if max_properties.is_some_and(|max| count > max) {
                return Err(nonconforming());
            }
            map.next_value_seed(self.at(values))?;
        }
        Ok(true)
    }
}

fn in_range<E: de::Error>(n: f64, minimum: Option<f64>, maximum: Option<f64>) -> Result<bool, E> {
    let mut conforms = true;
    check_range(n, minimum, maximum, &mut |_| conforms = false);
    if conforms {
        Ok(true)
    } else {
        Err(nonconforming())
    }
}

/// An object's key, looked up among its properties without copying it: the index of the
/// property, `None` for an unknown key.
struct PropertyKey<'p>(&'p [(&'static str, NodeId)]);

impl<'de> DeserializeSeed<'de> for PropertyKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PropertyKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a property name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|(name, _)| *name == key))
    }
}

/// A key of a map, checked as `check` checks it (no NUL, at most `maxLength` characters).
struct MapKey(Option<usize>);

impl<'de> DeserializeSeed<'de> for MapKey {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MapKey {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        match string_problem(key, self.0) {
            None => Ok(()),
            Some(_) => Err(nonconforming()),
        }
    }
}

#[cfg(test)]
mod tests {
    use nexus_contract::TelemetryPayload;
    use poem_openapi::types::Type;

    use super::*;
    use crate::api::admin::hosts::{HostUpdate, NewHost};
    use crate::api::admin::tokens::NewAgentToken;

    fn compiled<T: Type>() -> Option<Compiled> {
        let mut registry = Registry::new();
        T::register(&mut registry);
        Compiled::new(&registry, &T::schema_ref())
    }

    fn inline(schema: MetaSchema) -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(schema))
    }

    const MINIMAL: &str = r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}}}"#;

    #[test]
    fn every_request_body_of_the_api_takes_the_fast_path() {
        assert!(compiled::<TelemetryPayload>().is_some());
        assert!(compiled::<NewHost>().is_some());
        assert!(compiled::<HostUpdate>().is_some());
        assert!(compiled::<NewAgentToken>().is_some());
    }

    #[test]
    fn a_conforming_document_is_vouched_for() {
        assert!(compiled::<TelemetryPayload>().unwrap().conforms(MINIMAL));
    }

    #[test]
    fn a_repeated_property_is_left_to_the_value_path_even_when_both_values_conform() {
        let twice = MINIMAL.replace('{', r#"{"host":{"metrics":{}},"#);
        assert!(!compiled::<TelemetryPayload>().unwrap().conforms(&twice));
    }

    #[test]
    fn trailing_characters_and_invalid_json_are_not_vouched_for() {
        let scan = compiled::<TelemetryPayload>().unwrap();
        assert!(!scan.conforms(&format!("{MINIMAL} {{}}")));
        assert!(!scan.conforms(&MINIMAL[1..]));
    }

    #[test]
    fn a_value_under_two_checked_schemas_at_once_is_not_modelled() {
        let schema = MetaSchema {
            all_of: vec![
                inline(MetaSchema::new("string")),
                inline(MetaSchema::new("integer")),
            ],
            ..MetaSchema::ANY
        };
        assert!(Compiled::new(&Registry::new(), &inline(schema)).is_none());
    }

    #[test]
    fn a_reference_with_a_description_is_its_referenced_schema() {
        let mut registry = Registry::new();
        TelemetryPayload::register(&mut registry);
        let described = TelemetryPayload::schema_ref().merge(MetaSchema {
            description: Some("a snapshot"),
            ..MetaSchema::ANY
        });
        assert!(
            matches!(described, MetaSchemaRef::Inline(_)),
            "an allOf wrapper"
        );
        let scan = Compiled::new(&registry, &described).unwrap();
        assert!(scan.conforms(MINIMAL));
        assert!(!scan.conforms(r#"{"host":{"metrics":{}}}"#));
    }

    #[test]
    fn recursive_references_are_not_modelled() {
        let mut registry = Registry::new();
        registry.schemas.insert(
            "Tree".into(),
            MetaSchema {
                properties: vec![("children", MetaSchemaRef::Reference("Tree".into()))],
                ..MetaSchema::new("object")
            },
        );
        let root = MetaSchemaRef::Reference("Tree".into());
        assert!(Compiled::new(&registry, &root).is_none());
    }
}

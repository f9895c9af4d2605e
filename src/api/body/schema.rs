//! The schema poem-openapi derives for a type, compiled once into an arena of nodes (references
//! resolved, patterns compiled), for the [`reader`](super::reader) to check values against as it
//! reads them. The bounds come from the `oai(validator(...))` attributes, as in the published
//! document, and the leaf [`rules`](crate::domain::schema_check::rules) are the ones [`check`](crate::domain::schema_check) applies,
//! so the reader and the `Value` path cannot differ on a bound.
//!
//! A schema it does not model (see [`CompiledSchema::new`]) compiles to nothing, and every
//! document of that type takes the `Value` path.

use std::collections::HashMap;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use crate::domain::schema_check::rules::{TextRules, in_range, string_problem};

pub type NodeId = usize;

/// A schema flattened into an arena of nodes, with references resolved and patterns compiled.
pub struct CompiledSchema {
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

impl CompiledSchema {
    /// The schema poem-openapi derives for `T`, compiled; `None` as for [`new`](Self::new).
    pub fn of<T: Type>() -> Option<Self> {
        let mut registry = Registry::new();
        T::register(&mut registry);
        Self::new(&registry, &T::schema_ref())
    }

    /// Compiles the schema `root` of `registry`; `None` when it uses something this scan does
    /// not model, in which case every document takes the `Value` path. Not modelled: a `null`
    /// type, more than one checked schema for one value (`allOf` beyond poem-openapi's
    /// "reference plus description" wrapper), an object with both properties and
    /// `additionalProperties`, required names that are not properties, more than 64
    /// properties, recursive references, enumerations and patterns that do not compile.
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
}

/// What the reader asks of a node. Each answer is the one the `Value` path's check gives for the
/// same value at the same schema, by the same leaf rules.
impl CompiledSchema {
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// The object's properties (name and node), and which of them are required (bit `i`:
    /// property `i`).
    pub fn properties(&self, object: NodeId) -> Option<(&[(&'static str, NodeId)], u64)> {
        match &self.nodes[object] {
            Node::Object {
                properties,
                required,
                ..
            } => Some((properties, *required)),
            _ => None,
        }
    }

    /// The node of an array's items; `None` for anything else, or items without a schema.
    pub fn items(&self, array: NodeId) -> Option<NodeId> {
        match self.nodes[array] {
            Node::Array { items, .. } => items,
            _ => None,
        }
    }

    /// The node of a map's values, and its keys' `maxLength`.
    pub fn entries(&self, map: NodeId) -> Option<(NodeId, Option<usize>)> {
        match self.nodes[map] {
            Node::Map {
                values,
                key_max_length,
                ..
            } => Some((values, key_max_length)),
            _ => None,
        }
    }

    /// Whether an object, map or array with `count` entries (a repeated key counted each time)
    /// stays within its `maxProperties` or `maxItems`.
    pub fn accepts_count(&self, node: NodeId, count: usize) -> bool {
        let max = match self.nodes[node] {
            Node::Object { max_properties, .. } | Node::Map { max_properties, .. } => {
                max_properties
            }
            Node::Array { max_items, .. } => max_items,
            _ => None,
        };
        max.is_none_or(|max| count <= max)
    }

    /// Whether a map key conforms: no NUL, at most the entry schema's `maxLength` characters.
    pub fn accepts_key(key: &str, key_max_length: Option<usize>) -> bool {
        string_problem(key, key_max_length).is_none()
    }

    /// Whether a string conforms; `escaped`: it was decoded from escapes, so it may hold a NUL
    /// (text sliced from a JSON document cannot).
    pub fn accepts_text(&self, node: NodeId, text: &str, escaped: bool) -> bool {
        match &self.nodes[node] {
            Node::Any => true,
            Node::String(rules) => rules.problem_of(text, escaped).is_none(),
            _ => false,
        }
    }

    /// As [`accepts_text`](Self::accepts_text), for a string the caller has already parsed as
    /// the timestamp a `date-time` node demands.
    pub fn accepts_timestamp(&self, node: NodeId, text: &str, escaped: bool) -> bool {
        match &self.nodes[node] {
            Node::Any => true,
            Node::String(rules) if rules.is_date_time() => {
                rules.problem_besides_format(text, escaped).is_none()
            }
            Node::String(rules) => rules.problem_of(text, escaped).is_none(),
            _ => false,
        }
    }

    /// Whether a number that is an `i64` to serde_json conforms.
    pub fn accepts_integer(&self, node: NodeId, n: i64) -> bool {
        match self.nodes[node] {
            Node::Any => true,
            Node::Integer {
                int32,
                minimum,
                maximum,
            } => (!int32 || i32::try_from(n).is_ok()) && in_range(n as f64, minimum, maximum),
            Node::Number { minimum, maximum } => in_range(n as f64, minimum, maximum),
            _ => false,
        }
    }

    /// Whether a boolean conforms.
    pub fn accepts_boolean(&self, node: NodeId) -> bool {
        matches!(self.nodes[node], Node::Any | Node::Boolean)
    }

    /// Whether a number that is a float to serde_json (a fraction, an exponent, `-0`, beyond
    /// `i64`) conforms: never where an integer is due.
    pub fn accepts_float(&self, node: NodeId, n: f64) -> bool {
        match self.nodes[node] {
            Node::Any => true,
            Node::Number { minimum, maximum } => in_range(n, minimum, maximum),
            _ => false,
        }
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
            // Enumerations are left to the `Value` path.
            "string" if !schema.enum_items.is_empty() => return None,
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

#[cfg(test)]
mod tests {
    use nexus_contract::TelemetryPayload;

    use super::*;

    fn compiled<T: Type>() -> Option<CompiledSchema> {
        CompiledSchema::of::<T>()
    }

    fn inline(schema: MetaSchema) -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(schema))
    }

    /// The names of the root object's properties, and which are required.
    fn root_properties(compiled: &CompiledSchema) -> (Vec<&'static str>, u64) {
        let (properties, required) = compiled.properties(compiled.root()).unwrap();
        (properties.iter().map(|(name, _)| *name).collect(), required)
    }

    #[test]
    fn the_telemetry_payload_is_modelled_for_the_reader() {
        let compiled = compiled::<TelemetryPayload>().unwrap();
        let (names, required) = root_properties(&compiled);
        assert_eq!(names, ["recorded_at", "host", "containers"]);
        assert_eq!(required, 0b011);
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
        assert!(CompiledSchema::new(&Registry::new(), &inline(schema)).is_none());
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
        let described = CompiledSchema::new(&registry, &described).unwrap();
        let plain = compiled::<TelemetryPayload>().unwrap();
        assert_eq!(root_properties(&described), root_properties(&plain));
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
        assert!(CompiledSchema::new(&registry, &root).is_none());
    }
}

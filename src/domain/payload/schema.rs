//! The fast path of [`check`](super::check): a schema compiled once per type, then
//! checked value by value while the typed parse reads the JSON text, without building a
//! `serde_json::Value`.
//!
//! It answers one question: would `Schema::check` pass this document with no errors, and if so
//! what is it as a `T`? Parsing into a `Value` allocates a node per string, array and object,
//! which made the check cost several times the typed parse it guards; a separate scan of the
//! text before the typed parse still cost a quarter of the parse (perf, BENCHMARKS.md). Here
//! the typed parse goes through a deserializer that checks each value against its node before
//! the type's own visitor sees it, and the property of each key as it is read. It never words
//! an error: on any doubt it says no, and the caller takes the `Value` path, which names every
//! failing field. So it only has to be *at least as strict* as `check`, and exact for documents
//! that conform. Its leaf rules (string, number, range) are `schema_check`'s own functions, so
//! the two cannot drift apart on a bound.
//!
//! It says no (where `check` might say yes) to: a known property given twice in one object
//! (where a `Value` keeps only the last one and a typed parse refuses), an object whose keys,
//! repeats counted, outnumber its `maxProperties`, an enum (not modelled), and any document
//! whose schema it does not model (see [`Compiled::new`]). Values the type skips (properties
//! the schema does not name) are not checked, as `check` ignores them too.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::check::{TextRules, check_range, string_problem};

pub type NodeId = usize;

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

    /// `text` parsed as `T` if it is one JSON document that conforms to the schema, checked
    /// value by value as the typed parse reads it; `None` when it does not conform, is not
    /// JSON, is not a `T`, or when this check cannot tell.
    pub fn parse<T: DeserializeOwned>(&self, text: &str) -> Option<T> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let present = Cell::new(false);
        let at = At {
            compiled: self,
            node: self.root,
            present: &present,
        };
        let parsed = T::deserialize(Checked {
            de: &mut deserializer,
            at,
        })
        .ok()?;
        deserializer.end().ok()?;
        Some(parsed)
    }
}

/// The same nodes and leaf rules for a reader that walks one type's documents by hand
/// ([`reader`](super::reader)), so it cannot differ from this scan on a bound.
/// Each answer is the one the scan would give for the same value at the same node.
impl Compiled {
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

    /// Whether text read without escapes conforms; `format_checked`: the caller has parsed it
    /// as the timestamp a `date-time` node demands.
    pub fn accepts_text(&self, node: NodeId, text: &str, format_checked: bool) -> bool {
        match &self.nodes[node] {
            Node::Any => true,
            Node::String(rules) if format_checked && rules.is_date_time() => {
                rules.problem_besides_format(text, false).is_none()
            }
            Node::String(rules) => rules.problem_of(text, false).is_none(),
            _ => false,
        }
    }

    /// Whether a JSON integer conforms.
    pub fn accepts_integer(&self, node: NodeId, n: i64) -> bool {
        self.accepts_number(node, Number::Signed(n))
    }

    /// Whether a number read as a float (a fraction, an exponent, or too long for an `i64`)
    /// conforms.
    pub fn accepts_float(&self, node: NodeId, n: f64) -> bool {
        self.accepts_number(node, Number::Float(n))
    }

    /// The typed parse's own check of a number at `node`.
    fn accepts_number(&self, node: NodeId, n: Number) -> bool {
        let at = At {
            compiled: self,
            node,
            present: &Cell::new(false),
        };
        let check = CheckedVisitor { inner: (), at };
        check.number::<serde_json::Error>(n).is_ok()
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

/// Where a value stands in the schema, and where to tell its parent object whether it was
/// non-null (for `required`).
#[derive(Clone, Copy)]
struct At<'c, 'p> {
    compiled: &'c Compiled,
    node: NodeId,
    present: &'p Cell<bool>,
}

impl<'c> At<'c, '_> {
    fn node(&self) -> &'c Node {
        &self.compiled.nodes[self.node]
    }
}

/// The check's only error: its message is never shown (the `Value` path words the errors).
fn nonconforming<E: de::Error>() -> E {
    E::custom("does not conform")
}

/// A deserializer that checks every value it hands out against its node.
struct Checked<'c, 'p, D> {
    de: D,
    at: At<'c, 'p>,
}

/// Forwards `deserialize_*` methods to the wrapped deserializer `self.de`, with the visitor
/// wrapped by `self.visitor(..)`.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.visitor(visitor);
            self.de.$method($($arg,)* visitor)
        }
    )*};
}

impl<'c, 'p, D> Checked<'c, 'p, D> {
    fn visitor<V>(&self, inner: V) -> CheckedVisitor<'c, 'p, V> {
        CheckedVisitor { inner, at: self.at }
    }
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Checked<'_, '_, D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_f32(); deserialize_f64();
        deserialize_char(); deserialize_str(); deserialize_string(); deserialize_bytes();
        deserialize_byte_buf(); deserialize_option(); deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map(); deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// Checks the value the wrapped deserializer found, then hands it to the type's own visitor.
struct CheckedVisitor<'c, 'p, V> {
    inner: V,
    at: At<'c, 'p>,
}

impl<'c, 'p, V> CheckedVisitor<'c, 'p, V> {
    fn number<E: de::Error>(&self, n: Number) -> Result<(), E> {
        self.at.present.set(true);
        match (self.at.node(), n) {
            (Node::Any, _) => Ok(()),
            (
                &Node::Integer {
                    int32,
                    minimum,
                    maximum,
                },
                Number::Signed(n),
            ) => {
                if int32 && i32::try_from(n).is_err() {
                    return Err(nonconforming());
                }
                in_range(n as f64, minimum, maximum)
            }
            (&Node::Number { minimum, maximum }, n) => in_range(n.as_f64(), minimum, maximum),
            // An integer beyond i64 is refused by `check`, a fraction where an integer is due too.
            _ => Err(nonconforming()),
        }
    }

    fn text<E: de::Error>(&self, text: &str, escaped: bool) -> Result<(), E> {
        self.at.present.set(true);
        match self.at.node() {
            Node::Any => Ok(()),
            Node::String(rules) if rules.problem_of(text, escaped).is_none() => Ok(()),
            _ => Err(nonconforming()),
        }
    }
}

#[derive(Clone, Copy)]
enum Number {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Signed(n) => n as f64,
            Number::Unsigned(n) => n as f64,
            Number::Float(n) => n,
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CheckedVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.at.present.set(false);
        self.inner.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.at.present.set(false);
        self.inner.visit_none()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Checked { de, at: self.at })
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Checked { de, at: self.at })
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.at.present.set(true);
        match self.at.node() {
            Node::Any | Node::Boolean => self.inner.visit_bool(v),
            _ => Err(nonconforming()),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.number(Number::Signed(v))?;
        self.inner.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.number(match i64::try_from(v) {
            Ok(signed) => Number::Signed(signed),
            Err(_) => Number::Unsigned(v),
        })?;
        self.inner.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
        self.number(Number::Float(v))?;
        self.inner.visit_f64(v)
    }

    /// Unescaped text straight from the document: it cannot hold a NUL (JSON has no raw
    /// control characters in strings), so only the rules are checked.
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.text(v, false)?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.text(v, true)?;
        self.inner.visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.text(&v, true)?;
        self.inner.visit_string(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.at.present.set(true);
        let (max_items, items) = match *self.at.node() {
            Node::Any => return self.inner.visit_seq(seq),
            Node::Array { max_items, items } => (max_items, items),
            _ => return Err(nonconforming()),
        };
        let count = Cell::new(0);
        let checked = CheckedSeq {
            seq,
            compiled: self.at.compiled,
            items,
            count: &count,
        };
        let value = self.inner.visit_seq(checked)?;
        if max_items.is_some_and(|max| count.get() > max) {
            return Err(nonconforming());
        }
        Ok(value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.at.present.set(true);
        let compiled = self.at.compiled;
        let (kind, max_properties, required) = match *self.at.node() {
            Node::Any => return self.inner.visit_map(map),
            Node::Object {
                ref properties,
                max_properties,
                required,
            } => (Entries::Properties(properties), max_properties, required),
            Node::Map {
                max_properties,
                key_max_length,
                values,
            } => (
                Entries::Values {
                    key_max_length,
                    values,
                },
                max_properties,
                0,
            ),
            _ => return Err(nonconforming()),
        };
        let state = EntriesState::default();
        let value = self.inner.visit_map(CheckedMap {
            map,
            compiled,
            kind,
            state: &state,
        })?;
        if required & !state.present.get() != 0
            || max_properties.is_some_and(|max| state.count.get() > max)
        {
            return Err(nonconforming());
        }
        Ok(value)
    }
}

/// A sequence whose every element is checked against `items` (when given).
struct CheckedSeq<'c, 'p, A> {
    seq: A,
    compiled: &'c Compiled,
    items: Option<NodeId>,
    count: &'p Cell<usize>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for CheckedSeq<'_, '_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let element = match self.items {
            None => self.seq.next_element_seed(seed)?,
            Some(node) => {
                let present = Cell::new(false);
                let at = At {
                    compiled: self.compiled,
                    node,
                    present: &present,
                };
                self.seq.next_element_seed(CheckedSeed { seed, at })?
            }
        };
        if element.is_some() {
            self.count.set(self.count.get() + 1);
        }
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// What an object's entries must be: named properties, or values of one schema.
#[derive(Clone, Copy)]
enum Entries<'c> {
    Properties(&'c [(&'static str, NodeId)]),
    Values {
        key_max_length: Option<usize>,
        values: NodeId,
    },
}

/// What the entries of one object were, for its `required` and `maxProperties`.
#[derive(Default)]
struct EntriesState {
    /// Entries so far, a repeated key counted each time: stricter than `check`, which counts
    /// distinct keys, and never laxer.
    count: Cell<usize>,
    /// Bit `i`: property `i` was given; given non-null.
    seen: Cell<u64>,
    present: Cell<u64>,
    /// The property of the key just read; `None` for a key the schema does not name.
    key: Cell<Option<usize>>,
}

struct CheckedMap<'c, 'p, A> {
    map: A,
    compiled: &'c Compiled,
    kind: Entries<'c>,
    state: &'p EntriesState,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CheckedMap<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let check = KeyCheck {
            kind: self.kind,
            found: &self.state.key,
        };
        let key = self.map.next_key_seed(KeySeed { seed, check })?;
        if key.is_some() {
            let state = self.state;
            state.count.set(state.count.get() + 1);
            if let Some(index) = state.key.get() {
                let bit = 1u64 << index;
                if state.seen.get() & bit != 0 {
                    // A known property twice: a `Value` keeps the last, a typed parse refuses.
                    return Err(nonconforming());
                }
                state.seen.set(state.seen.get() | bit);
            }
        }
        Ok(key)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let (node, index) = match self.kind {
            Entries::Values { values, .. } => (values, None),
            Entries::Properties(properties) => match self.state.key.get() {
                Some(index) => (properties[index].1, Some(index)),
                // Properties the schema does not name are ignored, as `check` ignores them.
                None => return self.map.next_value_seed(seed),
            },
        };
        let present = Cell::new(false);
        let at = At {
            compiled: self.compiled,
            node,
            present: &present,
        };
        let value = self.map.next_value_seed(CheckedSeed { seed, at })?;
        if let Some(index) = index.filter(|_| present.get()) {
            self.state
                .present
                .set(self.state.present.get() | 1 << index);
        }
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A value's seed, deserialised through [`Checked`].
struct CheckedSeed<'c, 'p, S> {
    seed: S,
    at: At<'c, 'p>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CheckedSeed<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Checked { de, at: self.at })
    }
}

/// What to do with an entry's key: check it (a map's) or look it up among the properties (an
/// object's), and where to record the property found.
#[derive(Clone, Copy)]
struct KeyCheck<'c, 'p> {
    kind: Entries<'c>,
    found: &'p Cell<Option<usize>>,
}

impl KeyCheck<'_, '_> {
    fn key<E: de::Error>(&self, key: &str) -> Result<(), E> {
        match self.kind {
            Entries::Properties(properties) => {
                self.found
                    .set(properties.iter().position(|(name, _)| *name == key));
                Ok(())
            }
            // As `check`: no NUL, at most the entry schema's `maxLength` characters.
            Entries::Values { key_max_length, .. } => {
                if Compiled::accepts_key(key, key_max_length) {
                    Ok(())
                } else {
                    Err(nonconforming())
                }
            }
        }
    }
}

/// A key's seed: the key goes through its [`KeyCheck`] on its way to the type's own visitor.
struct KeySeed<'c, 'p, K> {
    seed: K,
    check: KeyCheck<'c, 'p>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, '_, K> {
    type Value = K::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<K::Value, D::Error> {
        self.check.found.set(None);
        let check = self.check;
        self.seed.deserialize(KeyDeserializer { de, check })
    }
}

struct KeyDeserializer<'c, 'p, D> {
    de: D,
    check: KeyCheck<'c, 'p>,
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for KeyDeserializer<'_, '_, D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any(); deserialize_str(); deserialize_string(); deserialize_identifier();
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum ignored_any
    }
}

impl<'c, 'p, D> KeyDeserializer<'c, 'p, D> {
    fn visitor<V>(&self, inner: V) -> KeyVisitor<'c, 'p, V> {
        KeyVisitor {
            inner,
            check: self.check,
        }
    }
}

struct KeyVisitor<'c, 'p, V> {
    inner: V,
    check: KeyCheck<'c, 'p>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.check.key(v)?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.check.key(v)?;
        self.inner.visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.check.key(&v)?;
        self.inner.visit_string(v)
    }
}

fn in_range<E: de::Error>(n: f64, minimum: Option<f64>, maximum: Option<f64>) -> Result<(), E> {
    let mut conforms = true;
    check_range(n, minimum, maximum, &mut |_| conforms = false);
    if conforms {
        Ok(())
    } else {
        Err(nonconforming())
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

    fn conforms(scan: &Compiled, text: &str) -> bool {
        scan.parse::<TelemetryPayload>(text).is_some()
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
        assert!(conforms(&compiled::<TelemetryPayload>().unwrap(), MINIMAL));
    }

    #[test]
    fn a_repeated_property_is_left_to_the_value_path_even_when_both_values_conform() {
        let twice = MINIMAL.replace('{', r#"{"host":{"metrics":{}},"#);
        assert!(!conforms(&compiled::<TelemetryPayload>().unwrap(), &twice));
    }

    #[test]
    fn trailing_characters_and_invalid_json_are_not_vouched_for() {
        let scan = compiled::<TelemetryPayload>().unwrap();
        assert!(!conforms(&scan, &format!("{MINIMAL} {{}}")));
        assert!(!conforms(&scan, &MINIMAL[1..]));
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
        assert!(conforms(&scan, MINIMAL));
        assert!(!conforms(&scan, r#"{"host":{"metrics":{}}}"#));
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

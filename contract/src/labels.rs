//! `Labels`: a container's labels, a JSON object of strings.
//!
//! Every name and value is packed into one string, in name order, rather than kept as a
//! `BTreeMap` or `String` pairs: a label set is small and is built, hashed and dropped whole on
//! every snapshot, and a map's nodes and strings were a large share of the server's CPU and
//! allocations (BENCHMARKS.md). It behaves as the map did: one value per name (the last one
//! given wins), iterated in name order, and equal whatever order the names came in.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Canonical by construction (sorted by name, no name twice), so the derived equality and hash
/// are those of the map.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Each label's name then its value, labels in name order.
    text: String,
    /// Per label, where its name ends (its value starts) and where its value ends; its name
    /// starts where the previous value ends.
    ends: Vec<(usize, usize)>,
}

impl Labels {
    pub const fn new() -> Self {
        Self {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// Labels from name–value pairs in the order given; of a name given twice the last value
    /// stays, as in a parsed JSON object. The text is sized once, exactly.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        let size = pairs
            .iter()
            .map(|(n, v)| n.as_ref().len() + v.as_ref().len());
        let mut labels = Self {
            text: String::with_capacity(size.sum()),
            ends: Vec::with_capacity(pairs.len()),
        };
        for (name, value) in pairs {
            labels.push(name.as_ref(), value.as_ref());
        }
        labels.normalised()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.name(middle).cmp(name) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Some(self.value(middle)),
            }
        }
        None
    }

    /// Name and value of each label, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.len()).map(|i| (self.name(i), self.value(i)))
    }

    /// Keeps the first `len` labels in name order.
    pub fn truncate(&mut self, len: usize) {
        self.ends.truncate(len);
        self.text
            .truncate(self.ends.last().map_or(0, |&(_, end)| end));
    }

    /// Cuts every value to at most `max_chars` characters.
    pub fn truncate_values(&mut self, max_chars: usize) {
        fn cut(value: &str, max_chars: usize) -> &str {
            match value.char_indices().nth(max_chars) {
                Some((byte_index, _)) => &value[..byte_index],
                None => value,
            }
        }
        *self = Self::packed(
            self.iter()
                .map(|(name, value)| (name, cut(value, max_chars))),
        );
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        &self.text[start..self.ends[i].0]
    }

    fn value(&self, i: usize) -> &str {
        let (start, end) = self.ends[i];
        &self.text[start..end]
    }

    /// Packs pairs that are already in name order with no name twice.
    fn packed<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut labels = Self::new();
        for (name, value) in pairs {
            labels.push(name, value);
        }
        labels
    }

    // Inlined into `from_pairs`, which is generic and so compiled in the caller's crate.
    #[inline]
    fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Sorts by name; of several labels with one name, the last one given stays.
    fn normalised(self) -> Self {
        let in_order = (1..self.len()).all(|i| self.name(i - 1) < self.name(i));
        if in_order {
            return self;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        // Stable, so equal names keep their given order and the last of each run is kept.
        order.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
        let mut kept: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            match kept.last_mut() {
                Some(last) if self.name(*last) == self.name(i) => *last = i,
                _ => kept.push(i),
            }
        }
        Self::packed(kept.into_iter().map(|i| (self.name(i), self.value(i))))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut labels = Self::new();
        for (name, value) in pairs {
            labels.push(&name, &value);
        }
        labels.normalised()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::packed(
            map.iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
    }
}

impl From<&Labels> for BTreeMap<String, String> {
    fn from(labels: &Labels) -> Self {
        labels
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;

        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = Labels;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Labels, A::Error> {
                // Names and values go straight from the parser into the text, as they come.
                let mut labels = Labels::new();
                while access.next_key_seed(Append(&mut labels.text))?.is_some() {
                    if labels.ends.is_empty() {
                        // Room for a few labels spares most of the doublings from empty.
                        labels.text.reserve(256);
                        labels.ends.reserve(8);
                    }
                    let name_end = labels.text.len();
                    access.next_value_seed(Append(&mut labels.text))?;
                    labels.ends.push((name_end, labels.text.len()));
                }
                Ok(labels.normalised())
            }
        }

        deserializer.deserialize_map(LabelsVisitor)
    }
}

/// Deserialises a string by appending it to a buffer.
struct Append<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.push_str(text);
        Ok(())
    }
}

/// The OpenAPI side is the map's own: same schema, same name, same validators.
#[cfg(feature = "openapi")]
mod openapi {
    use std::borrow::Cow;

    use poem_openapi::registry::{MetaSchemaRef, Registry};
    use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
    use poem_openapi::validation::{MaxLength, MaxProperties, Validator};
    use serde_json::Value;

    use super::{BTreeMap, Labels};

    type Map = BTreeMap<String, String>;

    impl Type for Labels {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        /// Element validators (`max_length` on the values) see the whole set at once: its
        /// values are not `String`s of their own.
        type RawElementValueType = Self;

        fn name() -> Cow<'static, str> {
            Map::name()
        }

        fn schema_ref() -> MetaSchemaRef {
            Map::schema_ref()
        }

        fn register(registry: &mut Registry) {
            Map::register(registry);
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(std::iter::once(self))
        }

        fn is_empty(&self) -> bool {
            Labels::is_empty(self)
        }
    }

    impl ParseFromJSON for Labels {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            Map::parse_from_json(value)
                .map(Labels::from)
                .map_err(|error| error.propagate())
        }
    }

    impl ToJSON for Labels {
        fn to_json(&self) -> Option<Value> {
            Map::from(self).to_json()
        }
    }

    /// `MaxProperties` keeps its bound private; the map's own check is asked (a copy, on
    /// poem's `ParseFromJSON` path only, which request bodies do not take).
    impl Validator<Labels> for MaxProperties {
        fn check(&self, value: &Labels) -> bool {
            Validator::<Map>::check(self, &Map::from(value))
        }
    }

    /// Every value within the bound (see `RawElementValueType`).
    impl Validator<Labels> for MaxLength {
        fn check(&self, labels: &Labels) -> bool {
            labels
                .iter()
                .all(|(_, value)| Validator::<&str>::check(self, &value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_kept_sorted_by_name_whatever_order_they_came_in() {
        let labels: Labels = serde_json::from_str(r#"{"b": "2", "a": "1", "c": "3"}"#).unwrap();
        let names: Vec<&str> = labels.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let other: Labels = serde_json::from_str(r#"{"c": "3", "a": "1", "b": "2"}"#).unwrap();
        assert_eq!(labels, other);
    }

    #[test]
    fn of_a_repeated_name_the_last_value_wins_as_in_a_map() {
        let json = r#"{"k": "1", "a": "x", "k": "2", "k": "3"}"#;
        let labels: Labels = serde_json::from_str(json).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        assert_eq!(BTreeMap::from(&labels), map);
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn labels_from_pairs_equal_the_same_object_parsed() {
        let pairs = [("k", "1"), ("a", "x"), ("k", "2"), ("", "empty name")];
        let parsed: Labels =
            serde_json::from_str(r#"{"k": "1", "a": "x", "k": "2", "": "empty name"}"#).unwrap();
        assert_eq!(Labels::from_pairs(&pairs), parsed);
        assert_eq!(Labels::from_pairs::<&str, &str>(&[]), Labels::new());
    }

    #[test]
    fn labels_serialise_as_the_map_did() {
        let map = BTreeMap::from([
            ("z".to_owned(), "last".to_owned()),
            ("a".to_owned(), "first".to_owned()),
        ]);
        assert_eq!(
            serde_json::to_string(&Labels::from(map.clone())).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }

    #[test]
    fn each_label_is_found_by_name_with_its_escapes_undone() {
        let json = r#"{"b": "two", "a\u0041": "x\ny", "c": ""}"#;
        let labels: Labels = serde_json::from_str(json).unwrap();
        assert_eq!(labels.get("aA"), Some("x\ny"));
        assert_eq!(labels.get("b"), Some("two"));
        assert_eq!(labels.get("c"), Some(""));
        assert_eq!(labels.get("a"), None);
        assert_eq!(labels.get("d"), None);
        assert_eq!(
            format!("{labels:?}"),
            r#"{"aA": "x\ny", "b": "two", "c": ""}"#
        );
    }

    #[test]
    fn truncating_keeps_the_first_names_and_cuts_values_by_characters() {
        let mut labels: Labels = [("c", "ééé"), ("a", "long value"), ("b", "ok")]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        labels.truncate_values(2);
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, [("a", "lo"), ("b", "ok"), ("c", "éé")]);
        labels.truncate(2);
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("a", "lo"), ("b", "ok")]
        );
        assert_eq!(
            labels,
            serde_json::from_str(r#"{"b": "ok", "a": "lo"}"#).unwrap()
        );
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn poems_own_parse_takes_labels_as_long_and_as_many_as_docker_reports_them() {
        use poem_openapi::types::ParseFromJSON;
        let labels: serde_json::Map<String, serde_json::Value> = (0..200)
            .map(|i| {
                (
                    format!("label-{i}"),
                    "x".repeat(if i == 0 { 5000 } else { 1 }).into(),
                )
            })
            .collect();
        let json = serde_json::json!({
            "container_id": "c1", "name": "web", "image": "nginx", "labels": labels
        });
        let parsed = crate::ContainerPayload::parse_from_json(Some(json)).unwrap();
        assert_eq!(parsed.labels.map(|labels| labels.len()), Some(200));
    }

    #[test]
    fn a_non_string_value_is_refused() {
        assert!(serde_json::from_str::<Labels>(r#"{"k": 1}"#).is_err());
        assert!(serde_json::from_str::<Labels>(r#"["k"]"#).is_err());
    }
}

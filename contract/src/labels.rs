//! `Labels`: a container's labels, a JSON object of strings.
//!
//! Kept as a vector of pairs sorted by name rather than a `BTreeMap`: a label set is small and is
//! built, hashed and dropped whole on every snapshot, and a tree's node allocations, key
//! comparisons and traversals were ~14% of the server's CPU at C=20 (perf, BENCHMARKS.md). It
//! behaves as the map did: one value per name (the last one given wins), iterated in name order,
//! and equal whatever order the names came in.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let at = self
            .0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()?;
        Some(&self.0[at].1)
    }

    /// Name and value of each label, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.0.iter_mut().map(|(_, value)| value)
    }

    /// Keeps the first `len` labels in name order.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// Sorts by name; of several labels with one name, the last one given stays.
    fn normalised(mut pairs: Vec<(String, String)>) -> Self {
        // Stable, so equal names keep their given order and the last of each run is kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut labels: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match labels.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => labels.push(pair),
            }
        }
        Self(labels)
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self::normalised(pairs.into_iter().collect())
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl From<&Labels> for BTreeMap<String, String> {
    fn from(labels: &Labels) -> Self {
        labels.0.iter().cloned().collect()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
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
                let mut pairs = Vec::with_capacity(access.size_hint().unwrap_or(0).min(128));
                while let Some(pair) = access.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Labels::normalised(pairs))
            }
        }

        deserializer.deserialize_map(LabelsVisitor)
    }
}

/// The OpenAPI side is the map's own: same schema, same name, same validators.
#[cfg(feature = "openapi")]
mod openapi {
    use std::borrow::Cow;

    use poem_openapi::registry::{MetaSchemaRef, Registry};
    use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
    use poem_openapi::validation::{MaxProperties, Validator};
    use serde_json::Value;

    use super::{BTreeMap, Labels};

    type Map = BTreeMap<String, String>;

    impl Type for Labels {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = String;

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
            Box::new(self.0.iter().map(|(_, value)| value))
        }

        fn is_empty(&self) -> bool {
            self.0.is_empty()
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
    fn a_non_string_value_is_refused() {
        assert!(serde_json::from_str::<Labels>(r#"{"k": 1}"#).is_err());
        assert!(serde_json::from_str::<Labels>(r#"["k"]"#).is_err());
    }
}

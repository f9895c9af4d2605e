//! A hand-written reader for the telemetry payload: the one body the server parses thousands of
//! times a second, and the largest part of its CPU per snapshot (perf, BENCHMARKS.md).
//!
//! It stands in front of [`schema`](super::schema)'s typed parse with the same
//! promise: `Some` only for a document that conforms, checked against the same compiled nodes by
//! the same leaf rules (`Compiled::accepts_text` and its siblings), and then exactly the
//! `TelemetryPayload` the typed parse would build; `None` whenever it cannot tell, and the caller
//! takes the serde paths, which word any error. What it saves is serde's visitor calls per value
//! and a second copy of each string.
//!
//! It says no (where the typed parse might say yes) to: an escape (`\`) in any string, skipped
//! ones included; a known property twice; a timestamp not written
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with at most 9 fraction digits and no leap
//! second; where an integer is due, one with a sign, a fraction, an exponent or more than 18
//! digits; skipped values nested deeper than [`MAX_DEPTH`]. Agents write none of these in
//! practice.

use std::any::Any;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use nexus_contract::{
    ContainerMetrics, ContainerPayload, HostFacts, HostMetrics, HostPayload, Labels,
    TelemetryPayload,
};

use super::check::Schema;
use super::schema::{Compiled, NodeId};

/// Nesting allowed in values the payload does not name (serde_json refuses beyond 128).
const MAX_DEPTH: usize = 64;

const ROOT: [&str; 3] = ["recorded_at", "host", "containers"];
const HOST: [&str; 2] = ["metrics", "facts"];
const HOST_METRICS: [&str; 8] = [
    "cpu_percent",
    "memory_used_mb",
    "memory_total_mb",
    "disk_used_gb",
    "disk_total_gb",
    "network_rx_bytes",
    "network_tx_bytes",
    "load_average",
];
const FACTS: [&str; 5] = [
    "cpu_count",
    "memory_total_mb",
    "disk_total_gb",
    "os",
    "docker_version",
];
const CONTAINER: [&str; 12] = [
    "container_id",
    "name",
    "image",
    "image_tag",
    "status",
    "state",
    "health_status",
    "ports",
    "labels",
    "metrics",
    "started_at",
    "finished_at",
];
const CONTAINER_METRICS: [&str; 7] = [
    "cpu_percent",
    "memory_usage_mb",
    "memory_limit_mb",
    "network_rx_bytes",
    "network_tx_bytes",
    "block_read_bytes",
    "block_write_bytes",
];

/// `text` as a payload, when this reader can vouch for it (see the module's documentation).
pub fn read(text: &str) -> Option<TelemetryPayload> {
    static READER: LazyLock<Option<Reader>> = LazyLock::new(Reader::new);
    let reader = READER.as_ref()?;
    let mut cursor = Cursor {
        text,
        at: 0,
        pairs: Vec::new(),
    };
    let payload = reader.payload(&mut cursor)?;
    cursor.skip_space();
    (cursor.at == text.len()).then_some(payload)
}

/// [`read`] when `T` is the payload; `None` for any other type.
pub fn read_as<T: Any>(text: &str) -> Option<T> {
    let mut slot: Option<T> = None;
    if let Some(payload) = (&mut slot as &mut dyn Any).downcast_mut::<Option<TelemetryPayload>>() {
        *payload = read(text);
    }
    slot
}

/// An object of the contract: its node, and its properties' nodes in the reader's order.
struct Object<const N: usize> {
    node: NodeId,
    fields: [NodeId; N],
}

impl<const N: usize> Object<N> {
    /// `None` unless `names` are exactly the node's properties and `required` exactly its
    /// required ones: a field added to the contract disables the reader until it reads it too.
    fn new(
        compiled: &Compiled,
        node: NodeId,
        names: &[&str; N],
        required: &[&str],
    ) -> Option<Self> {
        let (properties, required_bits) = compiled.properties(node)?;
        if properties.len() != N {
            return None;
        }
        let index = |name: &str| properties.iter().position(|(known, _)| *known == name);
        let mut fields = [0; N];
        for (field, name) in fields.iter_mut().zip(names) {
            *field = properties[index(name)?].1;
        }
        let expected = required
            .iter()
            .map(|name| index(name).map(|i| 1u64 << i))
            .sum::<Option<u64>>()?;
        (expected == required_bits).then_some(Self { node, fields })
    }
}

struct Reader {
    schema: Arc<Schema>,
    root: Object<3>,
    host: Object<2>,
    host_metrics: Object<8>,
    facts: Object<5>,
    container: Object<12>,
    container_metrics: Object<7>,
    port: NodeId,
    label_value: NodeId,
    label_key_max_length: Option<usize>,
}

impl Reader {
    fn new() -> Option<Self> {
        let schema = Schema::of::<TelemetryPayload>();
        let compiled = schema.compiled()?;
        let root = Object::new(compiled, compiled.root(), &ROOT, &["recorded_at", "host"])?;
        let host = Object::new(compiled, root.fields[1], &HOST, &["metrics"])?;
        let host_metrics = Object::new(compiled, host.fields[0], &HOST_METRICS, &[])?;
        let facts = Object::new(compiled, host.fields[1], &FACTS, &[])?;
        let container = Object::new(
            compiled,
            compiled.items(root.fields[2])?,
            &CONTAINER,
            &["container_id", "name", "image"],
        )?;
        let container_metrics =
            Object::new(compiled, container.fields[9], &CONTAINER_METRICS, &[])?;
        let port = compiled.items(container.fields[7])?;
        let (label_value, label_key_max_length) = compiled.entries(container.fields[8])?;
        Some(Self {
            root,
            host,
            host_metrics,
            facts,
            container,
            container_metrics,
            port,
            label_value,
            label_key_max_length,
            schema,
        })
    }

    fn compiled(&self) -> &Compiled {
        self.schema
            .compiled()
            .expect("compiled when the reader was built")
    }

    fn payload(&self, c: &mut Cursor) -> Option<TelemetryPayload> {
        let (mut recorded_at, mut host, mut containers) = (None, None, None);
        self.object(c, &self.root, &ROOT, |c, field, node| {
            match field {
                0 => recorded_at = self.timestamp(c, node)?,
                1 => host = nullable(c, |c| self.host(c))?,
                _ => containers = nullable(c, |c| self.containers(c, node))?,
            }
            Some(())
        })?;
        Some(TelemetryPayload {
            recorded_at: recorded_at?,
            host: host?,
            containers,
        })
    }

    fn host(&self, c: &mut Cursor) -> Option<HostPayload> {
        let (mut metrics, mut facts) = (None, None);
        self.object(c, &self.host, &HOST, |c, field, _| {
            match field {
                0 => metrics = nullable(c, |c| self.host_metrics(c))?,
                _ => facts = nullable(c, |c| self.facts(c))?,
            }
            Some(())
        })?;
        Some(HostPayload {
            metrics: metrics?,
            facts,
        })
    }

    fn host_metrics(&self, c: &mut Cursor) -> Option<HostMetrics> {
        let mut m = HostMetrics::default();
        self.object(c, &self.host_metrics, &HOST_METRICS, |c, field, node| {
            match field {
                0 => m.cpu_percent = self.float(c, node)?,
                1 => m.memory_used_mb = self.integer(c, node)?,
                2 => m.memory_total_mb = self.integer(c, node)?,
                3 => m.disk_used_gb = self.integer(c, node)?,
                4 => m.disk_total_gb = self.integer(c, node)?,
                5 => m.network_rx_bytes = self.integer(c, node)?,
                6 => m.network_tx_bytes = self.integer(c, node)?,
                _ => m.load_average = self.float(c, node)?,
            }
            Some(())
        })?;
        Some(m)
    }

    fn facts(&self, c: &mut Cursor) -> Option<HostFacts> {
        let mut f = HostFacts::default();
        self.object(c, &self.facts, &FACTS, |c, field, node| {
            match field {
                0 => {
                    f.cpu_count = match self.integer(c, node)? {
                        Some(n) => Some(i32::try_from(n).ok()?),
                        None => None,
                    }
                }
                1 => f.memory_total_mb = self.integer(c, node)?,
                2 => f.disk_total_gb = self.integer(c, node)?,
                3 => f.os = self.string(c, node)?,
                _ => f.docker_version = self.string(c, node)?,
            }
            Some(())
        })?;
        Some(f)
    }

    fn containers(&self, c: &mut Cursor, node: NodeId) -> Option<Vec<ContainerPayload>> {
        let mut containers = Vec::new();
        let count = c.items(|c| {
            containers.push(self.container(c)?);
            Some(())
        })?;
        self.compiled()
            .accepts_count(node, count)
            .then_some(containers)
    }

    fn container(&self, c: &mut Cursor) -> Option<ContainerPayload> {
        let (mut id, mut name, mut image, mut image_tag) = (None, None, None, None);
        let (mut status, mut state, mut health_status) = (None, None, None);
        let (mut ports, mut labels, mut metrics) = (None, None, None);
        let (mut started_at, mut finished_at) = (None, None);
        self.object(c, &self.container, &CONTAINER, |c, field, node| {
            match field {
                0 => id = self.string(c, node)?,
                1 => name = self.string(c, node)?,
                2 => image = self.string(c, node)?,
                3 => image_tag = self.string(c, node)?,
                4 => status = self.string(c, node)?,
                5 => state = self.string(c, node)?,
                6 => health_status = self.string(c, node)?,
                7 => ports = nullable(c, |c| self.ports(c, node))?,
                8 => labels = nullable(c, |c| self.labels(c, node))?,
                9 => metrics = nullable(c, |c| self.container_metrics(c))?,
                10 => started_at = self.timestamp(c, node)?,
                _ => finished_at = self.timestamp(c, node)?,
            }
            Some(())
        })?;
        Some(ContainerPayload {
            container_id: id?,
            name: name?,
            image: image?,
            image_tag,
            status,
            state,
            health_status,
            ports,
            labels,
            metrics,
            started_at,
            finished_at,
        })
    }

    fn ports(&self, c: &mut Cursor, node: NodeId) -> Option<Vec<String>> {
        let mut ports = Vec::new();
        let count = c.items(|c| {
            ports.push(self.text(c, self.port)?.to_owned());
            Some(())
        })?;
        self.compiled().accepts_count(node, count).then_some(ports)
    }

    fn labels(&self, c: &mut Cursor, node: NodeId) -> Option<Labels> {
        let mut pairs = std::mem::take(&mut c.pairs);
        pairs.clear();
        let count = c.entries(|c, name| {
            if !Compiled::accepts_key(name, self.label_key_max_length) {
                return None;
            }
            pairs.push((name, self.text(c, self.label_value)?));
            Some(())
        })?;
        let labels = Labels::from_pairs(&pairs);
        c.pairs = pairs;
        self.compiled().accepts_count(node, count).then_some(labels)
    }

    fn container_metrics(&self, c: &mut Cursor) -> Option<ContainerMetrics> {
        let mut m = ContainerMetrics::default();
        self.object(
            c,
            &self.container_metrics,
            &CONTAINER_METRICS,
            |c, field, node| {
                match field {
                    0 => m.cpu_percent = self.float(c, node)?,
                    1 => m.memory_usage_mb = self.integer(c, node)?,
                    2 => m.memory_limit_mb = self.integer(c, node)?,
                    3 => m.network_rx_bytes = self.integer(c, node)?,
                    4 => m.network_tx_bytes = self.integer(c, node)?,
                    5 => m.block_read_bytes = self.integer(c, node)?,
                    _ => m.block_write_bytes = self.integer(c, node)?,
                }
                Some(())
            },
        )?;
        Some(m)
    }

    /// Reads an object of the contract: each known property's value goes to `value` with its
    /// index in `names` and its node; unknown properties are skipped, as serde skips them.
    fn object<const N: usize>(
        &self,
        c: &mut Cursor,
        object: &Object<N>,
        names: &[&str; N],
        mut value: impl FnMut(&mut Cursor, usize, NodeId) -> Option<()>,
    ) -> Option<()> {
        let mut seen = 0u64;
        let count = c.entries(|c, key| match names.iter().position(|name| *name == key) {
            Some(field) if seen & 1 << field == 0 => {
                seen |= 1 << field;
                value(c, field, object.fields[field])
            }
            Some(_) => None, // a known property twice
            None => c.skip_value(0),
        })?;
        self.compiled()
            .accepts_count(object.node, count)
            .then_some(())
    }

    fn text<'t>(&self, c: &mut Cursor<'t>, node: NodeId) -> Option<&'t str> {
        let text = c.string()?;
        self.compiled()
            .accepts_text(node, text, false)
            .then_some(text)
    }

    fn string(&self, c: &mut Cursor, node: NodeId) -> Option<Option<String>> {
        nullable(c, |c| self.text(c, node).map(str::to_owned))
    }

    fn integer(&self, c: &mut Cursor, node: NodeId) -> Option<Option<i64>> {
        nullable(c, |c| {
            let n = plain_integer(c.number()?)?;
            self.compiled().accepts_integer(node, n).then_some(n)
        })
    }

    /// A number where a float is due: an integer as serde hands it over (`as f64`), anything
    /// else as serde_json reads it, so the two cannot differ in the last bit.
    fn float(&self, c: &mut Cursor, node: NodeId) -> Option<Option<f64>> {
        nullable(c, |c| {
            let literal = c.number()?;
            match plain_integer(literal) {
                Some(n) => self.compiled().accepts_integer(node, n).then_some(n as f64),
                None => {
                    let n = serde_json::from_str::<f64>(literal).ok()?;
                    self.compiled().accepts_float(node, n).then_some(n)
                }
            }
        })
    }

    fn timestamp(&self, c: &mut Cursor, node: NodeId) -> Option<Option<DateTime<FixedOffset>>> {
        nullable(c, |c| {
            let text = c.string()?;
            let at = rfc3339(text)?;
            self.compiled().accepts_text(node, text, true).then_some(at)
        })
    }
}

/// `null` as `None`; anything else as `read` reads it.
fn nullable<'t, T>(
    c: &mut Cursor<'t>,
    read: impl FnOnce(&mut Cursor<'t>) -> Option<T>,
) -> Option<Option<T>> {
    if c.literal("null").is_some() {
        Some(None)
    } else {
        read(c).map(Some)
    }
}

/// A number literal of digits only, at most 18 (so it fits an `i64`).
fn plain_integer(literal: &str) -> Option<i64> {
    if literal.len() > 18 {
        return None;
    }
    literal.bytes().try_fold(0i64, |n, digit| {
        digit
            .is_ascii_digit()
            .then(|| n * 10 + i64::from(digit - b'0'))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, the form agents write, as chrono reads it.
fn rfc3339(text: &str) -> Option<DateTime<FixedOffset>> {
    let b = text.as_bytes();
    let digits = |range: Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 20 || [b[4], b[7], b[10], b[13], b[16]] != *b"--T::" {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let second = digits(17..19)?;
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let end = at
            + 1
            + b[at + 1..]
                .iter()
                .take_while(|d| d.is_ascii_digit())
                .count();
        let count = end - at - 1;
        if !(1..=9).contains(&count) {
            return None;
        }
        nanos = digits(at + 1..end)? * 10u32.pow(9 - count as u32);
        at = end;
    }
    let offset = match &b[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // A leap second (60) is chrono's business: from_hms_nano_opt refuses it.
    let time = NaiveTime::from_hms_nano_opt(digits(11..13)?, digits(14..16)?, second, nanos)?;
    FixedOffset::east_opt(offset)?
        .from_local_datetime(&date.and_time(time))
        .single()
}

/// Where the first `"`, `\\` or control character of `bytes` is, eight bytes at a time (most
/// strings here are short, too short for a SIMD search's set-up to pay).
fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// The high bit of each byte that is zero; exact up to the first one, which is all we read.
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGH
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH); // a byte below 0x20
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| offset + i)
}

/// A position in the text, and a scratch list of label pairs reused across containers.
struct Cursor<'t> {
    text: &'t str,
    at: usize,
    pairs: Vec<(&'t str, &'t str)>,
}

impl<'t> Cursor<'t> {
    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_space();
        self.text[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A string without escapes or control characters, as a slice of the text.
    fn string(&mut self) -> Option<&'t str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        let len = special_byte(rest)?;
        if rest[len] != b'"' {
            return None; // an escape, a control character
        }
        self.at = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A number's literal, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'t str> {
        self.skip_space();
        let bytes = self.text.as_bytes();
        let start = self.at;
        let digits_from = |at: usize| {
            at + bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
        at = match bytes.get(at)? {
            b'0' => at + 1,
            b'1'..=b'9' => digits_from(at),
            _ => return None,
        };
        if bytes.get(at) == Some(&b'.') {
            let end = digits_from(at + 1);
            (end > at + 1).then_some(())?;
            at = end;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            at += usize::from(matches!(bytes.get(at), Some(b'+' | b'-')));
            let end = digits_from(at);
            (end > at).then_some(())?;
            at = end;
        }
        self.at = at;
        Some(&self.text[start..at])
    }

    /// Reads `{ "key": value, … }`, handing each key to `entry`, which reads its value; the
    /// number of entries, a repeated key counted each time.
    fn entries(
        &mut self,
        mut entry: impl FnMut(&mut Self, &'t str) -> Option<()>,
    ) -> Option<usize> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(0);
        }
        let mut count = 0;
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            entry(self, key)?;
            count += 1;
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(count);
            }
        }
    }

    /// Reads `[ value, … ]`, each value by `item`; the number of items.
    fn items(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<usize> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(0);
        }
        let mut count = 0;
        loop {
            item(self)?;
            count += 1;
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                return Some(count);
            }
        }
    }

    /// Any JSON value, read and dropped.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.entries(|c, _| c.skip_value(depth + 1)).map(drop),
            b'[' => self.items(|c| c.skip_value(depth + 1)).map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reader must never accept what the serde paths refuse, nor read a value differently;
    //! `api::json_body`'s tests hold `parse` (reader first) to the `Value` path field by field.
    //! These add the reader's own forms (timestamps, numbers, strings) and check that it
    //! vouches for the documents agents send, so it is not silently always `None`.

    use serde_json::json;

    use super::*;

    const FIXTURE: &str = include_str!("../../../benches/fixtures/telemetry-20.json");

    /// The typed parse the reader stands in front of, with the schema's check.
    fn through_serde(text: &str) -> Option<TelemetryPayload> {
        Schema::of::<TelemetryPayload>().parse_conforming(text)
    }

    /// Same payload, offsets of timestamps included (`DateTime`'s `==` compares instants only).
    fn same(a: &TelemetryPayload, b: &TelemetryPayload) -> bool {
        a == b && serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
    }

    /// The reader reads `text` as serde does, or leaves it to serde.
    fn assert_agrees(text: &str) {
        if let Some(read) = read(text) {
            let parsed = through_serde(text);
            assert!(
                parsed.as_ref().is_some_and(|parsed| same(&read, parsed)),
                "the reader read {read:?}, serde {parsed:?}: {text}"
            );
        }
    }

    fn with_recorded_at(at: &str) -> String {
        json!({"recorded_at": at, "host": {"metrics": {}}}).to_string()
    }

    #[test]
    fn agents_documents_are_read_as_serde_reads_them() {
        let minimal = r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}}}"#;
        let nulls = r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{"cpu_percent":null},"facts":null},"containers":[{"container_id":"a","name":"","image":"i","image_tag":null,"ports":null,"labels":null,"metrics":null,"started_at":null}]}"#;
        let unknown = r#" {"v":2,"recorded_at":"2024-05-01T12:00:00+02:00","host":{"metrics":{"gpu":[1.5e3,{"a":[true,false,null]}]}},"containers":[]} "#;
        let at_bounds = json!({
            "recorded_at": "2024-05-01T12:00:00Z",
            "host": {"metrics": {"cpu_percent": 100, "load_average": 0.0}, "facts": {"cpu_count": 1024}},
            "containers": [{"container_id": "é".repeat(80), "name": "n", "image": "i",
                            "health_status": "a".repeat(16), "ports": vec!["p"; 128],
                            "labels": (0..128).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}],
        })
        .to_string();
        for text in [FIXTURE, minimal, nulls, unknown, &at_bounds] {
            let read = read(text).unwrap_or_else(|| panic!("not read: {text}"));
            assert!(same(&read, &through_serde(text).unwrap()), "{text}");
        }
    }

    #[test]
    fn timestamps_are_read_as_chrono_reads_them_or_left_to_it() {
        let read_here = [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.5Z",
            "2024-05-01T12:00:00.123456789+05:30",
            "2024-05-01T00:00:00-00:00",
            "2024-02-29T23:59:59.000001-23:59",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999+23:59",
        ];
        for at in read_here {
            let text = with_recorded_at(at);
            assert!(read(&text).is_some(), "{at}");
            assert_agrees(&text);
        }
        let refused_or_left = [
            "2024-05-01T12:00:00.1234567891Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T23:59:60Z",
            "2024-02-30T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01t12:00:00z",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00+05:60",
            "2024-05-01T12:00:00+0530",
            "2024-05-01T24:00:00Z",
            "2024-5-01T12:00:00Z",
            "+2024-05-01T12:00:00Z",
            "2024-05-01T12:00Z",
            "",
        ];
        for at in refused_or_left {
            let text = with_recorded_at(at);
            assert!(read(&text).is_none(), "{at}");
        }
    }

    #[test]
    fn numbers_are_read_as_serde_json_reads_them_or_left_to_it() {
        let literals = [
            "0",
            "-0",
            "7",
            "-7",
            "0.0",
            "-0.0",
            "1.5",
            "1e2",
            "1E+2",
            "2.5e-3",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e400",
            "-1e400",
            "100",
            "100.0",
            "100.000000000000001",
            "123456789012345678",
            "1234567890123456789",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "2147483647",
            "2147483648",
            "0.1e1",
            "5e-324",
            "1.7976931348623157e308",
            "4.9406564584124654e-324",
        ];
        for literal in literals {
            for (object, field) in [
                ("metrics", "cpu_percent"),
                ("metrics", "memory_used_mb"),
                ("facts", "cpu_count"),
            ] {
                let text = format!(
                    r#"{{"recorded_at":"2024-05-01T12:00:00Z","host":{{"metrics":{{}},"{object}":{{"{field}":{literal}}}}}}}"#
                );
                assert_agrees(&text);
            }
        }
        // Floats serde_json rounds its own way still come out bit for bit the same.
        let text = r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{"cpu_percent":2.2250738585072011e-308,"load_average":0.30000000000000004441}}}"#;
        assert!(same(&read(text).unwrap(), &through_serde(text).unwrap()));
    }

    #[test]
    fn strings_with_escapes_or_raw_control_characters_are_left_to_serde() {
        for text in [
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{},"facts":{"os":"a\"b"}}}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"x":"\u0041"}"#,
            "{\"recorded_at\":\"2024-05-01T12:00:00Z\",\"host\":{\"metrics\":{},\"facts\":{\"os\":\"a\tb\"}}}",
        ] {
            assert!(read(text).is_none(), "{text}");
        }
        for (at, byte) in [(7usize, b'"'), (8, b'\\'), (9, 0x1f), (15, b'"'), (3, 0x7f)] {
            let mut bytes = vec![b'a'; 20];
            bytes[at] = byte;
            let expected = (byte != 0x7f).then_some(at);
            assert_eq!(special_byte(&bytes), expected, "{byte:#x} at {at}");
            assert_eq!(special_byte(&bytes[..at]), None);
        }
        // High bytes of UTF-8 text are not control characters.
        assert_eq!(special_byte("éééééééé\"".as_bytes()), Some(16));
    }

    #[test]
    fn random_damage_to_a_payload_is_never_read_otherwise_than_by_serde() {
        let base = FIXTURE.replace("\n", "");
        let bytes = base.as_bytes();
        let pieces: [&[u8]; 14] = [
            b"\"", b"\\", b",", b":", b"{", b"}", b"[", b"]", b"null", b"-", b"0", b"e", b" ",
            b"\x01",
        ];
        // xorshift64: reproducible damage without a dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut below = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..1500 {
            let at = below(bytes.len());
            let piece = pieces[below(pieces.len())];
            let mut damaged = bytes[..at].to_vec();
            match below(3) {
                0 => damaged.extend_from_slice(&bytes[at + 1..]),
                1 => {
                    damaged.extend_from_slice(piece);
                    damaged.extend_from_slice(&bytes[at..]);
                }
                _ => {
                    damaged.extend_from_slice(piece);
                    damaged.extend_from_slice(&bytes[at + 1..]);
                }
            }
            if let Ok(text) = std::str::from_utf8(&damaged) {
                assert_agrees(text);
            }
        }
    }

    #[test]
    fn a_field_the_reader_does_not_know_disables_it() {
        let schema = Schema::of::<TelemetryPayload>();
        let compiled = schema.compiled().unwrap();
        let root = compiled.root();
        assert!(Object::new(compiled, root, &ROOT, &["recorded_at", "host"]).is_some());
        assert!(Object::new(compiled, root, &["recorded_at", "host"], &["recorded_at"]).is_none());
        assert!(Object::new(compiled, root, &ROOT, &["recorded_at"]).is_none());
    }
}

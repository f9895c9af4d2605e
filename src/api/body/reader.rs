//! A hand-written reader for the telemetry payload: the one body the server parses thousands of
//! times a second, and the largest part of its CPU per snapshot (numbers: BENCHMARKS.md, "Body
//! parse paths").
//!
//! It reads the text once, checking each value against the schema's compiled nodes
//! ([`schema`](super::schema)) by the same leaf rules the `Value` path's check applies, so the
//! bounds written in `oai(validator(...))` are the only ones. It answers `Ok` only for a
//! document that conforms, and then with exactly the `TelemetryPayload` the `Value` path would
//! build; otherwise it declines ([`Declined`]) and the caller takes the `Value` path, which
//! words every error. What it saves is the `Value` tree, serde's visitor calls per value and a
//! second copy of each string.
//!
//! Strings with escapes are decoded here (all of JSON's, surrogate pairs included; a lone
//! surrogate is not JSON, as serde_json says). It declines, though the document may conform
//! ([`Declined::Form`]): a known property given twice; a timestamp not written
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with at most 9 fraction digits and no leap second;
//! skipped values nested deeper than [`MAX_DEPTH`]. Agents write none of these in practice.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use nexus_contract::{
    ContainerMetrics, ContainerPayload, HostFacts, HostMetrics, HostPayload, Labels,
    TelemetryPayload,
};

use super::schema::{CompiledSchema, NodeId};

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
const CONTAINER: [&str; 15] = [
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
    "restart_count",
    "exit_code",
    "oom_killed",
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

/// `text` as a payload when it conforms, or why this reader leaves it to the `Value` path.
pub fn read(text: &str) -> Result<TelemetryPayload, Declined> {
    static READER: LazyLock<Option<Reader>> = LazyLock::new(Reader::new);
    let reader = READER.as_ref().ok_or(Declined::Schema)?;
    let mut scanner = Scanner {
        text,
        at: 0,
        pairs: Vec::new(),
        declined: Declined::Invalid,
    };
    let Some(payload) = reader.payload(&mut scanner) else {
        return Err(scanner.declined);
    };
    scanner.skip_space();
    if scanner.at == text.len() {
        Ok(payload)
    } else {
        Err(Declined::Invalid)
    }
}

/// Why the reader left a document to the `Value` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// Not JSON, or it breaks the contract: the `Value` path says how.
    Invalid,
    /// Perhaps conforming, but written in a form the reader leaves to the `Value` path (see the
    /// module's documentation).
    Form,
    /// The contract has a shape the reader does not know (a field added to it), so it reads
    /// nothing until it learns it.
    Schema,
}

impl Declined {
    /// The reason as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Declined::Invalid => "invalid",
            Declined::Form => "form",
            Declined::Schema => "schema",
        }
    }
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
        compiled: &CompiledSchema,
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
    compiled: CompiledSchema,
    root: Object<3>,
    host: Object<2>,
    host_metrics: Object<8>,
    facts: Object<5>,
    container: Object<15>,
    container_metrics: Object<7>,
    port: NodeId,
    label_value: NodeId,
    label_key_max_length: Option<usize>,
}

impl Reader {
    fn new() -> Option<Self> {
        let compiled = CompiledSchema::of::<TelemetryPayload>()?;
        let root = Object::new(&compiled, compiled.root(), &ROOT, &["recorded_at", "host"])?;
        let host = Object::new(&compiled, root.fields[1], &HOST, &["metrics"])?;
        let host_metrics = Object::new(&compiled, host.fields[0], &HOST_METRICS, &[])?;
        let facts = Object::new(&compiled, host.fields[1], &FACTS, &[])?;
        let container = Object::new(
            &compiled,
            compiled.items(root.fields[2])?,
            &CONTAINER,
            &["container_id", "name", "image"],
        )?;
        let container_metrics =
            Object::new(&compiled, container.fields[9], &CONTAINER_METRICS, &[])?;
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
            compiled,
        })
    }

    fn compiled(&self) -> &CompiledSchema {
        &self.compiled
    }

    fn payload(&self, s: &mut Scanner) -> Option<TelemetryPayload> {
        let (mut recorded_at, mut host, mut containers) = (None, None, None);
        self.object(s, &self.root, &ROOT, |s, field, node| {
            match field {
                0 => recorded_at = self.timestamp(s, node)?,
                1 => host = nullable(s, |s| self.host(s))?,
                _ => containers = nullable(s, |s| self.containers(s, node))?,
            }
            Some(())
        })?;
        Some(TelemetryPayload {
            recorded_at: recorded_at?,
            host: host?,
            containers,
        })
    }

    fn host(&self, s: &mut Scanner) -> Option<HostPayload> {
        let (mut metrics, mut facts) = (None, None);
        self.object(s, &self.host, &HOST, |s, field, _| {
            match field {
                0 => metrics = nullable(s, |s| self.host_metrics(s))?,
                _ => facts = nullable(s, |s| self.facts(s))?,
            }
            Some(())
        })?;
        Some(HostPayload {
            metrics: metrics?,
            facts,
        })
    }

    fn host_metrics(&self, s: &mut Scanner) -> Option<HostMetrics> {
        let mut m = HostMetrics::default();
        self.object(s, &self.host_metrics, &HOST_METRICS, |s, field, node| {
            match field {
                0 => m.cpu_percent = self.float(s, node)?,
                1 => m.memory_used_mb = self.integer(s, node)?,
                2 => m.memory_total_mb = self.integer(s, node)?,
                3 => m.disk_used_gb = self.integer(s, node)?,
                4 => m.disk_total_gb = self.integer(s, node)?,
                5 => m.network_rx_bytes = self.integer(s, node)?,
                6 => m.network_tx_bytes = self.integer(s, node)?,
                _ => m.load_average = self.float(s, node)?,
            }
            Some(())
        })?;
        Some(m)
    }

    fn facts(&self, s: &mut Scanner) -> Option<HostFacts> {
        let mut f = HostFacts::default();
        self.object(s, &self.facts, &FACTS, |s, field, node| {
            match field {
                0 => {
                    f.cpu_count = match self.integer(s, node)? {
                        Some(n) => Some(i32::try_from(n).ok()?),
                        None => None,
                    }
                }
                1 => f.memory_total_mb = self.integer(s, node)?,
                2 => f.disk_total_gb = self.integer(s, node)?,
                3 => f.os = self.string(s, node)?,
                _ => f.docker_version = self.string(s, node)?,
            }
            Some(())
        })?;
        Some(f)
    }

    fn containers(&self, s: &mut Scanner, node: NodeId) -> Option<Vec<ContainerPayload>> {
        let mut containers = Vec::new();
        let count = s.items(|s| {
            containers.push(self.container(s)?);
            Some(())
        })?;
        self.compiled()
            .accepts_count(node, count)
            .then_some(containers)
    }

    fn container(&self, s: &mut Scanner) -> Option<ContainerPayload> {
        let (mut id, mut name, mut image, mut image_tag) = (None, None, None, None);
        let (mut status, mut state, mut health_status) = (None, None, None);
        let (mut ports, mut labels, mut metrics) = (None, None, None);
        let (mut started_at, mut finished_at) = (None, None);
        let (mut restart_count, mut exit_code, mut oom_killed) = (None, None, None);
        self.object(s, &self.container, &CONTAINER, |s, field, node| {
            match field {
                0 => id = self.string(s, node)?,
                1 => name = self.string(s, node)?,
                2 => image = self.string(s, node)?,
                3 => image_tag = self.string(s, node)?,
                4 => status = self.string(s, node)?,
                5 => state = self.string(s, node)?,
                6 => health_status = self.string(s, node)?,
                7 => ports = nullable(s, |s| self.ports(s, node))?,
                8 => labels = nullable(s, |s| self.labels(s, node))?,
                9 => metrics = nullable(s, |s| self.container_metrics(s))?,
                10 => started_at = self.timestamp(s, node)?,
                11 => finished_at = self.timestamp(s, node)?,
                12 => restart_count = self.integer(s, node)?,
                13 => exit_code = self.integer(s, node)?,
                _ => oom_killed = self.boolean(s, node)?,
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
            restart_count,
            exit_code,
            oom_killed,
        })
    }

    fn ports(&self, s: &mut Scanner, node: NodeId) -> Option<Vec<String>> {
        let mut ports = Vec::new();
        let count = s.items(|s| {
            ports.push(self.text(s, self.port)?.into_owned());
            Some(())
        })?;
        self.compiled().accepts_count(node, count).then_some(ports)
    }

    /// Labels as slices of the text, in the order given (of a name given twice the last stays);
    /// once one has an escape, the whole set as decoded strings. Labels are most of a
    /// payload's strings, and a list of plain slices is cheaper to fill and to empty.
    fn labels(&self, s: &mut Scanner, node: NodeId) -> Option<Labels> {
        let mut pairs = std::mem::take(&mut s.pairs);
        pairs.clear();
        let mut decoded: Option<Vec<(Cow<str>, Cow<str>)>> = None;
        let count = s.entries(|s, name| {
            if !CompiledSchema::accepts_key(&name, self.label_key_max_length) {
                return None;
            }
            let value = self.text(s, self.label_value)?;
            match (name, value, &mut decoded) {
                (Cow::Borrowed(name), Cow::Borrowed(value), None) => pairs.push((name, value)),
                (name, value, decoded) => {
                    let decoded = decoded.get_or_insert_with(|| {
                        pairs.drain(..).map(|(n, v)| (n.into(), v.into())).collect()
                    });
                    decoded.push((name, value));
                }
            }
            Some(())
        })?;
        let labels = match decoded {
            None => Labels::from_pairs(&pairs),
            Some(decoded) => Labels::from_pairs(&decoded),
        };
        s.pairs = pairs;
        self.compiled().accepts_count(node, count).then_some(labels)
    }

    fn container_metrics(&self, s: &mut Scanner) -> Option<ContainerMetrics> {
        let mut m = ContainerMetrics::default();
        self.object(
            s,
            &self.container_metrics,
            &CONTAINER_METRICS,
            |s, field, node| {
                match field {
                    0 => m.cpu_percent = self.float(s, node)?,
                    1 => m.memory_usage_mb = self.integer(s, node)?,
                    2 => m.memory_limit_mb = self.integer(s, node)?,
                    3 => m.network_rx_bytes = self.integer(s, node)?,
                    4 => m.network_tx_bytes = self.integer(s, node)?,
                    5 => m.block_read_bytes = self.integer(s, node)?,
                    _ => m.block_write_bytes = self.integer(s, node)?,
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
        s: &mut Scanner,
        object: &Object<N>,
        names: &[&str; N],
        mut value: impl FnMut(&mut Scanner, usize, NodeId) -> Option<()>,
    ) -> Option<()> {
        let mut seen = 0u64;
        let count = s.entries(
            |s, key| match names.iter().position(|name| *name == &*key) {
                Some(field) if seen & 1 << field == 0 => {
                    seen |= 1 << field;
                    value(s, field, object.fields[field])
                }
                // A `Value` keeps the last of the two; serde's derive refuses the second.
                Some(_) => s.decline(Declined::Form),
                None => s.skip_value(0),
            },
        )?;
        self.compiled()
            .accepts_count(object.node, count)
            .then_some(())
    }

    // Called for most values; inlined, its `Cow` does not go through memory.
    #[inline(always)]
    fn text<'t>(&self, s: &mut Scanner<'t>, node: NodeId) -> Option<Cow<'t, str>> {
        let text = s.string()?;
        self.compiled()
            .accepts_text(node, &text, was_escaped(&text))
            .then_some(text)
    }

    fn string(&self, s: &mut Scanner, node: NodeId) -> Option<Option<String>> {
        nullable(s, |s| self.text(s, node).map(Cow::into_owned))
    }

    fn integer(&self, s: &mut Scanner, node: NodeId) -> Option<Option<i64>> {
        nullable(s, |s| {
            let n = integer(s.number()?)?;
            self.compiled().accepts_integer(node, n).then_some(n)
        })
    }

    fn boolean(&self, s: &mut Scanner, node: NodeId) -> Option<Option<bool>> {
        nullable(s, |s| {
            let value = if s.literal("true").is_some() {
                true
            } else {
                s.literal("false")?;
                false
            };
            self.compiled().accepts_boolean(node).then_some(value)
        })
    }

    /// A number where a float is due: an integer as serde hands it over (`as f64`), anything
    /// else as serde_json reads it, so the two cannot differ in the last bit.
    fn float(&self, s: &mut Scanner, node: NodeId) -> Option<Option<f64>> {
        nullable(s, |s| {
            let literal = s.number()?;
            match integer(literal) {
                Some(n) => self.compiled().accepts_integer(node, n).then_some(n as f64),
                None => {
                    let n = serde_json::from_str::<f64>(literal).ok()?;
                    self.compiled().accepts_float(node, n).then_some(n)
                }
            }
        })
    }

    fn timestamp(&self, s: &mut Scanner, node: NodeId) -> Option<Option<DateTime<FixedOffset>>> {
        nullable(s, |s| {
            let text = s.string()?;
            let Some(at) = rfc3339(&text) else {
                let conforms = DateTime::parse_from_rfc3339(&text).is_ok();
                return s.decline(if conforms {
                    Declined::Form
                } else {
                    Declined::Invalid
                });
            };
            self.compiled()
                .accepts_timestamp(node, &text, was_escaped(&text))
                .then_some(at)
        })
    }
}

/// `null` as `None`; anything else as `read` reads it.
fn nullable<'t, T>(
    s: &mut Scanner<'t>,
    read: impl FnOnce(&mut Scanner<'t>) -> Option<T>,
) -> Option<Option<T>> {
    if s.literal("null").is_some() {
        Some(None)
    } else {
        read(s).map(Some)
    }
}

/// Whether a string was decoded from escapes rather than sliced from the text: only then can
/// it hold a NUL (`\u0000`), as JSON has no raw control characters in strings.
#[expect(clippy::ptr_arg, reason = "borrowed or owned is what it asks")]
fn was_escaped(text: &Cow<str>) -> bool {
    matches!(text, Cow::Owned(_))
}

/// A number literal (already checked against JSON's grammar) as serde_json reads it into an
/// `i64`; `None` for a fraction, an exponent, `-0` (floats to serde_json) or beyond `i64`.
fn integer(literal: &str) -> Option<i64> {
    let bytes = literal.as_bytes();
    // Up to 18 digits always fit: the common case, without the standard parse's checks.
    if bytes.len() <= 18
        && let Some(n) = bytes.iter().try_fold(0i64, |n, &digit| {
            digit
                .is_ascii_digit()
                .then(|| n * 10 + i64::from(digit - b'0'))
        })
    {
        return Some(n);
    }
    // A sign, or 19 digits and more. Besides digits, only a fraction or an exponent can follow.
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits == b"0" || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    literal.parse().ok()
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

/// The character of a `\u` escape whose four hex digits start at `at`, and where the escape
/// ends: a surrogate pair is one character; a surrogate without its other half is not JSON.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let unit = hex4(bytes, at)?;
    match unit {
        0xD800..=0xDBFF => {
            if bytes.get(at + 4..at + 6)? != b"\\u" {
                return None;
            }
            let low = hex4(bytes, at + 6)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
            Some((char::from_u32(code)?, at + 10))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(u32::from(unit))?, at + 4)),
    }
}

/// Four hex digits (either case) at `at`.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at + 4)?.iter().try_fold(0u16, |n, &digit| {
        let value = char::from(digit).to_digit(16)?;
        Some(n << 4 | value as u16)
    })
}

/// The reader's scanner over the document's bytes: a position in the text, a scratch list of
/// label pairs reused across containers, and why the read stopped when it stops.
struct Scanner<'t> {
    text: &'t str,
    at: usize,
    pairs: Vec<(&'t str, &'t str)>,
    /// `Invalid` unless a form the reader does not read stopped it ([`Scanner::decline`]).
    declined: Declined,
}

impl<'t> Scanner<'t> {
    /// Stops the read, saying why: for a form that may conform, which `None` alone would count
    /// as invalid.
    fn decline<T>(&mut self, why: Declined) -> Option<T> {
        self.declined = why;
        None
    }

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

    /// A string: a slice of the text when it has no escapes, else decoded.
    fn string(&mut self) -> Option<Cow<'t, str>> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let end = start + special_byte(&bytes[start..])?;
        match bytes[end] {
            b'"' => {
                self.at = end + 1;
                Some(Cow::Borrowed(&self.text[start..end]))
            }
            b'\\' => self.escaped(start, end).map(Cow::Owned),
            _ => None, // a raw control character
        }
    }

    /// The rest of a string that holds an escape: `start` is where its text starts, `at` where
    /// its first backslash is. Refuses what serde_json refuses: an unknown escape, a lone
    /// surrogate, a raw control character.
    // Out of line: most strings have no escape, and `string` stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut at: usize) -> Option<String> {
        let bytes = self.text.as_bytes();
        let mut decoded = String::with_capacity(at - start + 16);
        decoded.push_str(&self.text[start..at]);
        loop {
            // `at` is a backslash.
            let (ch, next) = match *bytes.get(at + 1)? {
                b'"' => ('"', at + 2),
                b'\\' => ('\\', at + 2),
                b'/' => ('/', at + 2),
                b'b' => ('\u{8}', at + 2),
                b'f' => ('\u{c}', at + 2),
                b'n' => ('\n', at + 2),
                b'r' => ('\r', at + 2),
                b't' => ('\t', at + 2),
                b'u' => unicode_escape(bytes, at + 2)?,
                _ => return None,
            };
            decoded.push(ch);
            // Backslashes and quotes are ASCII, so these are character boundaries.
            let end = next + special_byte(bytes.get(next..)?)?;
            decoded.push_str(&self.text[next..end]);
            match bytes[end] {
                b'"' => {
                    self.at = end + 1;
                    return Some(decoded);
                }
                b'\\' => at = end,
                _ => return None,
            }
        }
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
        mut entry: impl FnMut(&mut Self, Cow<'t, str>) -> Option<()>,
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
            return self.decline(Declined::Form);
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.entries(|s, _| s.skip_value(depth + 1)).map(drop),
            b'[' => self.items(|s| s.skip_value(depth + 1)).map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => {
                // A `Value` holds every number: one beyond `f64` is not JSON to serde_json.
                let literal = self.number()?;
                if integer(literal).is_none() {
                    serde_json::from_str::<f64>(literal).ok()?;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reader must never accept what the `Value` path refuses, nor read a value
    //! differently; `api::body::json`'s tests hold `parse` (reader first) to the `Value` path
    //! field by field, on generated bodies too. These add the reader's own forms (timestamps,
    //! numbers, escapes) and check that it reads the documents clients send, so it does not
    //! silently decline everything.

    use serde_json::{Value, json};

    use super::*;
    use crate::domain::schema_check::Schema;

    const FIXTURE: &str = include_str!("../../../benches/fixtures/telemetry-20.json");

    /// The `Value` path the reader stands in front of: the schema's check on a `Value`, then a
    /// typed parse of the `Value`.
    fn through_value(text: &str) -> Option<TelemetryPayload> {
        let value: Value = serde_json::from_str(text).ok()?;
        if !Schema::of::<TelemetryPayload>().check(&value).is_empty() {
            return None;
        }
        serde_json::from_value(value).ok()
    }

    /// Same payload, offsets of timestamps included (`DateTime`'s `==` compares instants only).
    fn same(a: &TelemetryPayload, b: &TelemetryPayload) -> bool {
        a == b && serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
    }

    /// The reader reads `text` as the `Value` path does, or leaves it to that path.
    fn assert_agrees(text: &str) {
        if let Ok(read) = read(text) {
            let parsed = through_value(text);
            assert!(
                parsed.as_ref().is_some_and(|parsed| same(&read, parsed)),
                "the reader read {read:?}, the Value path {parsed:?}: {text}"
            );
        }
    }

    fn with_recorded_at(at: &str) -> String {
        json!({"recorded_at": at, "host": {"metrics": {}}}).to_string()
    }

    #[test]
    fn agents_documents_are_read_as_the_value_path_reads_them() {
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
            let read = read(text).unwrap_or_else(|why| panic!("not read ({why:?}): {text}"));
            assert!(same(&read, &through_value(text).unwrap()), "{text}");
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
            assert!(read(&text).is_ok(), "{at}");
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
            assert!(read(&text).is_err(), "{at}");
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
        assert!(same(&read(text).unwrap(), &through_value(text).unwrap()));
    }

    /// The minimal payload with `facts.os` and a label written as given (raw JSON string text).
    fn with_strings(os: &str, label: &str) -> String {
        format!(
            r#"{{"recorded_at":"2024-05-01T12:00:00Z","host":{{"metrics":{{}},"facts":{{"os":{os}}}}},"containers":[{{"container_id":"a","name":"n","image":"i","labels":{{{label}:{label}}}}}]}}"#
        )
    }

    #[test]
    fn escaped_strings_are_decoded_as_serde_json_decodes_them() {
        for string in [
            r#""a\"b""#,
            r#""\/usr\/bin\/""#,
            r#""D\u00e9bian \u00C9""#,
            r#""\ud83d\ude00 \uD834\uDD1E \udbff\udfff""#,
            r#""\b\f\n\r\t\\\/\"""#,
            r#""\u0041\u007f\u2028\uffff""#,
            r#""plain then \u00e9 then plain""#,
        ] {
            let text = with_strings(string, string);
            let read = read(&text).unwrap_or_else(|why| panic!("not read ({why:?}): {text}"));
            assert!(same(&read, &through_value(&text).unwrap()), "{text}");
        }
        // Plain labels, then escaped ones: the set is decoded from there on, the last `b` stays.
        let mixed = r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"containers":[{"container_id":"a","name":"n","image":"i","labels":{"b":"1","a\/b":"2","b":"3","c":"\u00e9"}}]}"#;
        let read_mixed = read(mixed).unwrap();
        assert!(same(&read_mixed, &through_value(mixed).unwrap()));
        let labels = read_mixed.container_list()[0].labels.clone().unwrap();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("a/b", "2"), ("b", "3"), ("c", "é")]
        );
        let escaped_keys = r#"{"recorded\u005fat":"2024-05-01T12:00:00Z","h\u006fst":{"metrics":{"cpu\u005Fpercent":1}},"x\ud83d\ude00":"\/"}"#;
        let read = read(escaped_keys).unwrap();
        assert!(same(&read, &through_value(escaped_keys).unwrap()));
        assert_eq!(read.host.metrics.cpu_percent, Some(1.0));
    }

    #[test]
    fn lone_surrogates_broken_escapes_and_raw_control_characters_are_left_to_the_value_path() {
        for string in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
            r#""\ud800\""#,
            r#""\ud800\ud800""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            r#""\U0041""#,
            "\"raw\ttab\"",
            "\"raw\u{1f}\"",
            r#""unterminated\"#,
        ] {
            // Where the value is read, where it is skipped (an unknown field), and as a key.
            for text in [
                with_strings(string, r#""k""#),
                with_strings(r#""os""#, string),
                format!(
                    r#"{{"recorded_at":"2024-05-01T12:00:00Z","host":{{"metrics":{{}}}},"x":[{string}]}}"#
                ),
            ] {
                assert_eq!(read(&text).err(), Some(Declined::Invalid), "{text}");
                assert!(through_value(&text).is_none(), "{text}");
            }
        }
        // A NUL can only be written escaped, and breaks the contract where the value is read.
        let nul = r#""a\u0000b""#;
        for text in [with_strings(nul, r#""k""#), with_strings(r#""os""#, nul)] {
            assert_eq!(read(&text).err(), Some(Declined::Invalid), "{text}");
            assert!(through_value(&text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_decline_says_whether_the_document_may_yet_conform() {
        let deep = format!(
            r#"{{"recorded_at":"2024-05-01T12:00:00Z","host":{{"metrics":{{}}}},"x":{}{}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        let twice =
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"host":{"metrics":{}}}"#;
        for (text, why) in [
            (twice.to_string(), Declined::Form),
            (with_recorded_at("2024-05-01T23:59:60Z"), Declined::Form),
            (deep, Declined::Form),
            (with_recorded_at("yesterday"), Declined::Invalid),
            (with_recorded_at("2024-02-30T12:00:00Z"), Declined::Invalid),
            (MINIMAL_WITHOUT_HOST.to_string(), Declined::Invalid),
            ("{".to_string(), Declined::Invalid),
            (format!("{FIXTURE} {{}}"), Declined::Invalid),
            (with_unknown("-1e400"), Declined::Invalid),
            (with_unknown(&"9".repeat(400)), Declined::Invalid),
        ] {
            assert_eq!(read(&text).err(), Some(why), "{text}");
        }
        // A form the reader leaves may conform: the `Value` path takes these two.
        assert!(through_value(twice).is_some());
        assert!(through_value(&with_recorded_at("2024-05-01T23:59:60Z")).is_some());
    }

    /// The minimal payload with an unknown field of this JSON text.
    fn with_unknown(json: &str) -> String {
        format!(
            r#"{{"recorded_at":"2024-05-01T12:00:00Z","host":{{"metrics":{{}}}},"x":[{json}]}}"#
        )
    }

    const MINIMAL_WITHOUT_HOST: &str = r#"{"recorded_at":"2024-05-01T12:00:00Z"}"#;

    #[test]
    fn special_bytes_are_found_eight_at_a_time_and_in_the_tail() {
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
        let compiled = &CompiledSchema::of::<TelemetryPayload>().unwrap();
        let root = compiled.root();
        assert!(Object::new(compiled, root, &ROOT, &["recorded_at", "host"]).is_some());
        assert!(Object::new(compiled, root, &["recorded_at", "host"], &["recorded_at"]).is_none());
        assert!(Object::new(compiled, root, &ROOT, &["recorded_at"]).is_none());
    }
}

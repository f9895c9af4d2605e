//! Telemetry bodies for the differential tests of the body parse: valid ones, written the ways
//! clients write JSON (serde_json, PHP's `json_encode`, Python's `json.dumps`, every character
//! escaped), and the same bodies damaged (truncated, a value of the wrong type or out of bounds,
//! a key given twice, a broken or lone-surrogate escape, a stray piece of syntax).

use std::fmt::{self, Write as _};

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// A request body, and whether it was generated valid (the reader must then read it).
#[derive(Clone)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub valid: bool,
}

impl fmt::Debug for Body {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        let kind = if self.valid { "valid" } else { "damaged" };
        write!(
            formatter,
            "{kind}: {}",
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

/// Valid bodies, each written in one of the clients' styles.
pub fn valid() -> impl Strategy<Value = Body> {
    (payload(), style()).prop_map(|(value, style)| Body {
        bytes: Writer::plain(style).text(&value).into_bytes(),
        valid: true,
    })
}

/// Valid bodies with one piece of damage each.
pub fn damaged() -> impl Strategy<Value = Body> {
    (payload(), style(), damage()).prop_map(|(value, style, damage)| Body {
        bytes: damage.apply(value, style),
        valid: false,
    })
}

/// How a client's JSON encoder writes strings and separators.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// serde_json, Go, most agents: only `"`, `\` and control characters are escaped.
    Serde,
    /// PHP's `json_encode` default: `/` and every non-ASCII character escaped too.
    Php,
    /// Python's `json.dumps` default: non-ASCII escaped, `", "` and `": "` between items.
    Python,
    /// Every character of every string and key as `\uXXXX` (upper-case hex).
    AllEscaped,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Serde),
        Just(Style::Php),
        Just(Style::Python),
        Just(Style::AllEscaped)
    ]
}

impl Style {
    fn separators(self) -> (&'static str, &'static str) {
        match self {
            Style::Python => (", ", ": "),
            _ => (",", ":"),
        }
    }

    fn write_str(self, text: &str, out: &mut String) {
        out.push('"');
        for ch in text.chars() {
            match (self, ch) {
                (Style::AllEscaped, _) => utf16_escape(ch, true, out),
                (_, '"') => out.push_str("\\\""),
                (_, '\\') => out.push_str("\\\\"),
                (Style::Php, '/') => out.push_str("\\/"),
                (_, '\n') => out.push_str("\\n"),
                (_, '\r') => out.push_str("\\r"),
                (_, '\t') => out.push_str("\\t"),
                (_, '\u{8}') => out.push_str("\\b"),
                (_, '\u{c}') => out.push_str("\\f"),
                (_, ch) if ch < ' ' => utf16_escape(ch, false, out),
                (Style::Php | Style::Python, ch) if !ch.is_ascii() => utf16_escape(ch, false, out),
                (_, ch) => out.push(ch),
            }
        }
        out.push('"');
    }
}

/// `ch` as one `\uXXXX` escape, or two (a surrogate pair) beyond the BMP.
fn utf16_escape(ch: char, upper: bool, out: &mut String) {
    let mut units = [0u16; 2];
    for unit in ch.encode_utf16(&mut units) {
        let written = if upper {
            write!(out, "\\u{unit:04X}")
        } else {
            write!(out, "\\u{unit:04x}")
        };
        written.expect("writing to a String");
    }
}

/// Writes a `Value` as JSON text in a style, with at most one twist for damage: a string equal
/// to `raw.0` is written as the text `raw.1`, and the object at the JSON pointer `twice.0`
/// gets its entry `twice.1` a second time, with the value `twice.2`.
struct Writer<'a> {
    style: Style,
    raw: Option<(&'a str, &'a str)>,
    twice: Option<(&'a str, &'a str, &'a Value)>,
}

impl Writer<'_> {
    fn plain(style: Style) -> Self {
        Writer {
            style,
            raw: None,
            twice: None,
        }
    }

    fn text(&self, value: &Value) -> String {
        let mut out = String::new();
        self.write(value, &mut String::new(), &mut out);
        out
    }

    fn write(&self, value: &Value, pointer: &mut String, out: &mut String) {
        let (comma, colon) = self.style.separators();
        match value {
            Value::String(text) => match self.raw {
                Some((marker, raw)) if marker == text => out.push_str(raw),
                _ => self.style.write_str(text, out),
            },
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(comma);
                    }
                    let len = pointer.len();
                    write!(pointer, "/{index}").expect("writing to a String");
                    self.write(item, pointer, out);
                    pointer.truncate(len);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                let again = self
                    .twice
                    .filter(|(at, _, _)| at == pointer)
                    .map(|(_, key, value)| (key, value));
                let entries = map.iter().map(|(key, value)| (key.as_str(), value));
                for (index, (key, value)) in entries.chain(again).enumerate() {
                    if index > 0 {
                        out.push_str(comma);
                    }
                    self.style.write_str(key, out);
                    out.push_str(colon);
                    let len = pointer.len();
                    push_token(pointer, key);
                    self.write(value, pointer, out);
                    pointer.truncate(len);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

/// One piece of damage, its places picked among those the body has.
#[derive(Debug, Clone)]
enum Damage {
    /// The text cut short (possibly inside a multi-byte character).
    Truncate(Index),
    /// A value (the document itself included) replaced.
    Replace(Index, Value),
    /// A piece of text put in anywhere.
    Insert(Index, &'static str),
    /// An object's entry given twice: with its own value again, or with another.
    Twice(Index, Index, Option<Value>),
    /// A string value written as this raw text instead (broken escapes, lone surrogates).
    Raw(Index, &'static str),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), awkward()).prop_map(|(at, value)| Damage::Replace(at, value)),
        (any::<Index>(), prop::sample::select(PIECES)).prop_map(|(at, p)| Damage::Insert(at, p)),
        (any::<Index>(), any::<Index>(), prop::option::of(awkward()))
            .prop_map(|(object, key, value)| Damage::Twice(object, key, value)),
        (any::<Index>(), prop::sample::select(RAW_STRINGS))
            .prop_map(|(at, raw)| Damage::Raw(at, raw)),
    ]
}

/// Bits of JSON syntax to put where they do not belong.
const PIECES: &[&str] = &[
    "\"", "\\", ",", ":", "{", "}", "[", "]", "null", "-", "0", "1e400", " ", "\u{1}", "\\u",
    "\\ud800", "\\udc00", "é", "\u{0}",
];

/// Strings written raw: broken escapes, lone surrogates, a NUL, and some valid ones.
const RAW_STRINGS: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00""#,
    r#""\ud800\u0041""#,
    r#""\ud800x""#,
    r#""\ud800\ud800""#,
    r#""\udbff\udfff""#,
    r#""\ud83d\ude00""#,
    r#""\uD834\uDD1E""#,
    r#""a\u0000b""#,
    r#""\x""#,
    r#""\u12""#,
    r#""\u12G4""#,
    r#""\/\b\f\n\r\t\"\\""#,
    "\"raw\ttab\"",
    "\"raw\u{1f}\"",
    r#""2024-05-01T12:00:00\u005a""#,
    r#""\u0032024-05-01T12:00:00Z""#,
];

fn awkward() -> impl Strategy<Value = Value> {
    let mut values = awkward_values();
    // Valid, but a form the reader leaves to the `Value` path.
    values.push(json!("2024-05-01T23:59:60Z"));
    prop::sample::select(values)
}

/// Values that break some bound, type or rule wherever they are put, and some that do not.
pub fn awkward_values() -> Vec<Value> {
    let mut values = vec![
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(-0.5),
        json!(-0.0),
        json!(1.5),
        json!(100),
        json!(101),
        json!(1024),
        json!(1025),
        json!(2147483648i64),
        json!(-9223372036854775808i64),
        json!(18446744073709551615u64),
        json!(1e300),
        json!(""),
        json!("x"),
        json!("nul\u{0}inside"),
        json!("2024-05-01T12:00:00Z"),
        json!("2024-05-01 12:00:00"),
        json!("é".repeat(16)),
        json!("é".repeat(17)),
        json!([]),
        json!(["a", 1]),
        json!({}),
        json!({"a": "b"}),
        json!({"k\u{0}": "v"}),
    ];
    for length in [32, 33, 64, 65, 80, 81, 128, 129, 255, 256, 1024, 1025] {
        values.push(json!("a".repeat(length)));
    }
    values.push(json!(vec!["p"; 129]));
    values.push(Value::Object(
        (0..129).map(|i| (format!("k{i}"), json!("v"))).collect(),
    ));
    values
}

impl Damage {
    fn apply(self, mut value: Value, style: Style) -> Vec<u8> {
        let mut places = Vec::new();
        pointers(&value, String::new(), &mut places);
        match self {
            Damage::Truncate(at) => {
                let mut bytes = Writer::plain(style).text(&value).into_bytes();
                bytes.truncate(at.index(bytes.len()));
                bytes
            }
            Damage::Replace(at, replacement) => {
                let at: &String = at.get(&places);
                *value.pointer_mut(at).expect("a place") = replacement;
                Writer::plain(style).text(&value).into_bytes()
            }
            Damage::Insert(at, piece) => {
                let mut bytes = Writer::plain(style).text(&value).into_bytes();
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, piece.bytes());
                bytes
            }
            Damage::Twice(object, key, other) => {
                let objects: Vec<&String> = places
                    .iter()
                    .filter(|at| {
                        value
                            .pointer(at)
                            .is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()))
                    })
                    .collect();
                let at = object.get(&objects).as_str();
                let map = value
                    .pointer(at)
                    .and_then(Value::as_object)
                    .expect("an object");
                let keys: Vec<&String> = map.keys().collect();
                let key = key.get(&keys).as_str();
                let again = other.unwrap_or_else(|| map[key].clone());
                let writer = Writer {
                    twice: Some((at, key, &again)),
                    ..Writer::plain(style)
                };
                writer.text(&value).into_bytes()
            }
            Damage::Raw(at, raw) => {
                const MARKER: &str = "\u{e000}raw";
                let strings: Vec<&String> = places
                    .iter()
                    .filter(|at| value.pointer(at).is_some_and(Value::is_string))
                    .collect();
                let at = at.get(&strings).to_string();
                *value.pointer_mut(&at).expect("a string") = json!(MARKER);
                let writer = Writer {
                    raw: Some((MARKER, raw)),
                    ..Writer::plain(style)
                };
                writer.text(&value).into_bytes()
            }
        }
    }
}

/// JSON pointers to every value inside `value`, itself included.
pub fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let mut child_at = at.clone();
                push_token(&mut child_at, key);
                pointers(child, child_at, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Appends `/key` to a JSON pointer, escaped as RFC 6901 says.
fn push_token(pointer: &mut String, key: &str) {
    pointer.push('/');
    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

/// A conforming payload: every optional field absent, null or set within its bounds, with
/// unknown fields here and there.
fn payload() -> impl Strategy<Value = Value> {
    let containers = prop::collection::vec(container(), 0..4).prop_map(Value::Array);
    object(vec![
        ("recorded_at", required(timestamp())),
        ("host", required(host())),
        ("containers", optional(containers)),
    ])
}

fn host() -> BoxedStrategy<Value> {
    let facts = object(vec![
        ("cpu_count", optional((1..=1024i64).prop_map(Value::from))),
        ("memory_total_mb", optional(count())),
        ("disk_total_gb", optional(count())),
        ("os", optional(text(0, 80))),
        ("docker_version", optional(text(0, 32))),
    ]);
    object(vec![
        ("metrics", required(host_metrics())),
        ("facts", optional(facts)),
    ])
}

fn host_metrics() -> BoxedStrategy<Value> {
    object(vec![
        ("cpu_percent", optional(percent())),
        ("memory_used_mb", optional(count())),
        ("memory_total_mb", optional(count())),
        ("disk_used_gb", optional(count())),
        ("disk_total_gb", optional(count())),
        ("network_rx_bytes", optional(count())),
        ("network_tx_bytes", optional(count())),
        ("load_average", optional(non_negative())),
    ])
}

fn container() -> BoxedStrategy<Value> {
    let ports = prop::collection::vec(text(0, 40), 0..4).prop_map(|ports| json!(ports));
    let labels = prop::collection::vec((chars(0, 24), text(0, 40)), 0..6)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()));
    let metrics = object(vec![
        ("cpu_percent", optional(non_negative())),
        ("memory_usage_mb", optional(count())),
        ("memory_limit_mb", optional(count())),
        ("network_rx_bytes", optional(count())),
        ("network_tx_bytes", optional(count())),
        ("block_read_bytes", optional(count())),
        ("block_write_bytes", optional(count())),
    ]);
    object(vec![
        ("container_id", required(text(1, 80))),
        ("name", required(text(0, 255))),
        ("image", required(text(0, 255))),
        ("image_tag", optional(text(0, 128))),
        ("status", optional(text(0, 255))),
        ("state", optional(text(0, 32))),
        ("health_status", optional(text(0, 16))),
        ("ports", optional(ports)),
        ("labels", optional(labels)),
        ("metrics", optional(metrics)),
        ("started_at", optional(timestamp())),
        ("finished_at", optional(timestamp())),
        ("restart_count", optional(count())),
        (
            "exit_code",
            optional((-1000..=1000i64).prop_map(Value::from)),
        ),
        ("oom_killed", optional(any::<bool>().prop_map(Value::from))),
    ])
}

type Field = (&'static str, BoxedStrategy<Option<Value>>);

/// An object of the named fields (those given), and unknown fields beside them.
fn object(fields: Vec<Field>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    let unknown = prop::collection::vec((chars(0, 8), unknown_value()), 0..3);
    (values, prop::option::weighted(0.2, unknown))
        .prop_map(move |(values, unknown)| {
            let mut map = Map::new();
            for (name, value) in unknown.into_iter().flatten() {
                map.insert(format!("x_{name}"), value);
            }
            for (name, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    map.insert((*name).to_owned(), value);
                }
            }
            Value::Object(map)
        })
        .boxed()
}

fn required(value: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    value.prop_map(Some).boxed()
}

/// Absent, `null`, or a value.
fn optional(value: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        4 => value.prop_map(Some),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels, as a newer agent might send in a field this server
/// does not know.
fn unknown_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300..1e300f64).prop_map(Value::from),
        text(0, 12),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((chars(0, 6), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A JSON string of `min..=max` characters.
fn text(min: usize, max: usize) -> BoxedStrategy<Value> {
    chars(min, max).prop_map(Value::String).boxed()
}

/// `min..=max` characters (at most 24 but for the bound itself), drawn mostly from letters and
/// from the characters encoders escape.
fn chars(min: usize, max: usize) -> BoxedStrategy<String> {
    let character = prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec![
            '/', '"', '\\', ' ', '\n', '\t', '\u{1}', '\u{1f}', '\u{7f}', 'é', 'ß', '€', '\u{2028}',
            '\u{ffff}', '😀', '𝄞', '\u{10ffff}',
        ]),
        // PostgreSQL stores no NUL: the schema refuses it.
        1 => any::<char>().prop_map(|ch| if ch == '\0' { ' ' } else { ch }),
    ];
    let lengths = prop_oneof![4 => min..=max.min(24).max(min), 1 => Just(max)];
    lengths
        .prop_flat_map(move |length| prop::collection::vec(character.clone(), length))
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

/// A timestamp as agents write it: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn timestamp() -> impl Strategy<Value = Value> {
    let date = (1970..2100i32, 1..=12u32, 1..=28u32);
    let time = (0..24u32, 0..60u32, 0..60u32);
    let fraction = prop::option::of((1..=9u32, any::<u32>()));
    let offset = prop::option::of((-23..=23i32, 0..60u32));
    (date, time, fraction, offset).prop_map(|((y, mo, d), (h, mi, s), fraction, offset)| {
        let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if let Some((digits, n)) = fraction {
            let n = n % 10u32.pow(digits);
            write!(text, ".{n:0width$}", width = digits as usize).expect("writing to a String");
        }
        match offset {
            None => text.push('Z'),
            Some((hours, minutes)) => {
                let sign = if hours < 0 { '-' } else { '+' };
                write!(text, "{sign}{:02}:{minutes:02}", hours.abs()).expect("writing to a String");
            }
        }
        Value::String(text)
    })
}

/// A counter or a size: any `i64` from 0.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![0..1000i64, 0..=i64::MAX].prop_map(Value::from)
}

fn percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..=100i64).prop_map(Value::from),
        (0.0..=100.0f64).prop_map(Value::from)
    ]
}

fn non_negative() -> impl Strategy<Value = Value> {
    prop_oneof![
        count(),
        (0.0..f64::MAX).prop_map(Value::from),
        (0.0..1e-300f64).prop_map(Value::from),
    ]
}

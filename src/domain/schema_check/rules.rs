//! The leaf rules of a body's values: string length (in characters), minimum length, pattern,
//! `date-time` format, no NUL character (PostgreSQL cannot store one), and numeric bounds.
//! Both paths apply them, the `Value` path's [`check`](super) and the telemetry body's fast
//! reader (`api::body::reader`) through its compiled schema, so the two cannot differ on a
//! bound, and each rule's wording is written once.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::DateTime;
use poem_openapi::registry::MetaSchema;

/// The rules of a string schema, checked in this order; only the first broken one is reported.
pub struct TextRules {
    max_length: Option<usize>,
    min_length: Option<usize>,
    pattern: Option<Arc<regex::Regex>>,
    date_time: bool,
}

impl TextRules {
    /// The rules of `schema`. A pattern that does not compile is a programming error caught by
    /// the tests of the types using it.
    pub fn of(schema: &MetaSchema) -> Self {
        Self::try_of(schema).expect("schema patterns are valid regular expressions")
    }

    /// The rules of `schema`, or the error of its pattern.
    pub fn try_of(schema: &MetaSchema) -> Result<Self, regex::Error> {
        Ok(Self {
            max_length: schema.max_length,
            min_length: schema.min_length,
            pattern: schema
                .pattern
                .as_deref()
                .map(compiled_pattern)
                .transpose()?,
            date_time: schema.format == Some("date-time"),
        })
    }

    /// What is wrong with `text`, if anything.
    pub fn problem(&self, text: &str) -> Option<String> {
        self.problem_of(text, true)
    }

    /// What is wrong with `text`, not looking for NUL characters unless `may_hold_nul`: only
    /// an escape (`\u0000`) writes one in JSON, so text read without escapes cannot hold one.
    pub fn problem_of(&self, text: &str, may_hold_nul: bool) -> Option<String> {
        self.problem_besides_format(text, may_hold_nul).or_else(|| {
            (self.date_time && DateTime::parse_from_rfc3339(text).is_err()).then(|| {
                "must be an RFC 3339 timestamp with offset, e.g. 2024-05-01T12:00:00Z".into()
            })
        })
    }

    /// [`problem_of`](Self::problem_of) but for the `date-time` format, for a caller that has
    /// parsed the timestamp itself.
    pub fn problem_besides_format(&self, text: &str, may_hold_nul: bool) -> Option<String> {
        let problem = if may_hold_nul {
            string_problem(text, self.max_length)
        } else {
            length_problem(text, self.max_length)
        };
        if problem.is_some() {
            return problem;
        }
        if let Some(min) = self.min_length.filter(|min| is_shorter_than(text, *min)) {
            return Some(format!("must not be shorter than {min} characters"));
        }
        if let Some(regex) = self.pattern.as_ref().filter(|regex| !regex.is_match(text)) {
            return Some(format!("must match the pattern {}", regex.as_str()));
        }
        None
    }

    /// Whether the text must be an RFC 3339 timestamp.
    pub fn is_date_time(&self) -> bool {
        self.date_time
    }
}

/// What is wrong with any string, a value or a map key: a NUL character, which PostgreSQL
/// cannot store, or more than `max_length` characters.
pub fn string_problem(text: &str, max_length: Option<usize>) -> Option<String> {
    if text.contains('\0') {
        return Some("must not contain NUL characters".into());
    }
    length_problem(text, max_length)
}

fn length_problem(text: &str, max_length: Option<usize>) -> Option<String> {
    max_length
        .filter(|max| is_longer_than(text, *max))
        .map(|max| format!("must not be longer than {max} characters"))
}

/// Whether `text` has more than `max` characters. A character takes at least one byte, so the
/// byte length settles the common case without walking the text.
fn is_longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().nth(max).is_some()
}

/// Whether `text` has fewer than `min` characters, walking at most `min` of them.
fn is_shorter_than(text: &str, min: usize) -> bool {
    text.len() < min
        || min
            .checked_sub(1)
            .is_some_and(|last| text.chars().nth(last).is_none())
}

/// A schema's `pattern`, compiled once per pattern and shared.
fn compiled_pattern(pattern: &str) -> Result<Arc<regex::Regex>, regex::Error> {
    static COMPILED: OnceLock<RwLock<HashMap<String, Arc<regex::Regex>>>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(Default::default);
    if let Some(regex) = compiled.read().expect("pattern cache").get(pattern) {
        return Ok(regex.clone());
    }
    let regex = Arc::new(regex::Regex::new(pattern)?);
    Ok(compiled
        .write()
        .expect("pattern cache")
        .entry(pattern.to_owned())
        .or_insert(regex)
        .clone())
}

/// Reports a number outside `[minimum, maximum]`, once per broken bound.
pub fn check_range(
    n: f64,
    minimum: Option<f64>,
    maximum: Option<f64>,
    fail: &mut impl FnMut(String),
) {
    if let Some(min) = minimum.filter(|min| n < *min) {
        fail(format!("must be at least {min}"));
    }
    if let Some(max) = maximum.filter(|max| n > *max) {
        fail(format!("must be at most {max}"));
    }
}

/// Whether `n` lies within the bounds, by [`check_range`]'s rule.
pub fn in_range(n: f64, minimum: Option<f64>, maximum: Option<f64>) -> bool {
    let mut conforms = true;
    check_range(n, minimum, maximum, &mut |_| conforms = false);
    conforms
}

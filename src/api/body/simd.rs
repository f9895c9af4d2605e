//! Prototype B of the parser decision (feature `simd-parse`): the telemetry payload's
//! fast path as a SIMD JSON parser (sonic-rs) reading straight into the contract types, then the
//! bounds checked by their `validator` derives (nexus-contract's `validate` feature, the same
//! bounds as the published `oai(validator(...))` ones, NUL refused in every string, timestamps
//! RFC 3339 only). Anything it cannot vouch for (not JSON, out of bounds, a property given twice)
//! is declined, and the `Value` path names every failing field as it does for the reader.

use nexus_contract::TelemetryPayload;
use validator::Validate;

use super::Declined;

/// The payload, when `text` conforms to the schema.
pub fn read(text: &str) -> Result<TelemetryPayload, Declined> {
    let payload: TelemetryPayload = sonic_rs::from_str(text).map_err(|_| Declined::Invalid)?;
    payload.validate().map_err(|_| Declined::Invalid)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    //! telemetry.rs's tests hold this path to the `Value` path on generated and damaged bodies;
    //! these name the rules the derives must add to a typed parse.

    use super::read;

    fn body(recorded_at: &str, host: &str, container: &str) -> String {
        format!(
            r#"{{"recorded_at":"{recorded_at}","host":{{"metrics":{{"cpu_percent":50}},"facts":{host}}},
               "containers":[{{"container_id":"a","name":"n","image":"i",{container}}}]}}"#
        )
    }

    #[test]
    fn a_conforming_body_is_read() {
        let text = body(
            "2024-05-01T12:00:00Z",
            r#"{"cpu_count":4}"#,
            r#""labels":{"k":"v"},"restart_count":0"#,
        );
        assert!(read(&text).is_ok());
    }

    #[test]
    fn a_value_out_of_the_published_bounds_is_left_to_the_value_path() {
        for (host, container) in [
            (r#"{"cpu_count":0}"#, r#""restart_count":0"#),
            (r#"{"cpu_count":1025}"#, r#""restart_count":0"#),
            ("null", r#""restart_count":-1"#),
            ("null", r#""state":"123456789012345678901234567890123""#),
            ("null", r#""labels":{"k\u0000":"v"}"#),
            ("null", r#""ports":["80\u0000"]"#),
            (r#"{"os":"\u0000"}"#, r#""image_tag":null"#),
        ] {
            let text = body("2024-05-01T12:00:00Z", host, container);
            assert!(read(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_timestamp_chrono_would_read_but_rfc_3339_does_not_is_left_to_the_value_path() {
        let text = body("2024-05-01T12:00:00+0000", "null", r#""image_tag":null"#);
        assert!(read(&text).is_err());
        let text = body(
            "2024-05-01T12:00:00Z",
            "null",
            r#""started_at":"2024-05-01T12:00:00+0000""#,
        );
        assert!(read(&text).is_err());
    }
}

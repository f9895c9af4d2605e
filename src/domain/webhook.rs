//! Webhooks' rules, free of I/O: which addresses a webhook may reach, the retry schedule and
//! the Standard Webhooks signature (<https://www.standardwebhooks.com/>).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Prefix of a signing secret, as the Standard Webhooks libraries expect it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Retry delays after each failed attempt, in units of the retry base (5 s by default): 5 s,
/// 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h. Eleven attempts over about 23.7 h,
/// then the delivery is `failed`. docs/alerts.md documents it.
pub const RETRY_STEPS: [u32; 10] = [1, 6, 24, 120, 360, 720, 1440, 2880, 5760, 5760];

/// Attempts a delivery gets before it is `failed`: the first and one per retry step.
pub const MAX_ATTEMPTS: i32 = RETRY_STEPS.len() as i32 + 1;

/// The delay before the attempt after `attempts` failed ones (`None`: the schedule is
/// exhausted), with ±20% jitter from `jitter` in [0, 1) so that deliveries failing together do
/// not retry together.
pub fn retry_delay(attempts: i32, base: Duration, jitter: f64) -> Option<Duration> {
    let step = RETRY_STEPS.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let delay = base.mul_f64(f64::from(*step));
    Some(delay.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// The `webhook-signature` header of a message: `v1,` + base64 HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the secret's decoded bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> anyhow::Result<String> {
    let key = BASE64.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-id` of a delivery: the same on every attempt, for receivers to deduplicate.
pub fn message_id(delivery_id: i64) -> String {
    format!("msg_{delivery_id}")
}

/// Why a webhook may not reach `address` (loopback, private, link-local, …), or `None` when it
/// is a public address. A server with `--allow-private-webhooks` skips this check.
pub fn private_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = address.octets();
    if address.is_loopback() {
        Some("loopback")
    } else if address.is_private() {
        Some("private (RFC 1918)")
    } else if address.is_link_local() {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if address.is_multicast() {
        Some("multicast")
    } else if address.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else {
        None
    }
}

fn private_v6(address: Ipv6Addr) -> Option<&'static str> {
    let first = address.segments()[0];
    if address.is_loopback() {
        Some("loopback")
    } else if address.is_unspecified() {
        Some("unspecified")
    } else if address.is_multicast() {
        Some("multicast")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else {
        None
    }
}

/// The refusal of an address in a range [`private_range`] names, as the 422 and the delivery's
/// `last_error` say it.
pub fn private_refusal(address: IpAddr, range: &str) -> String {
    format!(
        "resolves to {address}, a {range} address; webhooks to loopback, private, link-local, \
         unspecified and multicast addresses are refused so that an admin token cannot be used \
         to reach the server's internal network (start the server with \
         --allow-private-webhooks to allow them)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification (and its libraries' tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_retry_schedule_grows_to_eight_hours_and_ends_within_a_day() {
        let base = Duration::from_secs(5);
        let exact = |attempts| retry_delay(attempts, base, 0.5).unwrap();
        assert_eq!(exact(1), Duration::from_secs(5));
        assert_eq!(exact(2), Duration::from_secs(30));
        assert_eq!(exact(9), Duration::from_secs(8 * 3600));
        assert_eq!(retry_delay(MAX_ATTEMPTS, base, 0.5), None);
        assert_eq!(retry_delay(0, base, 0.5), None);
        let total: Duration = (1..MAX_ATTEMPTS).map(exact).sum();
        assert!(total > Duration::from_secs(23 * 3600) && total < Duration::from_secs(24 * 3600));
        assert_eq!(retry_delay(1, base, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(retry_delay(1, base, 1.0), Some(Duration::from_secs(6)));
    }

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private (RFC 1918)")),
            ("172.16.0.1", Some("private (RFC 1918)")),
            ("192.168.1.1", Some("private (RFC 1918)")),
            ("169.254.169.254", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("224.0.0.1", Some("multicast")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fe80::1", Some("link-local")),
            ("fd00::1", Some("unique local (private)")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("93.184.215.14", None),
            ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
        ];
        for (address, expected) in cases {
            assert_eq!(
                private_range(address.parse().unwrap()),
                expected,
                "{address}"
            );
        }
    }

    #[test]
    fn a_secret_that_is_not_base64_cannot_sign() {
        assert!(signature("whsec_not base64!", "msg_1", 1, "{}").is_err());
    }
}

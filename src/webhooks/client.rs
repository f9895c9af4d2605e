//! The HTTP side of webhooks: which URLs an endpoint may have, and the client that posts
//! deliveries, refusing internal addresses at connection time too (so a name that resolved to
//! a public address when the endpoint was saved cannot be rebound to an internal one later).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::{private_range, private_refusal};

/// Longest a name lookup of the API's URL check may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `url` cannot be a webhook endpoint, in words for the 422 (`None`: it can). With
/// `allow_private`, internal addresses are accepted.
pub async fn refusal(url: &str, allow_private: bool) -> Option<String> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("is not an absolute URL ({error})")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some("must be an http or https URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry credentials; put a token in the path or query".into());
    }
    let Some(host) = parsed.host_str() else {
        return Some("has no host".into());
    };
    if let Some(address) = literal_address(host) {
        return (!allow_private)
            .then(|| private_range(address).map(|range| private_refusal(address, range)))
            .flatten();
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)));
    match lookup.await {
        Err(_) => Some(format!("{host} did not resolve within {LOOKUP_TIMEOUT:?}")),
        Ok(Err(error)) => Some(format!("{host} does not resolve ({error})")),
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if allow_private {
                None
            } else {
                first_private(&addresses)
            }
        }
    }
}

/// The host of a URL as an IP address, when it is one (`[::1]` included).
pub fn literal_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn first_private(addresses: &[SocketAddr]) -> Option<String> {
    addresses.iter().find_map(|address| {
        private_range(address.ip()).map(|range| private_refusal(address.ip(), range))
    })
}

/// Resolves names as the system does, and fails the connection when any address is internal
/// (unless allowed): checked on every connection, so DNS rebinding cannot slip through.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(refusal) = first_private(&addresses) {
                return Err(format!("{host} {refusal}").into());
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The client deliveries are posted with: `timeout` per attempt, no redirects (a 3xx is a
/// failed attempt), no proxy, and the address guard.
pub fn http_client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!(
            "nexus-telemetry-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()?)
}

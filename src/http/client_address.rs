//! Which client sent a request, as far as the operator's trusted proxies vouch for it.

use std::net::{IpAddr, Ipv6Addr};

use poem::Request;

/// The client's IP address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one (any client can forge the header, so it is
/// believed only from the proxies the operator names).
pub fn client_address(request: &Request, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = request
        .remote_addr()
        .as_socket_addr()
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = request
        .headers()
        .get_all("X-Forwarded-For")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    // Right to left: each trusted hop vouches for the address before it.
    for hop in forwarded.into_iter().rev() {
        if !trusted_proxies.contains(&client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(address) => client = address,
            Err(_) => break,
        }
    }
    client
}

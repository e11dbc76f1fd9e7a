//! Who is asking, by address: the peer the listener accepted, or, when that peer is one of
//! the configured reverse proxies (`--trusted-proxy`), the address the proxies say they
//! forwarded for. Address-based limits count by this.

use crate::server::state::AppState;
use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap},
};
use ipnet::IpNet;
use std::{
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

/// The TCP peer of a request, put into its extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client's address (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client's address: `peer` itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` from the right (the hop nearest to us), the first address that is not
/// a trusted proxy. Each proxy appends the address it received from, so only the entries
/// our own proxies wrote are believed; what a client wrote to the left of them is not. An
/// entry that is not an address ends the walk at the last address believed.
pub fn client_ip(trusted: &[IpNet], headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(of(state, &parts.extensions, &parts.headers)))
    }
}

/// The client's address of a request with these extensions and headers.
pub fn of(state: &AppState, extensions: &axum::http::Extensions, headers: &HeaderMap) -> IpAddr {
    // Every request the listener serves has its peer; none is only possible for a router
    // driven without it, which then counts as one unknown address.
    let peer = extensions
        .get::<Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    client_ip(&state.cfg.limits.trusted_proxies, headers, peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal address")
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(client_ip(&[], &h, ip("198.51.100.1")), ip("198.51.100.1"));
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("literal")];
        assert_eq!(
            client_ip(&proxies, &h, ip("198.51.100.1")),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(&proxies, &h, ip("10.1.2.3")), ip("203.0.113.9"));
    }

    #[test]
    fn what_a_client_wrote_left_of_our_proxies_is_not_believed() {
        let proxies: Vec<IpNet> = vec![
            "10.0.0.1/32".parse().expect("literal"),
            "10.0.0.2/32".parse().expect("literal"),
        ];
        // The client claimed 1.1.1.1; the outer proxy saw 203.0.113.9 and the inner one
        // saw the outer proxy.
        let h = forwarded(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(&proxies, &h, ip("10.0.0.1")), ip("203.0.113.9"));
        // Garbage ends the walk at the last address believed.
        let h = forwarded(&["203.0.113.9, not-an-address"]);
        assert_eq!(client_ip(&proxies, &h, ip("10.0.0.1")), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(&proxies, &HeaderMap::new(), ip("10.0.0.1")),
            ip("10.0.0.1")
        );
    }
}

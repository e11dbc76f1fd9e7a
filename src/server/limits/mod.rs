//! What one user or one address may consume: open sockets, frames per second, sign-in
//! guesses, new accounts, bot replies. Each limit is counted where it is exact: in this
//! process for what lives only as long as a connection (a socket's slot), and per user
//! across all their sockets, never per connection.

pub mod addresses;
pub mod rate;
pub mod shared;
pub mod sockets;
pub mod stored;
pub mod users;

use std::net::{IpAddr, Ipv6Addr};

/// The address a limit counts by: an IPv4 address as it is (IPv4-mapped IPv6 addresses
/// included), an IPv6 address by its /64 network, since one subscriber is usually given a
/// whole /64 and could otherwise take a fresh address per request.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_counts_by_its_network_and_a_mapped_one_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("literal");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("literal");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("literal");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("literal");
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("literal")
        );
    }
}

//! The address guard of outbound deliveries: a subscriber's URL must not reach into our
//! own network (loopback, private ranges, link-local, cloud metadata) unless an operator
//! allowed that range.
//!
//! The check is made on the addresses a name resolves to, in the HTTP client's resolver,
//! so the address checked is the address connected to: a name that resolves to
//! `127.0.0.1` is refused as `127.0.0.1` is, and re-resolving between a check and the
//! connect cannot slip through. URLs with an address instead of a name never reach the
//! resolver, so [`AddressGuard::check_url`] checks them before sending. Redirects are
//! never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressGuard {
    allowed: Arc<Vec<IpNet>>,
}

/// A delivery URL would reach an address it may not.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{target}` resolves only to addresses deliveries may not reach ({addresses}); an operator can allow them with --webhook-allow-network"
)]
pub struct ForbiddenAddress {
    /// The host name or address.
    pub target: String,
    /// The addresses refused.
    pub addresses: String,
}

impl AddressGuard {
    /// A guard that also lets through the `allowed` networks.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// Whether a delivery may connect to `address`.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.allowed
            .iter()
            .any(|network| network.contains(&address))
            || is_public(address)
    }

    /// Refuses a URL whose host is an address deliveries may not reach (names are
    /// checked by the resolver, at connect time).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), ForbiddenAddress> {
        let host = url.host_str().unwrap_or_default();
        let Ok(address) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if self.permits(address) {
            Ok(())
        } else {
            Err(ForbiddenAddress {
                target: address.to_string(),
                addresses: address.to_string(),
            })
        }
    }
}

impl Resolve for AddressGuard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (permitted, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|address| guard.permits(address.ip()));
            if permitted.is_empty() {
                let addresses = refused
                    .iter()
                    .map(|address| address.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(ForbiddenAddress {
                    target: host,
                    addresses,
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 one.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local
/// (which holds the cloud metadata address 169.254.169.254), shared, unspecified,
/// broadcast, multicast, documentation or otherwise reserved.
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        // Unique local, fc00::/7 (holds AWS's metadata address fd00:ec2::254).
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && address.segments()[1] == 0x0db8)
        // NAT64 (64:ff9b::/96) can reach IPv4 addresses of every kind.
        || (first == 0x0064 && address.segments()[1] == 0xff9b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        let guard = AddressGuard::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "::",
        ] {
            assert!(!guard.permits(ip(refused)), "{refused} passed");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(guard.permits(ip(public)), "{public} was refused");
        }
    }

    #[test]
    fn an_allowed_network_lets_its_addresses_through() {
        let guard = AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(!guard.permits(ip("10.0.0.1")));
        let url = reqwest::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(guard.check_url(&url).is_err());
        let url = reqwest::Url::parse("http://127.0.0.1:9/hook").unwrap();
        assert!(guard.check_url(&url).is_ok());
    }
}

//! Network gating: a source may accept requests only from listed networks. Behind a reverse
//! proxy the client address comes from `X-Forwarded-For`, trusted only when the connection
//! itself comes from a configured proxy; otherwise anyone could claim any address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An IP network: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical(self.addr), canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn any_contains(nets: &[Cidr], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. `None` when the header is
/// unreadable, which callers treat as not allowed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[Cidr]) -> Option<IpAddr> {
    if !any_contains(trusted_proxies, peer) {
        return Some(canonical(peer));
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for hop in value.to_str().ok()?.split(',') {
            hops.push(hop.trim().parse::<IpAddr>().ok()?);
        }
    }
    let mut client = canonical(peer);
    for hop in hops.into_iter().rev() {
        client = canonical(hop);
        if !any_contains(trusted_proxies, client) {
            break;
        }
    }
    Some(client)
}

/// Whether a request from `peer` may reach a source with allowlist `allow` (empty: anyone).
pub fn allowed(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[Cidr], allow: &[Cidr]) -> bool {
    allow.is_empty() || client_ip(peer, headers, trusted_proxies).is_some_and(|ip| any_contains(allow, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn cidr_membership() {
        let n: Cidr = "192.30.252.0/22".parse().unwrap();
        assert!(n.contains("192.30.255.1".parse().unwrap()));
        assert!(!n.contains("192.30.251.255".parse().unwrap()));
        assert!(n.contains("::ffff:192.30.253.4".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let proxies = nets(&["10.0.0.0/8"]);
        let allow = nets(&["192.30.252.0/22"]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // Through the proxy, from GitHub.
        assert!(allowed(proxy, &xff("192.30.252.7"), &proxies, &allow));
        // A client forging the header directly is judged by its own address.
        assert!(!allowed(stranger, &xff("192.30.252.7"), &proxies, &allow));
        // A forged left-most entry does not help: the right-most untrusted hop counts.
        assert!(!allowed(
            proxy,
            &xff("192.30.252.7, 203.0.113.9"),
            &proxies,
            &allow
        ));
        // Chains of trusted proxies are walked through.
        assert!(allowed(proxy, &xff("192.30.252.7, 10.9.9.9"), &proxies, &allow));
        // Garbage fails closed.
        assert!(!allowed(proxy, &xff("not-an-ip"), &proxies, &allow));
        // No allowlist: anyone.
        assert!(allowed(stranger, &HeaderMap::new(), &proxies, &[]));
    }
}

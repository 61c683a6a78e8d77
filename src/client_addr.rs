//! Who the client is when Latchkey runs behind a reverse proxy.
//!
//! Per-address rate limits, lockouts, audit events and session records all key on the client's address.
//! Behind nginx or a load balancer every connection comes from the proxy, so trusting only the socket
//! would make per-address limits organization-wide (one attacker locks everyone out); trusting the
//! forwarding headers from anyone would let a client pick a fresh address for every guess. So the headers
//! are believed only when the connection comes from a configured trusted proxy, and then only as far as
//! the chain of trusted proxies goes: reading the hops from the right, the first address that is not a
//! trusted proxy is the client (what each trusted proxy saw), anything to its left was written by the
//! client and is ignored.
//!
//! Exactly one header is read, the one the proxies write (`trusted_proxy_header`): most proxies append to
//! `X-Forwarded-For` and pass a client's own `Forwarded` through untouched, so choosing by presence would
//! let a client name its own address.

use std::net::{IpAddr, SocketAddr};

use ::http::HeaderMap;
use ipnet::IpNet;

/// The peers whose forwarding header is believed (`trusted_proxies`), and which header that is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardingHeader,
}

/// The header the trusted proxies append the client's address to (`trusted_proxy_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl ForwardingHeader {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!(
                "expected x-forwarded-for or forwarded, got {other:?}"
            )),
        }
    }
}

impl TrustedProxies {
    /// The same proxies, believed through `header`.
    pub fn with_header(self, header: ForwardingHeader) -> Self {
        Self { header, ..self }
    }

    /// Parses a comma- or space-separated list of addresses and CIDR networks (`10.0.0.0/8, ::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let network = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is not an IP address or a CIDR network (like 10.0.0.0/8)"
                        ));
                    }
                },
            };
            networks.push(network);
        }
        Ok(Self {
            networks,
            header: ForwardingHeader::default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with `headers`.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let peer_ip = canonical(peer.ip());
        if !self.contains(peer_ip) {
            return SocketAddr::new(peer_ip, peer.port());
        }
        // The hops, oldest first, as the proxies appended them.
        let hops = match self.header {
            ForwardingHeader::XForwardedFor => x_forwarded_for_hops(headers),
            ForwardingHeader::Forwarded => forwarded_hops(headers),
        };
        let mut client = peer_ip;
        for hop in hops.iter().rev() {
            match hop {
                // The trusted proxy that wrote this hop could not say who its peer was ("unknown", an
                // obfuscated name, garbage): stop at that proxy rather than believe anything further left.
                None => break,
                Some(ip) => {
                    client = canonical(*ip);
                    if !self.contains(client) {
                        break;
                    }
                }
            }
        }
        SocketAddr::new(client, 0)
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports) is treated as the IPv4 address,
/// so one client is one key however it connected.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The `for=` of each element of every `Forwarded` header, in order; a hop whose `for` is missing or not
/// an address is `None`.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    header_elements(headers, "forwarded")
        .map(|element| {
            let element = element?;
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim())
            })?;
            parse_node(node)
        })
        .collect()
}

/// Every address of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    header_elements(headers, "x-forwarded-for")
        .map(|element| parse_node(element?))
        .collect()
}

/// The comma-separated elements of every `name` header, in order. Split as bytes, so one element of
/// garbage a client wrote (not even UTF-8) spoils only itself, not the addresses proxies appended after it.
fn header_elements<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> impl Iterator<Item = Option<&'a str>> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(|element| std::str::from_utf8(element).ok())
}

/// An RFC 7239 node (`192.0.2.1`, `"192.0.2.1:8080"`, `"[2001:db8::1]:443"`) or a bare address.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                ::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 4000)
    }

    fn forwarded_proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list)
            .unwrap()
            .with_header(ForwardingHeader::Forwarded)
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            proxies.client_addr(peer("203.0.113.9"), &h),
            peer("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_addr(peer("10.1.1.1"), &h), peer("10.1.1.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client wrote "6.6.6.6" itself; the outer proxy 192.168.1.1 saw 198.51.100.7.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")]);
        assert_eq!(
            proxies.client_addr(peer("10.0.0.2"), &h).ip(),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        assert_eq!(
            proxies.client_addr(peer("10.0.0.2"), &h).ip(),
            "198.51.100.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn only_the_configured_header_counts_and_forwarded_node_forms_parse() {
        let proxies = forwarded_proxies("127.0.0.1");
        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("For=\"192.0.2.43:47011\"", "192.0.2.43"),
            ("for=6.6.6.6, for=192.0.2.61", "192.0.2.61"),
        ];
        for (value, want) in cases {
            let h = headers(&[("forwarded", value), ("x-forwarded-for", "7.7.7.7")]);
            assert_eq!(
                proxies.client_addr(peer("127.0.0.1"), &h).ip(),
                want.parse::<IpAddr>().unwrap(),
                "{value}"
            );
        }
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_wrote_it() {
        let proxies = forwarded_proxies("10.0.0.0/8");
        let h = headers(&[("forwarded", "for=1.2.3.4, for=unknown, for=10.0.0.9")]);
        assert_eq!(
            proxies.client_addr(peer("10.0.0.2"), &h).ip(),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        // No header at all from a trusted proxy: the proxy is the client.
        assert_eq!(
            proxies
                .client_addr(peer("10.0.0.2"), &HeaderMap::new())
                .ip(),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_client_written_header_of_the_other_kind_is_ignored() {
        // nginx appends to X-Forwarded-For and passes the client's own Forwarded through.
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let h = headers(&[
            ("forwarded", "for=203.0.113.77"),
            ("x-forwarded-for", "198.51.100.4"),
        ]);
        assert_eq!(
            proxies.client_addr(peer("127.0.0.1"), &h).ip(),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        let only_forwarded = headers(&[("forwarded", "for=203.0.113.77")]);
        assert_eq!(
            proxies.client_addr(peer("127.0.0.1"), &only_forwarded).ip(),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn garbage_written_by_the_client_spoils_only_its_own_element() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            ::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.9").unwrap(),
        );
        assert_eq!(
            proxies.client_addr(peer("10.0.0.1"), &h).ip(),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.1")]);
        let mapped = SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), 1);
        assert_eq!(
            proxies.client_addr(mapped, &h).ip(),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn the_list_is_validated() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(
            TrustedProxies::parse("::ffff:10.0.0.1")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(ForwardingHeader::parse("X-Real-IP").is_err());
        assert!(
            TrustedProxies::parse("::1 fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
    }
}

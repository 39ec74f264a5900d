//! Which destinations a webhook may reach: the SSRF rule of SPEC §3, as pure functions.
//!
//! The same [`NetworkPolicy`] judges a URL when a webhook is saved, an IP literal before a
//! request, and every address DNS returns at connect time (so DNS rebinding cannot slip a
//! private address in after validation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Host-name suffixes refused unless listed in `HOOKD_ALLOW_HOSTS`.
const REFUSED_SUFFIXES: &[&str] = &[".localhost", ".internal", ".local", ".svc"];

/// A host allowed although it matches a refused name rule: exact, or `.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    Exact(String),
    Suffix(String),
}

impl HostRule {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if text.is_empty() || text == "." {
            return None;
        }
        Some(match text.strip_prefix('.') {
            Some(rest) if !rest.is_empty() => Self::Suffix(format!(".{rest}")),
            _ => Self::Exact(text),
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Suffix(suffix) => host.ends_with(suffix.as_str()),
        }
    }
}

/// The operator's exceptions to the SSRF rule, from configuration.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    /// `HOOKD_ALLOW_HTTP`: plain `http://` URLs are accepted (LAN receivers, tests).
    pub allow_http: bool,
    /// `HOOKD_ALLOW_NETWORKS`: private or loopback ranges a target may resolve to.
    pub allow_networks: Vec<IpNet>,
    /// `HOOKD_ALLOW_HOSTS`: names accepted although they match a refused name rule.
    pub allow_hosts: Vec<HostRule>,
}

impl NetworkPolicy {
    /// Whether a request may go to `ip`.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_forbidden(ip) || self.allow_networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether a host name (not an IP literal) passes the name rule.
    pub fn permits_host_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let refused =
            host == "localhost" || REFUSED_SUFFIXES.iter().any(|suffix| host.ends_with(suffix));
        !refused || self.allow_hosts.iter().any(|rule| rule.matches(&host))
    }
}

/// IPv4 addresses carried in IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are
/// judged as the IPv4 address they reach.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(embedded_v4(s[6], s[7]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The IPv4 address held in two 16-bit segments.
fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))
}

/// Loopback, private, link-local, unique-local, CGNAT, unspecified, multicast, broadcast
/// and reserved addresses: never a webhook target unless the operator allows the range.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || a >= 240 // reserved
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || (a, b, c) == (192, 0, 0) // IETF protocol assignments 192.0.0.0/24
        || (a, b, c) == (192, 0, 2) // documentation TEST-NET-1
        || (a, b, c) == (198, 51, 100) // documentation TEST-NET-2
        || (a, b, c) == (203, 0, 113) // documentation TEST-NET-3
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local
        // IPv4-compatible ::a.b.c.d (::/96, deprecated; no host is reached that way): always.
        || s[..6] == [0; 6]
        // 6to4 2002::/16 reaches the IPv4 address in its next 32 bits: judged as that one.
        || (s[0] == 0x2002 && is_forbidden_v4(embedded_v4(s[1], s[2])))
        // Teredo 2001::/32 tunnels to an address it hides (XORed): always refused.
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || s[..3] == [0x64, 0xff9b, 1] // local-use NAT64 64:ff9b:1::/48
        || s[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn refuses_every_private_kind_of_address() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_forbidden(ip(text)), "{text} should be refused");
        }
    }

    #[test]
    fn refuses_the_tunnelled_documentation_and_benchmark_forms_of_section_9() {
        for text in [
            "::127.0.0.1",     // IPv4-compatible, loopback inside
            "::10.0.0.1",      // IPv4-compatible, private inside
            "::8.8.8.8",       // IPv4-compatible: always, whatever is inside
            "2002:7f00:1::",   // 6to4 of 127.0.0.1
            "2002:a00:1::1",   // 6to4 of 10.0.0.1
            "2002:c0a8:101::", // 6to4 of 192.168.1.1
            "2001::1",         // Teredo
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1", // local-use NAT64
            "100::1",           // discard-only
            "2001:db8::1",      // documentation
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.200",
        ] {
            assert!(is_forbidden(ip(text)), "{text} should be refused");
        }
    }

    #[test]
    fn permits_public_addresses() {
        for text in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "100.128.0.1",
            "2002:808:808::1", // 6to4 of 8.8.8.8
            "2001:4860:4860::8888",
            "198.20.0.1",
            "192.0.1.1",
            "203.0.114.1",
            "64:ff9b:2::1",
            "100:0:0:1::1",
        ] {
            assert!(!is_forbidden(ip(text)), "{text} should be permitted");
        }
    }

    #[test]
    fn allowed_networks_open_a_private_range_and_nothing_else() {
        let policy = NetworkPolicy {
            allow_networks: vec!["10.1.2.0/24".parse().unwrap()],
            ..NetworkPolicy::default()
        };
        assert!(policy.permits_ip(ip("10.1.2.7")));
        assert!(policy.permits_ip(ip("::ffff:10.1.2.7")));
        assert!(!policy.permits_ip(ip("10.1.3.7")));
    }

    #[test]
    fn host_name_rules_and_their_exceptions() {
        let policy = NetworkPolicy {
            allow_hosts: vec![
                HostRule::parse("his.clinic.local").unwrap(),
                HostRule::parse(".ward.internal").unwrap(),
            ],
            ..NetworkPolicy::default()
        };
        for refused in [
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "x.internal",
            "printer.local",
            "api.svc",
        ] {
            assert!(!policy.permits_host_name(refused), "{refused}");
        }
        for allowed in [
            "his.clinic.local",
            "a.ward.internal",
            "example.com",
            "local.example.com",
        ] {
            assert!(policy.permits_host_name(allowed), "{allowed}");
        }
    }

    proptest! {
        #[test]
        fn every_ipv4_is_judged_like_its_mapped_ipv6_form(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            prop_assert_eq!(is_forbidden(IpAddr::V4(v4)), is_forbidden(IpAddr::V6(v4.to_ipv6_mapped())));
        }

        #[test]
        fn every_6to4_address_is_judged_like_the_ipv4_it_carries(raw in any::<u32>(), tail in any::<u64>()) {
            let v4 = Ipv4Addr::from(raw);
            let bits = (0x2002_u128 << 112) | (u128::from(raw) << 80) | u128::from(tail);
            prop_assert_eq!(is_forbidden(IpAddr::V6(Ipv6Addr::from(bits))), is_forbidden(IpAddr::V4(v4)));
        }

        #[test]
        fn ipv4_compatible_and_teredo_addresses_are_always_refused(raw in any::<u32>(), rest in any::<u128>()) {
            prop_assert!(is_forbidden(IpAddr::V6(Ipv6Addr::from(u128::from(raw)))));
            let teredo = (0x2001_u128 << 112) | (rest >> 32);
            prop_assert!(is_forbidden(IpAddr::V6(Ipv6Addr::from(teredo))));
        }

        #[test]
        fn documentation_and_benchmark_ranges_are_refused_throughout(low in any::<u32>(), rest in any::<u128>()) {
            let benchmark = Ipv4Addr::from((198_u32 << 24) | (18 << 16) | (low & 0x1_ffff));
            prop_assert!(is_forbidden(IpAddr::V4(benchmark)));
            for net in [[192, 0, 0], [192, 0, 2], [198, 51, 100], [203, 0, 113]] {
                let [a, b, c] = net;
                prop_assert!(is_forbidden(IpAddr::V4(Ipv4Addr::new(a, b, c, low as u8))));
            }
            let documentation = (0x2001_0db8_u128 << 96) | (rest >> 32);
            prop_assert!(is_forbidden(IpAddr::V6(Ipv6Addr::from(documentation))));
            let nat64_local = (0x0064_ff9b_0001_u128 << 80) | (rest >> 48);
            prop_assert!(is_forbidden(IpAddr::V6(Ipv6Addr::from(nat64_local))));
            let discard = (0x0100_u128 << 112) | (rest >> 64);
            prop_assert!(is_forbidden(IpAddr::V6(Ipv6Addr::from(discard))));
        }

        #[test]
        fn the_ten_slash_eight_range_is_always_refused(b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
            prop_assert!(is_forbidden(IpAddr::V4(Ipv4Addr::new(10, b, c, d))));
        }
    }
}

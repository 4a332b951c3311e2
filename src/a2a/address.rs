//! Which addresses the A2A proxy may call.
//!
//! Always refused (whatever the configuration): unspecified, broadcast and multicast
//! addresses, IPv4 link-local `169.254.0.0/16` (where every major cloud serves instance
//! metadata, e.g. `169.254.169.254`), IPv6 link-local `fe80::/10`, Alibaba's metadata address
//! `100.100.100.200`, AWS's IPv6 metadata address `fd00:ec2::254`, and IPv4-mapped or
//! IPv4-compatible IPv6 forms of any refused IPv4 address.
//!
//! Refused only when private addresses are not allowed (`A2A_ALLOW_PRIVATE_ADDRESSES=0`):
//! loopback (`127.0.0.0/8`, `::1`), RFC 1918 private ranges (`10/8`, `172.16/12`,
//! `192.168/16`), shared address space (`100.64.0.0/10`, RFC 6598), IPv6 unique local
//! addresses (`fc00::/7`, RFC 4193) and `0.0.0.0/8`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The rule an address broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {kind} address")]
pub struct Refusal {
    /// The refused address (after resolving the URL's host, if it was a name).
    pub ip: IpAddr,
    /// The range it falls in, as words for the error message (e.g. "link-local", "private").
    pub kind: &'static str,
}

/// The address rules of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow loopback and private ranges (agents beside the server).
    pub allow_private: bool,
}

const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

impl AddressPolicy {
    /// `Ok` when `ip` may be called.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let refuse = |kind| Err(Refusal { ip, kind });
        match ip {
            IpAddr::V4(v4) => match self.v4_kind(v4) {
                Some(kind) => refuse(kind),
                None => Ok(()),
            },
            IpAddr::V6(v6) => {
                // ::ffff:a.b.c.d and ::a.b.c.d are IPv4 in disguise.
                if let Some(v4) = embedded_v4(v6) {
                    return match self.v4_kind(v4) {
                        Some(kind) => refuse(kind),
                        None => Ok(()),
                    };
                }
                if v6 == AWS_METADATA_V6 {
                    return refuse("cloud metadata");
                }
                let first = v6.segments()[0];
                if v6.is_unspecified() || v6.is_multicast() {
                    return refuse("non-unicast");
                }
                if first & 0xffc0 == 0xfe80 {
                    return refuse("link-local");
                }
                if !self.allow_private {
                    if v6.is_loopback() {
                        return refuse("loopback");
                    }
                    if first & 0xfe00 == 0xfc00 {
                        return refuse("private (unique local)");
                    }
                }
                Ok(())
            }
        }
    }

    fn v4_kind(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let o = ip.octets();
        if ip == ALIBABA_METADATA {
            return Some("cloud metadata");
        }
        if ip.is_link_local() {
            return Some("link-local");
        }
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Some("non-unicast");
        }
        if !self.allow_private {
            if ip.is_loopback() {
                return Some("loopback");
            }
            if ip.is_private() {
                return Some("private");
            }
            if o[0] == 100 && (o[1] & 0xc0) == 64 {
                return Some("shared (carrier-grade NAT)");
            }
            if o[0] == 0 {
                return Some("this-network");
            }
        }
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`) or IPv4-compatible (`::/96`, not
/// `::` or `::1`) IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    if s[..6].iter().all(|x| *x == 0) && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const OPEN: AddressPolicy = AddressPolicy {
        allow_private: true,
    };
    const STRICT: AddressPolicy = AddressPolicy {
        allow_private: false,
    };

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
        ] {
            assert!(OPEN.check(ip(bad)).is_err(), "{bad}");
            assert!(STRICT.check(ip(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_and_private_follow_the_switch() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(OPEN.check(ip(private)).is_ok(), "{private}");
            assert!(STRICT.check(ip(private)).is_err(), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(STRICT.check(ip(public)).is_ok(), "{public}");
        }
    }
}

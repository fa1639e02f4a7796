//! Where webhooks may go: `https` URLs whose host resolves, at send time,
//! to public addresses only. Loopback over `http` is allowed only when the
//! operator says so (tests, a local receiver); private, link-local,
//! shared, multicast and unspecified addresses never are. Names are
//! resolved by [`GuardedResolver`], so the address connected to is the
//! one checked (no second lookup an attacker's DNS could answer
//! differently).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL or address is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether webhooks may reach `ip`: loopback only when `allow_loopback`.
pub fn allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (RFC 6598), benchmarking (RFC 2544),
        // reserved (240/4).
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // NAT64 and 6to4 can reach any IPv4 address: refused.
        || first == 0x0064
        || first == 0x2002
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Checks an endpoint URL when it is registered: `https`, or `http` to a
/// loopback host when `allow_loopback`; no credentials in it; a host that
/// is not a refused address literal.
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<url::Url, Refused> {
    let url = url::Url::parse(raw).map_err(|e| Refused(format!("url {raw:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused("url must not carry credentials".into()));
    }
    let host = url
        .host()
        .ok_or_else(|| Refused("url must name a host".into()))?;
    let literal = match &host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        url::Host::Domain(_) => None,
    };
    let loopback_host = match (&host, literal) {
        (_, Some(ip)) => ip.is_loopback(),
        (url::Host::Domain(d), None) => d.eq_ignore_ascii_case("localhost"),
        _ => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback_host => {}
        "http" => {
            return Err(Refused(
                "url must be https (http is allowed only to loopback, when the server allows it)"
                    .into(),
            ));
        }
        other => return Err(Refused(format!("url scheme {other:?} is not https"))),
    }
    if let Some(ip) = literal
        && !allowed(ip, allow_loopback)
    {
        return Err(Refused(format!(
            "url host {ip} is a private, loopback or reserved address"
        )));
    }
    Ok(url)
}

/// A resolver that drops every refused address, and fails when none is
/// left.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    /// Whether loopback addresses are allowed.
    pub allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed(a.ip(), allow_loopback))
                .collect();
            if found.is_empty() {
                return Err(
                    Box::new(Refused(format!("{host} resolves to no public address")))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "127.0.0.1",
            "::1",
        ] {
            assert!(!allowed(bad.parse().unwrap(), false), "{bad} allowed");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(allowed(good.parse().unwrap(), false), "{good} refused");
        }
        assert!(allowed("127.0.0.1".parse().unwrap(), true));
        assert!(allowed("::ffff:127.0.0.1".parse().unwrap(), true));
        assert!(!allowed("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn urls_are_https_or_loopback_http_when_allowed() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false).is_err());
        assert!(check_url("http://hooks.example.com/x", true).is_err());
        assert!(check_url("http://127.0.0.1:9000/x", false).is_err());
        assert!(check_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_url("http://localhost:9000/x", true).is_ok());
        assert!(check_url("https://169.254.169.254/latest", true).is_err());
        assert!(check_url("https://[fd00::1]/", false).is_err());
        assert!(check_url("https://user:pw@hooks.example.com/", false).is_err());
        assert!(check_url("ftp://hooks.example.com/", false).is_err());
        assert!(check_url("not a url", false).is_err());
    }
}

//! Outbound HTTP to addresses that users configure: a workspace's git remote today,
//! webhooks and integrations (Jira, Slack) later.
//!
//! A URL a user typed must not become a way into the machine or its network: a request to
//! `http://127.0.0.1:6379/`, to a private address of the cluster, or to a cloud metadata
//! service (`169.254.169.254`) whose answer or error the user then reads back. [`Outbound`]
//! is the one policy for such requests: its [`Outbound::client`] resolves names itself and
//! connects only to public addresses (or to networks an instance admin allowed, e.g.
//! `10.0.0.0/8` for an internal git server), refuses URLs whose host is such an address
//! written out, checks every redirect again, and never goes through a proxy (which would
//! resolve the name where Quire cannot check it).
//!
//! Resolving and checking at connection time (not when the URL is saved) also defeats DNS
//! rebinding: the addresses checked are the addresses connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Which addresses outbound requests from user settings may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// Networks allowed beyond the public internet (instance setting `outbound_allow`).
    allowed: Vec<IpNet>,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The instance setting that allows more addresses, named in every refusal.
pub const SETTING: &str = "--outbound-allow";

impl Outbound {
    /// Public addresses only.
    pub fn public_only() -> Outbound {
        Outbound::default()
    }

    /// Public addresses and these networks.
    pub fn allowing(allowed: Vec<IpNet>) -> Outbound {
        Outbound { allowed }
    }

    /// Parses an allow-list: addresses or networks, comma-separated
    /// (`127.0.0.1, 10.0.0.0/8, fd00::/8`).
    pub fn parse(list: &str) -> Result<Outbound, String> {
        let mut allowed = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("'{item}' is not an address or a network such as 10.0.0.0/8")),
                },
            };
            allowed.push(net.trunc());
        }
        Ok(Outbound { allowed })
    }

    /// The networks allowed beyond the public internet.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a request may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.permits(ip) {
            return Ok(());
        }
        Err(Refused(format!(
            "{host} is {} address, which requests from user settings may not reach; an instance admin may allow it with {SETTING}",
            kind(canonical(ip))
        )))
    }

    /// Checks a URL before it is requested: `http` or `https`, and a host that is not a
    /// refused address written out (names are checked when they are resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!("{url}: only http:// and https:// URLs are requested")));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(Refused(format!("{url} names no host")));
        };
        // The URL parser has already normalised `0x7f.1` and `2130706433` to `127.0.0.1`.
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => self.check_ip(host, ip),
            Err(_) => Ok(()),
        }
    }

    /// [`Outbound::check_url`] for a URL as text.
    pub fn check(&self, url: &str) -> Result<(), Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("not a URL ({e}): {url}")))?;
        self.check_url(&parsed)
    }

    /// A client from `builder` that keeps to this policy: names resolved and checked by
    /// Quire, no proxy, at most 5 redirects, each checked like the first URL.
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error(Refused("more than 5 redirects".into()));
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        builder.no_proxy().redirect(redirects).dns_resolver(Arc::new(Resolver(self.clone()))).build()
    }
}

/// Resolves with the system's resolver and keeps the permitted addresses.
struct Resolver(Outbound);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(&host, a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if permitted.is_empty() {
                let why = refused.unwrap_or_else(|| Refused(format!("{host} has no address")));
                return Err(Box::new(why) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is on the public internet: not loopback, private, shared (CGNAT),
/// link-local (which holds the cloud metadata services), unspecified, multicast,
/// broadcast, documentation, benchmarking or reserved, nor an IPv6 form of those.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT; Alibaba's metadata)
        || ip.is_link_local() // 169.254.0.0/16: AWS, GCP and Azure metadata
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || ip.is_multicast()
        || a >= 240) // reserved and broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address: judge that one.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254)
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]) // ::/96, IPv4-compatible (deprecated)
}

/// What kind of address `ip` is, for messages.
fn kind(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "a loopback",
        IpAddr::V6(v6) if v6.is_loopback() => "a loopback",
        IpAddr::V4(v4) if v4.is_private() => "a private",
        IpAddr::V4(v4) if v4.is_link_local() => "a link-local (cloud metadata)",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "a link-local",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => "a private (unique local)",
        _ => "a non-public",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_pass_by_default() {
        let refused = [
            "127.0.0.1",
            "127.8.9.1",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "ff02::1",
        ];
        let policy = Outbound::public_only();
        for r in refused {
            assert!(!policy.permits(ip(r)), "{r} must be refused");
        }
        for ok in
            ["1.1.1.1", "140.82.112.3", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
        {
            assert!(policy.permits(ip(ok)), "{ok} is public");
        }
    }

    #[test]
    fn an_allow_list_opens_what_it_names() {
        let policy = Outbound::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        assert!(policy.permits(ip("127.0.0.1")) && policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("10.200.0.1")));
        assert!(!policy.permits(ip("127.0.0.2")) && !policy.permits(ip("169.254.169.254")));
        assert!(Outbound::parse("10.0.0.0/33").is_err() && Outbound::parse("intranet").is_err());
        assert_eq!(Outbound::parse("").unwrap(), Outbound::public_only());
    }

    #[test]
    fn urls_with_refused_addresses_written_out_are_refused() {
        let policy = Outbound::public_only();
        let check = |u: &str| policy.check_url(&reqwest::Url::parse(u).unwrap());
        for bad in [
            "http://127.0.0.1:6379/",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://0x7f.1/",
            "http://2130706433/",
            "file:///etc/passwd",
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.0.contains(SETTING) || e.0.contains("only http"), "{bad}: {e}");
        }
        assert!(check("https://github.com/team/repo.git").is_ok());
    }

    #[tokio::test]
    async fn the_client_refuses_names_that_resolve_to_refused_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        });
        let refused = Outbound::public_only().client(reqwest::Client::builder()).unwrap();
        let e = refused.get(format!("http://localhost:{port}/")).send().await.unwrap_err();
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains(SETTING), "{chain}");
        let allowed = Outbound::parse("127.0.0.1,::1").unwrap().client(reqwest::Client::builder()).unwrap();
        let body = allowed.get(format!("http://localhost:{port}/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "ok");
    }
}

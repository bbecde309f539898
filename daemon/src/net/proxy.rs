//! Proxy settings: `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (and their lowercase forms), read
//! once from an environment map into a [`ProxySettings`] value that [`super::Net`] is built with.
//!
//! Reading them once, from a map the caller hands over, keeps them explicit: the daemon reads
//! the process environment at start, tests pass their own settings (a test never sets process
//! variables, which every thread shares). A lowercase variable wins over its uppercase form, as
//! curl does. Only `http://` proxies are spoken to (CONNECT for `https://` targets, absolute-form
//! requests for `http://` ones); a proxy URL with another scheme is refused when read, never
//! ignored. `NO_PROXY` takes host names (matching the name and its subdomains; a leading `.` or
//! `*.` means the same), IP addresses, CIDR ranges and `*`; loopback is not exempt unless listed.
//!
//! This module must never show a proxy's user information (it is a credential).

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;

/// Why a proxy variable cannot be used.
#[derive(Clone, Debug, thiserror::Error)]
#[error("environment variable {var}: {message}")]
pub struct ProxyError {
    pub var: String,
    pub message: String,
}

/// A proxy to go through.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// Host name or IP address (without brackets).
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value (`Basic …`) from the URL's user information.
    authorization: Option<String>,
}

impl ProxyUrl {
    /// Parse `http://[user:pass@]host[:port][/]` (a value without a scheme is taken as http).
    pub fn parse(value: &str) -> Result<ProxyUrl, String> {
        let value = value.trim();
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "proxy scheme `{scheme}` is not supported (only http:// proxies; readyd \
                     tunnels https through them with CONNECT)"
                ));
            }
            None => value,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| "a proxy URL needs a host (http://host:port)".to_owned())?;
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("invalid proxy port `{port}`"))?,
            None => 80,
        };
        let authorization = userinfo.map(|userinfo| {
            let decoded = percent_encoding::percent_decode_str(userinfo).decode_utf8_lossy();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes())
            )
        });
        Ok(ProxyUrl {
            host: host.to_ascii_lowercase(),
            port,
            authorization,
        })
    }

    /// `host:port` as a CONNECT target or socket address (IPv6 in brackets).
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The `Proxy-Authorization` header value, when the URL had user information.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

/// Shown as `http://host:port`: never the user information.
impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// One `NO_PROXY` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bypass {
    All,
    /// The name itself and every subdomain.
    Domain(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

/// `NO_PROXY`: the targets that are reached directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy(Vec<Bypass>);

impl NoProxy {
    /// Parse a comma-separated `NO_PROXY` value; entries that mean nothing are skipped.
    pub fn parse(value: &str) -> NoProxy {
        let mut entries = Vec::new();
        for entry in value.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                entries.push(Bypass::All);
                continue;
            }
            if let Some((ip, bits)) = entry.split_once('/')
                && let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
            {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if bits <= max {
                    entries.push(Bypass::Cidr(ip, bits));
                }
                continue;
            }
            let bare = entry.trim_start_matches("*.").trim_start_matches('.');
            let host = match split_host_port(bare) {
                Some((host, _)) => host.to_owned(),
                None => continue,
            };
            match host.parse::<IpAddr>() {
                Ok(ip) => entries.push(Bypass::Ip(ip)),
                Err(_) => entries.push(Bypass::Domain(host)),
            }
        }
        NoProxy(entries)
    }

    /// Whether `host` (a name or an IP address, without brackets) is reached directly.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.0.iter().any(|bypass| match bypass {
            Bypass::All => true,
            Bypass::Domain(domain) => {
                host == *domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.'))
            }
            Bypass::Ip(entry) => ip == Some(*entry),
            Bypass::Cidr(net, bits) => ip.is_some_and(|ip| in_cidr(ip, *net, *bits)),
        })
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Which proxy, if any, each kind of target goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// For `https://` targets (`HTTPS_PROXY`), through a CONNECT tunnel.
    pub https: Option<ProxyUrl>,
    /// For `http://` targets (`HTTP_PROXY`), with absolute-form requests.
    pub http: Option<ProxyUrl>,
    pub no_proxy: NoProxy,
}

impl ProxySettings {
    /// No proxy at all.
    pub fn direct() -> ProxySettings {
        ProxySettings::default()
    }

    /// The settings named by `lookup` (an environment): `https_proxy`/`HTTPS_PROXY`,
    /// `http_proxy`/`HTTP_PROXY`, `no_proxy`/`NO_PROXY`, lowercase first.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxySettings, ProxyError> {
        let read = |lower: &str, upper: &str| {
            [lower, upper].into_iter().find_map(|var| {
                lookup(var)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (var.to_owned(), v))
            })
        };
        let proxy = |lower: &str, upper: &str| -> Result<Option<ProxyUrl>, ProxyError> {
            match read(lower, upper) {
                Some((var, value)) => ProxyUrl::parse(&value)
                    .map(Some)
                    .map_err(|message| ProxyError { var, message }),
                None => Ok(None),
            }
        };
        Ok(ProxySettings {
            https: proxy("https_proxy", "HTTPS_PROXY")?,
            http: proxy("http_proxy", "HTTP_PROXY")?,
            no_proxy: read("no_proxy", "NO_PROXY")
                .map(|(_, v)| NoProxy::parse(&v))
                .unwrap_or_default(),
        })
    }

    /// The settings of this process's environment.
    pub fn from_process_env() -> Result<ProxySettings, ProxyError> {
        ProxySettings::from_lookup(|var| std::env::var(var).ok())
    }

    /// The proxy for a target (`https` or not) on `host`, unless `NO_PROXY` exempts it.
    pub fn for_target(&self, https: bool, host: &str) -> Option<&ProxyUrl> {
        let proxy = if https { &self.https } else { &self.http };
        proxy.as_ref().filter(|_| !self.no_proxy.matches(host))
    }
}

/// `host[:port]`, with IPv6 in brackets, split; `None` without a host.
fn split_host_port(hostport: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':');
        return (!host.is_empty()).then_some((host, port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((host, _)) if host.contains(':') => (hostport, None),
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    };
    (!host.is_empty()).then_some((host, port))
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<ProxySettings, ProxyError> {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxySettings::from_lookup(|var| env.get(var).cloned())
    }

    #[test]
    fn lowercase_wins_and_each_scheme_has_its_proxy() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://upper.test:3128"),
            ("https_proxy", "http://lower.test:3129"),
            ("HTTP_PROXY", "plain.test:8080"),
        ])
        .unwrap();
        assert_eq!(s.https.as_ref().unwrap().authority(), "lower.test:3129");
        assert_eq!(s.http.as_ref().unwrap().authority(), "plain.test:8080");
        assert_eq!(
            s.for_target(true, "x.test").unwrap().host,
            "lower.test",
            "https targets use HTTPS_PROXY"
        );
        assert_eq!(s.for_target(false, "x.test").unwrap().host, "plain.test");
        assert_eq!(settings(&[]).unwrap(), ProxySettings::direct());
        assert_eq!(settings(&[("HTTPS_PROXY", "  ")]).unwrap().https, None);
    }

    #[test]
    fn no_proxy_matches_names_subdomains_ips_and_ranges() {
        let n = NoProxy::parse(
            " internal.example, .corp.test,*.svc, 10.1.2.3, 192.168.0.0/16, [::1]:8080, localhost:99 ",
        );
        for direct in [
            "internal.example",
            "a.internal.example",
            "corp.test",
            "x.corp.test",
            "a.b.svc",
            "10.1.2.3",
            "192.168.44.1",
            "::1",
            "localhost",
            "INTERNAL.example.",
        ] {
            assert!(n.matches(direct), "{direct} should bypass");
        }
        for proxied in [
            "notinternal.example",
            "example",
            "10.1.2.4",
            "192.169.0.1",
            "127.0.0.1",
            "svc.evil",
        ] {
            assert!(!n.matches(proxied), "{proxied} should be proxied");
        }
        assert!(NoProxy::parse("*").matches("anything.test"));
        let s = settings(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "direct.test")]).unwrap();
        assert!(s.for_target(true, "direct.test").is_none());
        assert!(s.for_target(true, "other.test").is_some());
    }

    #[test]
    fn proxy_urls_are_parsed_strictly_and_never_show_credentials() {
        let p = ProxyUrl::parse("http://user:p%40ss@Proxy.Test:3128/").unwrap();
        assert_eq!(p.authority(), "proxy.test:3128");
        // base64("user:p@ss")
        assert_eq!(p.authorization(), Some("Basic dXNlcjpwQHNz"));
        assert_eq!(p.to_string(), "http://proxy.test:3128");
        assert!(!format!("{p:?}").contains("user"));
        assert_eq!(
            ProxyUrl::parse("http://[::1]:8080").unwrap().authority(),
            "[::1]:8080"
        );
        assert_eq!(ProxyUrl::parse("proxy.test").unwrap().port, 80);
        let err = settings(&[("HTTPS_PROXY", "https://proxy.test")]).unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
        assert!(err.to_string().contains("only http://"), "{err}");
        assert!(settings(&[("http_proxy", "socks5://p:1")]).is_err());
        assert!(settings(&[("http_proxy", "http://p:notaport")]).is_err());
        assert!(settings(&[("http_proxy", "http://:80")]).is_err());
    }
}

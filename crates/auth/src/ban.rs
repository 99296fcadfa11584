//! Ban lists: one `client ID`, `user NAME` or `address CIDR` per line
//! (`address 10.0.0.0/8`, `address 2001:db8::/32`, or one address); blank
//! lines and lines that start with `#` are skipped.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use crate::FileError;

/// A parsed ban list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bans {
    clients: HashSet<String>,
    users: HashSet<String>,
    nets: Vec<(IpAddr, u8)>,
}

/// Which line refused a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Banned {
    Client(String),
    User(String),
    Address(IpAddr, u8),
}

impl fmt::Display for Banned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Banned::Client(id) => write!(f, "client {id}"),
            Banned::User(name) => write!(f, "user {name}"),
            Banned::Address(a, len) => write!(f, "address {a}/{len}"),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Bans {
    pub fn parse(text: &str) -> Result<Bans, FileError> {
        let mut bans = Bans::default();
        for (n, raw) in text.lines().enumerate() {
            let err = |reason: String| FileError {
                line: n + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line
                .split_once([' ', '\t'])
                .map(|(w, r)| (w, r.trim()))
                .unwrap_or((line, ""));
            if rest.is_empty() {
                return Err(err(format!("`{word}` needs a value")));
            }
            match word {
                "client" => {
                    bans.clients.insert(rest.to_owned());
                }
                "user" => {
                    bans.users.insert(rest.to_owned());
                }
                "address" => {
                    let (addr, len) = match rest.split_once('/') {
                        Some((a, l)) => (a, Some(l)),
                        None => (rest, None),
                    };
                    let addr: IpAddr = addr
                        .parse()
                        .map_err(|_| err(format!("{addr:?} is not an IP address")))?;
                    let addr = addr.to_canonical();
                    let max = if addr.is_ipv4() { 32 } else { 128 };
                    let len = match len {
                        None => max,
                        Some(l) => {
                            l.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(|| {
                                err(format!("/{l}: a prefix length is 0 to {max}"))
                            })?
                        }
                    };
                    bans.nets.push((addr, len));
                }
                _ => {
                    return Err(err(
                        "expected `client ID`, `user NAME` or `address CIDR`".to_owned()
                    ));
                }
            }
        }
        Ok(bans)
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.users.is_empty() && self.nets.is_empty()
    }

    /// The line that refuses this client, if one does.
    pub fn check(
        &self,
        client_id: &str,
        username: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Option<Banned> {
        if self.clients.contains(client_id) {
            return Some(Banned::Client(client_id.to_owned()));
        }
        if let Some(u) = username.filter(|u| self.users.contains(*u)) {
            return Some(Banned::User(u.to_owned()));
        }
        let ip = ip?.to_canonical();
        self.nets
            .iter()
            .find(|(net, len)| in_net(ip, *net, *len))
            .map(|&(net, len)| Banned::Address(net, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_line_bans() {
        let b = Bans::parse(
            "# bans\nclient bad-device\nuser mallory\naddress 10.1.0.0/16\naddress 2001:db8::/32\naddress 192.0.2.7\n",
        )
        .unwrap();
        assert_eq!(
            b.check("bad-device", None, None),
            Some(Banned::Client("bad-device".into()))
        );
        assert_eq!(
            b.check("ok", Some("mallory"), None),
            Some(Banned::User("mallory".into()))
        );
        assert!(
            b.check("ok", Some("alice"), "10.1.200.3".parse().ok())
                .is_some()
        );
        assert!(b.check("ok", None, "10.2.0.1".parse().ok()).is_none());
        assert!(b.check("ok", None, "2001:db8:1::1".parse().ok()).is_some());
        assert!(b.check("ok", None, "2001:db9::1".parse().ok()).is_none());
        assert!(b.check("ok", None, "192.0.2.7".parse().ok()).is_some());
        assert!(b.check("ok", None, "192.0.2.8".parse().ok()).is_none());
        // An IPv4 client on an IPv6 socket.
        assert!(
            b.check("ok", None, "::ffff:10.1.0.1".parse().ok())
                .is_some()
        );
        let shown = b
            .check("ok", None, "10.1.0.1".parse().ok())
            .unwrap()
            .to_string();
        assert_eq!(shown, "address 10.1.0.0/16");
    }

    #[test]
    fn zero_prefix_bans_every_address_of_its_family() {
        let b = Bans::parse("address 0.0.0.0/0\n").unwrap();
        assert!(b.check("x", None, "203.0.113.9".parse().ok()).is_some());
        assert!(b.check("x", None, "::1".parse().ok()).is_none());
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, line, want) in [
            ("client\n", 1, "needs a value"),
            ("\naddress 10.0.0.0/33\n", 2, "0 to 32"),
            ("address ::/129\n", 1, "0 to 128"),
            ("address example.com\n", 1, "not an IP"),
            ("ip 1.2.3.4\n", 1, "expected"),
        ] {
            let e = Bans::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(want), "{text:?}: {e}");
        }
    }
}

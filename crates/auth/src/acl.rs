//! ACL files in Mosquitto's syntax, decided as Mosquitto 2.0 decides them:
//!
//! - `user NAME` starts a user's section; `topic [read|write|readwrite|deny]
//!   TOPIC` lines before the first `user` are for anonymous clients, later
//!   ones for the user above them; `pattern [ACCESS] TOPIC` lines are for
//!   every client, with `%u` the user name and `%c` the client id; `#`
//!   starts a comment line. No access word means `readwrite`.
//! - A client's own lines are looked at first, then the patterns (a
//!   pattern with `%u` only when the client has a user name). In each, a
//!   `deny` line that matches the topic refuses, whatever its place; else
//!   the first line matching with the access allows; nothing matching
//!   refuses.
//! - A user name or client id with `+` or `#` gets nothing from patterns
//!   (it could widen them); nobody may write to `$SYS/...` but the bridge
//!   status topics `$SYS/broker/connection/+/state`.
//!
//! Subscriptions are Strata's own addition: Mosquitto 2.0 grants every
//! SUBSCRIBE and only filters deliveries. Strata refuses a filter that no
//! readable line could ever deliver from, or that a `deny` line of the
//! client's own covers entirely, so that a client learns at once (0x87)
//! rather than waiting for messages that never come; each delivery is
//! still decided topic by topic, so a granted `#` leaks nothing.

use std::collections::HashMap;

use crate::FileError;
use crate::topic::{covers, intersects, matches};

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages published to it.
    Read,
    /// Publish to it.
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Deny,
    Read,
    Write,
    ReadWrite,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Grant::ReadWrite, _) | (Grant::Read, Access::Read) | (Grant::Write, Access::Write)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    topic: String,
}

/// Rules in the order they are looked at: `deny` lines first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules(Vec<Rule>);

impl Rules {
    fn push(&mut self, rule: Rule) {
        if rule.grant == Grant::Deny {
            let at = self.0.iter().take_while(|r| r.grant == Grant::Deny).count();
            self.0.insert(at, rule);
        } else {
            self.0.push(rule);
        }
    }

    /// `Some(allowed)` once a rule decides.
    fn decide(&self, topic: &str, access: Access) -> Option<bool> {
        for r in &self.0 {
            if matches(&r.topic, topic) {
                if r.grant == Grant::Deny {
                    return Some(false);
                }
                if r.grant.allows(access) {
                    return Some(true);
                }
            }
        }
        None
    }

    fn may_read_under(&self, filter: &str) -> bool {
        self.0
            .iter()
            .any(|r| r.grant.allows(Access::Read) && intersects(&r.topic, filter))
    }

    fn denies_all_of(&self, filter: &str) -> bool {
        self.0
            .iter()
            .any(|r| r.grant == Grant::Deny && covers(&r.topic, filter))
    }
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Rules,
    users: HashMap<String, Rules>,
    patterns: Rules,
    lines: usize,
}

/// Whether `topic` is a valid filter for an ACL line: `#` alone and last,
/// `+` alone in its level.
pub(crate) fn valid_filter(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("the topic is empty");
    }
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("# must be a whole level, and the last");
        }
        if l.contains('+') && *l != "+" {
            return Err("+ must be a whole level");
        }
    }
    Ok(())
}

fn grant(word: &str) -> Option<Grant> {
    match word {
        "read" => Some(Grant::Read),
        "write" => Some(Grant::Write),
        "readwrite" => Some(Grant::ReadWrite),
        "deny" => Some(Grant::Deny),
        _ => None,
    }
}

impl Acl {
    /// Reads a file's text.
    pub fn parse(text: &str) -> Result<Acl, FileError> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let err = |reason: &str| FileError {
                line: n + 1,
                reason: reason.to_owned(),
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line
                .split_once([' ', '\t'])
                .map(|(w, r)| (w, r.trim_start()))
                .unwrap_or((line, ""));
            match word {
                "user" => {
                    if rest.is_empty() {
                        return Err(err("`user` needs a user name"));
                    }
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    // As Mosquitto reads it: one word is the topic
                    // (readwrite); with more, the first is the access and
                    // the rest the topic.
                    let (grant, topic) = match rest.split_once([' ', '\t']) {
                        Some((w, t)) => (
                            grant(w).ok_or_else(|| {
                                err("the access is read, write, readwrite or deny (a topic with spaces needs one before it)")
                            })?,
                            t.trim_start(),
                        ),
                        None if grant(rest).is_some() => {
                            return Err(err("no topic after the access word"));
                        }
                        None => (Grant::ReadWrite, rest),
                    };
                    if topic.is_empty() {
                        return Err(err("a rule is `topic [read|write|readwrite|deny] TOPIC`"));
                    }
                    valid_filter(topic).map_err(err)?;
                    let rule = Rule {
                        grant,
                        topic: topic.to_owned(),
                    };
                    acl.lines += 1;
                    if word == "pattern" {
                        acl.patterns.push(rule);
                    } else {
                        match &user {
                            Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                            None => acl.anonymous.push(rule),
                        }
                    }
                }
                _ => {
                    return Err(err(
                        "expected `user NAME`, `topic [read|write|readwrite|deny] TOPIC` or `pattern [read|write|readwrite|deny] TOPIC`",
                    ));
                }
            }
        }
        Ok(acl)
    }

    /// How many `topic` and `pattern` lines the file has.
    pub fn rules(&self) -> usize {
        self.lines
    }

    /// One client's rules: its section (the anonymous one without a user
    /// name) and the patterns, with `%u` and `%c` filled in.
    pub fn for_client(&self, username: Option<&str>, client_id: &str) -> ClientAcl {
        let own = match username {
            Some(u) => self.users.get(u).cloned().unwrap_or_default(),
            None => self.anonymous.clone(),
        };
        let unsafe_name = |s: &str| s.contains(['+', '#']);
        let patterns_refused = !self.patterns.0.is_empty()
            && (username.is_some_and(unsafe_name) || unsafe_name(client_id));
        let mut patterns = Rules::default();
        if !patterns_refused {
            for r in &self.patterns.0 {
                if r.topic.contains("%u") && username.is_none() {
                    continue;
                }
                patterns.push(Rule {
                    grant: r.grant,
                    topic: substitute(&r.topic, username.unwrap_or(""), client_id),
                });
            }
        }
        ClientAcl { own, patterns }
    }
}

/// Whether a client may ever write to `topic`: not to `$SYS/...`, but for
/// the bridge status topics `$SYS/broker/connection/+/state` (Mosquitto's
/// one exception, which the ACL must still grant).
pub(crate) fn sys_writable(topic: &str) -> bool {
    !topic.starts_with("$SYS") || matches("$SYS/broker/connection/+/state", topic)
}

/// `%c` and `%u` replaced, read left to right.
fn substitute(topic: &str, username: &str, client_id: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    let mut chars = topic.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('c') => {
                    chars.next();
                    out.push_str(client_id);
                    continue;
                }
                Some('u') => {
                    chars.next();
                    out.push_str(username);
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

/// One client's rules, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAcl {
    own: Rules,
    patterns: Rules,
}

impl ClientAcl {
    /// Whether the client may publish to (`Write`) or receive from
    /// (`Read`) the topic name `topic`.
    pub fn check(&self, topic: &str, access: Access) -> bool {
        if access == Access::Write && !sys_writable(topic) {
            return false;
        }
        self.own
            .decide(topic, access)
            .or_else(|| self.patterns.decide(topic, access))
            .unwrap_or(false)
    }

    /// Whether a subscription to `filter` could deliver anything (see the
    /// module's docs).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        if self.own.denies_all_of(filter) {
            return false;
        }
        self.own.may_read_under(filter) || self.patterns.may_read_under(filter)
    }
}

#[cfg(test)]
mod tests;

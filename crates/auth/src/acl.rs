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
//!   (it could widen them); nor, unlike Mosquitto, does one with `/`,
//!   which would reach into other clients' levels. Nobody may write to
//!   `$SYS/...` but the bridge status topics `$SYS/broker/connection/+/state`.
//!
//! Subscriptions are Strata's own addition: Mosquitto 2.0 grants every
//! SUBSCRIBE and only filters deliveries. Strata refuses a filter that no
//! readable line could ever deliver from, or that a `deny` line of the
//! client's own covers entirely, so that a client learns at once (0x87)
//! rather than waiting for messages that never come; each delivery is
//! still decided topic by topic, so a granted `#` leaks nothing.

use std::collections::HashMap;
use std::sync::Arc;

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
    /// A pattern's topic holds `%u` or `%c`.
    placeholders: bool,
    /// It holds `%u`: skipped for clients without a user name.
    username: bool,
}

/// Who a pattern is filled in for.
#[derive(Clone, Copy)]
struct Subject<'a> {
    username: Option<&'a str>,
    client_id: &'a str,
}

/// One list of lines (a user's section, the anonymous one, the patterns),
/// indexed by the topic's first level where that is spelt out, so a check
/// looks only at lines that could match. Which lines match decides, not
/// their order: a matching `deny` refuses, else a matching line with the
/// access allows (Mosquitto looks at `deny` lines first, and at the rest in
/// order until one allows: the same answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    by_first: HashMap<String, Vec<Rule>>,
    /// Lines whose first level is a wildcard or holds a placeholder.
    other: Vec<Rule>,
}

impl Rules {
    fn push(&mut self, rule: Rule) {
        let first = rule.topic.split('/').next().unwrap_or("");
        if first == "+" || first == "#" || first.contains('%') {
            self.other.push(rule);
        } else {
            self.by_first
                .entry(first.to_owned())
                .or_default()
                .push(rule);
        }
    }

    fn all(&self) -> impl Iterator<Item = &Rule> {
        self.by_first.values().flatten().chain(&self.other)
    }

    fn is_empty(&self) -> bool {
        self.by_first.is_empty() && self.other.is_empty()
    }

    /// Each line that applies to `who` (all of them without one), with its
    /// topic filled in.
    fn each<'r>(
        rules: impl Iterator<Item = &'r Rule>,
        who: Option<Subject<'_>>,
        mut f: impl FnMut(Grant, &str) -> bool,
    ) -> bool {
        let mut buf = String::new();
        for r in rules {
            let topic = match who {
                Some(w) if r.placeholders => {
                    if r.username && w.username.is_none() {
                        continue;
                    }
                    buf.clear();
                    substitute_into(&mut buf, &r.topic, w.username.unwrap_or(""), w.client_id);
                    buf.as_str()
                }
                _ => r.topic.as_str(),
            };
            if f(r.grant, topic) {
                return true;
            }
        }
        false
    }

    /// `Some(allowed)` once a line decides.
    fn decide(&self, topic: &str, access: Access, who: Option<Subject<'_>>) -> Option<bool> {
        let first = topic.split('/').next().unwrap_or("");
        let candidates = self
            .by_first
            .get(first)
            .into_iter()
            .flatten()
            .chain(&self.other);
        let (mut deny, mut allow) = (false, false);
        Rules::each(candidates, who, |grant, t| {
            if matches(t, topic) {
                if grant == Grant::Deny {
                    deny = true;
                    return true;
                }
                allow |= grant.allows(access);
            }
            false
        });
        if deny {
            Some(false)
        } else {
            allow.then_some(true)
        }
    }

    fn may_read_under(&self, filter: &str, who: Option<Subject<'_>>) -> bool {
        Rules::each(self.all(), who, |grant, t| {
            grant.allows(Access::Read) && intersects(t, filter)
        })
    }

    fn denies_all_of(&self, filter: &str) -> bool {
        Rules::each(self.all(), None, |grant, t| {
            grant == Grant::Deny && covers(t, filter)
        })
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
                    let pattern = word == "pattern";
                    let rule = Rule {
                        grant,
                        topic: topic.to_owned(),
                        placeholders: pattern && (topic.contains("%u") || topic.contains("%c")),
                        username: pattern && topic.contains("%u"),
                    };
                    acl.lines += 1;
                    if pattern {
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
    /// name) and the patterns, with `%u` and `%c` filled in as they are
    /// looked at. Nothing is copied but the two names.
    pub fn for_client(self: &Arc<Acl>, username: Option<&str>, client_id: &str) -> ClientAcl {
        // A wildcard would widen a pattern (Mosquitto's rule); so would a
        // '/' (Strata's: client id `dev/commands` would make
        // `devices/%c/telemetry/#` reach into `devices/dev/commands/...`).
        let unsafe_name = |s: &str| s.contains(['+', '#', '/']);
        let patterns_refused = !self.patterns.is_empty()
            && (username.is_some_and(unsafe_name) || unsafe_name(client_id));
        ClientAcl {
            acl: self.clone(),
            username: username.map(Box::from),
            client_id: client_id.into(),
            patterns_refused,
        }
    }
}

/// Whether a client may ever write to `topic`: not to `$SYS/...`, but for
/// the bridge status topics `$SYS/broker/connection/+/state` (Mosquitto's
/// one exception, which the ACL must still grant).
pub(crate) fn sys_writable(topic: &str) -> bool {
    !topic.starts_with("$SYS") || matches("$SYS/broker/connection/+/state", topic)
}

/// `%c` and `%u` replaced, read left to right.
#[cfg(test)]
fn substitute(topic: &str, username: &str, client_id: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    substitute_into(&mut out, topic, username, client_id);
    out
}

fn substitute_into(out: &mut String, topic: &str, username: &str, client_id: &str) {
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
}

/// One client's rules: the file's, and the names that fill its patterns.
#[derive(Debug, Clone)]
pub struct ClientAcl {
    acl: Arc<Acl>,
    username: Option<Box<str>>,
    client_id: Box<str>,
    /// A name with `+`, `#` or `/`: the patterns give nothing.
    patterns_refused: bool,
}

impl ClientAcl {
    fn own(&self) -> Option<&Rules> {
        match &self.username {
            Some(u) => self.acl.users.get(&**u),
            None => Some(&self.acl.anonymous),
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            username: self.username.as_deref(),
            client_id: &self.client_id,
        }
    }

    fn patterns(&self) -> Option<&Rules> {
        (!self.patterns_refused).then_some(&self.acl.patterns)
    }

    /// Whether the client may publish to (`Write`) or receive from
    /// (`Read`) the topic name `topic`.
    pub fn check(&self, topic: &str, access: Access) -> bool {
        if access == Access::Write && !sys_writable(topic) {
            return false;
        }
        self.own()
            .and_then(|r| r.decide(topic, access, None))
            .or_else(|| {
                self.patterns()
                    .and_then(|p| p.decide(topic, access, Some(self.subject())))
            })
            .unwrap_or(false)
    }

    /// Whether a subscription to `filter` could deliver anything (see the
    /// module's docs).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        if self.own().is_some_and(|r| r.denies_all_of(filter)) {
            return false;
        }
        self.own().is_some_and(|r| r.may_read_under(filter, None))
            || self
                .patterns()
                .is_some_and(|p| p.may_read_under(filter, Some(self.subject())))
    }
}

#[cfg(test)]
mod tests;

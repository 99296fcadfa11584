//! Topic Name and Topic Filter syntax (section 4.7) and shared subscription
//! filters `$share/{ShareName}/{filter}` (section 4.8.2).
//!
//! Shared subscriptions are parsed for every protocol level: 3.1.1 does not
//! define them, but brokers in use accept them from 3.1.1 clients, and a
//! 3.1.1 filter that starts with `$share/` can never match a topic a client
//! publishes to anyway.

use std::fmt;

/// What is wrong with a topic name or filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Zero length [MQTT-4.7.3-1].
    Empty,
    /// A wildcard in a topic name ([MQTT-4.7.0-1] in 5.0, [MQTT-4.7.1-1] in 3.1.1).
    WildcardInName,
    /// `#` not alone in the last level ([MQTT-4.7.1-1] in 5.0, [MQTT-4.7.1-2] in 3.1.1).
    MultiLevelWildcardPlacement,
    /// `+` not alone in its level ([MQTT-4.7.1-2] in 5.0, [MQTT-4.7.1-3] in 3.1.1).
    SingleLevelWildcardPlacement,
    /// `$share/` with an empty ShareName, or one with `+` or `#` [MQTT-4.8.2-1].
    ShareName,
    /// `$share/{ShareName}` not followed by `/` and a filter [MQTT-4.8.2-2].
    SharedFilterMissing,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "must be at least one character long [MQTT-4.7.3-1]",
            TopicError::WildcardInName => "a topic name cannot contain '+' or '#' [MQTT-4.7.0-1]",
            TopicError::MultiLevelWildcardPlacement => {
                "'#' must be alone in the last level of the filter [MQTT-4.7.1-1]"
            }
            TopicError::SingleLevelWildcardPlacement => {
                "'+' must occupy a whole level of the filter [MQTT-4.7.1-2]"
            }
            TopicError::ShareName => {
                "the share name after '$share/' must be non-empty and contain no '+', '#' or '/' [MQTT-4.8.2-1]"
            }
            TopicError::SharedFilterMissing => {
                "'$share/{name}' must be followed by '/' and a topic filter [MQTT-4.8.2-2]"
            }
        })
    }
}

impl std::error::Error for TopicError {}

/// Checks a non-empty Topic Name: no wildcard characters.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// A parsed Topic Filter: the share group, if it is a shared subscription,
/// and the filter that topic names are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The ShareName of `$share/{ShareName}/{filter}`.
    pub share_group: Option<&'a str>,
    /// The filter to match (without the `$share/{ShareName}/` prefix).
    pub filter: &'a str,
}

/// The prefix that marks a shared subscription.
pub const SHARE_PREFIX: &str = "$share/";

/// Parses and validates a Topic Filter, splitting off a share group.
#[inline]
pub fn parse_filter(filter: &str) -> Result<Filter<'_>, TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let (group, inner) = rest.split_once('/').ok_or(if rest.is_empty() {
            TopicError::ShareName
        } else {
            TopicError::SharedFilterMissing
        })?;
        if group.is_empty() || group.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(TopicError::ShareName);
        }
        if inner.is_empty() {
            return Err(TopicError::SharedFilterMissing);
        }
        validate_filter_levels(inner)?;
        return Ok(Filter {
            share_group: Some(group),
            filter: inner,
        });
    }
    validate_filter_levels(filter)?;
    Ok(Filter {
        share_group: None,
        filter,
    })
}

/// Checks wildcard placement in one pass over the bytes: a `+` must have
/// a `/` (or an end) on both sides, a `#` a `/` (or the start) before it and
/// nothing after it. Only an invalid filter takes the level-by-level walk,
/// which names the first wrong level.
#[inline]
fn validate_filter_levels(filter: &str) -> Result<(), TopicError> {
    let b = filter.as_bytes();
    let mut ok = true;
    // `prev` is the byte before `c` ('/' stands in for the start).
    let mut prev = b'/';
    for (i, &c) in b.iter().enumerate() {
        if c == b'+' {
            ok &= prev == b'/' && b.get(i + 1).is_none_or(|&n| n == b'/');
        } else if c == b'#' {
            ok &= prev == b'/' && i + 1 == b.len();
        }
        prev = c;
    }
    if ok {
        Ok(())
    } else {
        explain_filter_levels(filter)
    }
}

/// Finds which level of an invalid filter is wrong.
#[cold]
fn explain_filter_levels(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardPlacement);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardPlacement);
        }
    }
    Ok(())
}

/// Checks a Topic Filter.
#[inline]
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    parse_filter(filter).map(|_| ())
}

/// Whether a filter contains a wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert_eq!(validate_topic_name("a/b/c"), Ok(()));
        assert_eq!(validate_topic_name("/"), Ok(()));
        assert_eq!(validate_topic_name("$SYS/x"), Ok(()));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a#"), Err(TopicError::WildcardInName));
    }

    #[test]
    fn filters_from_section_4_7() {
        for ok in [
            "#",
            "+",
            "sport/#",
            "sport/tennis/#",
            "+/+",
            "/+",
            "sport/+/player1",
            "+/tennis/#",
            "a//b",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("sport/tennis#", TopicError::MultiLevelWildcardPlacement),
            (
                "sport/tennis/#/ranking",
                TopicError::MultiLevelWildcardPlacement,
            ),
            ("sport+", TopicError::SingleLevelWildcardPlacement),
            ("a/b+/c", TopicError::SingleLevelWildcardPlacement),
            ("", TopicError::Empty),
        ] {
            assert_eq!(validate_topic_filter(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn shared_filters() {
        assert_eq!(
            parse_filter("$share/g1/a/+/c"),
            Ok(Filter {
                share_group: Some("g1"),
                filter: "a/+/c"
            })
        );
        assert_eq!(
            parse_filter("$share/g/#"),
            Ok(Filter {
                share_group: Some("g"),
                filter: "#"
            })
        );
        assert_eq!(parse_filter("$share//a"), Err(TopicError::ShareName));
        assert_eq!(parse_filter("$share/"), Err(TopicError::ShareName));
        assert_eq!(parse_filter("$share/g+/a"), Err(TopicError::ShareName));
        assert_eq!(
            parse_filter("$share/g"),
            Err(TopicError::SharedFilterMissing)
        );
        assert_eq!(
            parse_filter("$share/g/"),
            Err(TopicError::SharedFilterMissing)
        );
        assert_eq!(
            parse_filter("$share/g/a#"),
            Err(TopicError::MultiLevelWildcardPlacement)
        );
        // Not a share: the prefix must be exactly "$share/".
        assert_eq!(
            parse_filter("$shared/g/a"),
            Ok(Filter {
                share_group: None,
                filter: "$shared/g/a"
            })
        );
    }
}

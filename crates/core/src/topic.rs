//! Topics (event types): the names events are published under, and the patterns
//! subscribers choose them by.
//!
//! A topic is 1 to 256 letters, digits, `.`, `_`, `-` or `:` (`order.created`); a pattern
//! may also hold `*`, which stands for any run of characters (`order.*`).

/// What a topic may hold, for error messages.
pub const RULE: &str = "a topic is 1 to 256 letters, digits, `.`, `_`, `-` or `:`";

/// Whether `name` is a usable topic, or with `pattern`, a usable pattern.
pub fn is_valid(name: &str, pattern: bool) -> bool {
    (1..=256).contains(&name.len())
        && name.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(byte, b'.' | b'_' | b'-' | b':')
                || (pattern && byte == b'*')
        })
}

/// Whether `topic` matches `pattern`; `*` matches any run of characters (`order.*`
/// takes `order.created` and `order.line.added`).
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = topic.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_event_types() {
        assert!(matches("order.created", "order.created"));
        assert!(!matches("order.created", "order.created.v2"));
        assert!(matches("order.*", "order.created"));
        assert!(matches("order.*", "order.line.added"));
        assert!(!matches("order.*", "invoice.paid"));
        assert!(!matches("order.*", "order"));
        assert!(matches("*.deleted", "user.deleted"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c-y-b"));
        assert!(!matches("ab*ba", "aba"));
    }

    #[test]
    fn event_names_are_plain() {
        assert!(is_valid("order.created", false));
        assert!(!is_valid("order.*", false));
        assert!(is_valid("order.*", true));
        assert!(!is_valid("", true));
        assert!(!is_valid("order created", true));
    }
}

//! W3C Trace Context: the `traceparent` header, read from inbound webhooks and sent on
//! outbound requests so that a trace crosses Switchboard.

use std::fmt;

/// The trace an execution belongs to and the span that is its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

impl TraceContext {
    /// The name of the header that carries a trace context.
    pub const HEADER: &'static str = "traceparent";

    /// Reads a `traceparent` header value; `None` when it is not a valid one (the
    /// specification says to start a new trace then).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let fixed = header.get(..55)?;
        let mut parts = fixed.split('-');
        let version = hex::<1>(parts.next()?)?;
        let trace_id = hex::<16>(parts.next()?)?;
        let parent_id = hex::<8>(parts.next()?)?;
        let flags = hex::<1>(parts.next()?)?;
        let rest = &header[55..];
        let valid_length = match version[0] {
            0x00 => rest.is_empty(),
            0xff => false,
            // A later version may append fields after a dash.
            _ => rest.is_empty() || rest.starts_with('-'),
        };
        let nonzero = trace_id != [0; 16] && parent_id != [0; 8];
        (valid_length && nonzero).then_some(Self {
            trace_id,
            parent_id,
            flags: flags[0],
        })
    }

    /// A new trace with `trace_id`, sampled, whose root span is `span_id`.
    pub fn root(trace_id: [u8; 16]) -> Self {
        Self {
            trace_id,
            parent_id: random_span_id(),
            flags: SAMPLED,
        }
    }

    /// A context from its parts, as an OpenTelemetry span gives them.
    pub fn from_parts(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Self {
        Self {
            trace_id,
            parent_id,
            flags,
        }
    }

    /// The trace id's bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The parent span id's bytes.
    pub fn parent_id_bytes(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The same trace with a new span of ours as the parent, for one outbound request.
    pub fn child(&self) -> Self {
        Self {
            parent_id: random_span_id(),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The parent span id as 16 lowercase hex digits.
    pub fn parent_id(&self) -> String {
        to_hex(&self.parent_id)
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.parent_id(),
            self.flags
        )
    }
}

/// A random non-zero span id.
fn random_span_id() -> [u8; 8] {
    let mut id = [0; 8];
    // Without an OS random source, fall back to the clock: ids then only need to differ.
    if getrandom::fill(&mut id).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos());
        id = (nanos as u64).to_be_bytes();
    }
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// Exactly `N` bytes as `2N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N
        || !text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    {
        return None;
    }
    let mut bytes = [0; N];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_specification_example() {
        let context = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.parent_id(), "00f067aa0ba902b7");
        assert_eq!(context.to_string(), EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_parent() {
        let context = TraceContext::parse(EXAMPLE).unwrap();
        let child = context.child();
        assert_eq!(child.trace_id(), context.trace_id());
        assert_ne!(child.parent_id(), context.parent_id());
        assert!(child.to_string().ends_with("-01"));
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert!(TraceContext::parse(later).is_some());
    }
}

//! Ids that say what they name: a short prefix and a time-ordered ULID (`exe_01J…`).
//!
//! Sorting ids as strings sorts them by creation time, which the store relies on for
//! newest-first listing and cursor paging.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One generator for the process, so ids made in the same millisecond still sort in order.
static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

/// The next ULID of this process, monotonic even within one millisecond.
fn next_ulid() -> ulid::Ulid {
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The generator only fails when 2^80 ids were made in one millisecond.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// An id string did not have the expected prefix or ULID body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}` followed by 26 ULID characters)")]
pub struct IdError {
    /// What the id should have named.
    pub kind: &'static str,
    /// The prefix it should have had.
    pub prefix: &'static str,
    /// The text that was given.
    pub value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made earlier in this process.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, next_ulid()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The 128 bits of the id's ULID.
            pub fn to_bytes(&self) -> [u8; 16] {
                // Every id was checked when it was made, so the ULID always reads.
                ulid::Ulid::from_string(&self.0[$prefix.len()..])
                    .unwrap_or_default()
                    .to_bytes()
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                let body = value.strip_prefix($prefix);
                match body.map(ulid::Ulid::from_string) {
                    Some(Ok(_)) => Ok(Self(value.to_owned())),
                    _ => Err(IdError { kind: $kind, prefix: $prefix, value: value.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// Names one execution: one run of a flow for one trigger event.
    ExecutionId,
    "exe_",
    "execution"
);

prefixed_id!(
    /// Names one running Switchboard process, the holder of execution leases.
    NodeId,
    "node_",
    "node"
);

prefixed_id!(
    /// Names one bulk job: a retry or replay of many executions.
    JobId,
    "job_",
    "job"
);

prefixed_id!(
    /// Names one outbound webhook endpoint: a subscriber's URL and what it receives.
    EndpointId,
    "ep_",
    "endpoint"
);

prefixed_id!(
    /// Names one event on the built-in bus, when its publisher gave it no id of its own.
    EventId,
    "evt_",
    "event"
);

prefixed_id!(
    /// Names one lease of an execution; a write that carries a stale token is refused.
    LeaseToken,
    "lease_",
    "lease"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let first = ExecutionId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = ExecutionId::generate();
        assert!(first < second);
        assert!(first.as_str().starts_with("exe_"));
        assert_eq!(first.as_str().parse::<ExecutionId>(), Ok(first.clone()));
    }

    #[test]
    fn malformed_ids_are_refused_with_their_kind() {
        let err = "exe_nope".parse::<ExecutionId>().unwrap_err();
        assert_eq!(err.kind, "execution");
        assert!(
            "evt_01J00000000000000000000000"
                .parse::<ExecutionId>()
                .is_err()
        );
    }
}

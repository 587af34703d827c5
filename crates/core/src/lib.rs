//! The shared vocabulary of Switchboard.
//!
//! Every other crate speaks in these types: prefixed, time-ordered [`ids`], human
//! [`duration`]s as they are written in YAML and flags, [`time`] stamps rendered the one
//! way the API uses, and [`secret`] values that never print themselves.

pub mod duration;
pub mod headers;
pub mod ids;
pub mod secret;
pub mod size;
pub mod time;
pub mod topic;

pub use duration::HumanDuration;
pub use ids::{ExecutionId, IdError};
pub use secret::{Secret, Secrets};
pub use size::ByteSize;
pub use time::Timestamp;

//! What the nodes sharing one store tell each other: wake-ups when one queues work for
//! all, which node leads, and which nodes are alive.

use serde::Serialize;
use switchboard_core::Timestamp;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

/// A change another node committed that this node's loops may have to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Executions were queued, or ended (which may let others start).
    Work,
    /// Events were appended to the bus.
    Events,
    /// Schedules were synced, paused or resumed.
    Schedules,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Self; 3] = [Self::Work, Self::Events, Self::Schedules];

    /// The payload it travels as.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Work => "work",
            Self::Events => "events",
            Self::Schedules => "schedules",
        }
    }

    /// The signal of that payload.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|signal| signal.as_str() == text)
    }
}

/// How a node hears from the others: their signals, and whether it leads.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Signals committed by any node (this one's included).
    pub signals: broadcast::Sender<Signal>,
    /// Whether this node leads: runs the scheduler, the bus dispatcher, the alert watcher
    /// and retention, which want one node at a time.
    pub leading: watch::Receiver<bool>,
}

/// What a node says of itself at each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Its id.
    pub node: String,
    /// When it started.
    pub started_at: Timestamp,
    /// How many flow executions it runs at once.
    pub workers: u32,
    /// How many deliveries and callbacks it runs at once.
    pub webhook_workers: u32,
    /// Whether it leads now.
    pub leading: bool,
    /// The Switchboard version it runs.
    pub version: String,
    /// The time of this heartbeat.
    pub at: Timestamp,
}

/// A node as `GET /api/v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeRecord {
    /// Its id (`node_…`).
    pub id: String,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Its last heartbeat.
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
    /// How many flow executions it runs at once.
    pub workers: u32,
    /// How many deliveries and callbacks it runs at once.
    pub webhook_workers: u32,
    /// How many executions it holds leases on now.
    pub leases: u64,
    /// Whether it leads (runs the scheduler, the bus dispatcher, alerts and retention).
    pub leading: bool,
    /// The Switchboard version it runs.
    pub version: String,
}

//! The nodes on a store and their heartbeats.

use switchboard_core::Timestamp;

use super::{Db, args, as_u32, as_u64};
use crate::StoreError;
use crate::cluster::{Heartbeat, NodeRecord};

/// Records `heartbeat`, and forgets nodes not heard from for a day.
pub(super) fn heartbeat(db: &dyn Db, heartbeat: &Heartbeat) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO nodes (id, started_at, heartbeat_at, workers, webhook_workers, leads, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE
            SET heartbeat_at = excluded.heartbeat_at, workers = excluded.workers,
                webhook_workers = excluded.webhook_workers, leads = excluded.leads,
                version = excluded.version",
        args![
            &heartbeat.node,
            heartbeat.started_at.millis(),
            heartbeat.at.millis(),
            heartbeat.workers,
            heartbeat.webhook_workers,
            heartbeat.leading,
            &heartbeat.version
        ],
    )?;
    db.execute(
        "DELETE FROM nodes WHERE heartbeat_at < ?1",
        args![heartbeat.at.millis() - 24 * 3600 * 1000],
    )?;
    Ok(())
}

/// The nodes heard from since `since`, with the leases each holds.
pub(super) fn nodes(db: &dyn Db, since: Timestamp) -> Result<Vec<NodeRecord>, StoreError> {
    db.rows(
        "SELECT n.id, n.started_at, n.heartbeat_at, n.workers, n.webhook_workers, n.leads, n.version,
                (SELECT count(*) FROM executions e WHERE e.status = 'running' AND e.lease_owner = n.id)
           FROM nodes n WHERE n.heartbeat_at >= ?1 ORDER BY n.id",
        args![since.millis()],
        |row| {
            Ok(NodeRecord {
                id: row.text(0)?,
                started_at: Timestamp(row.int(1)?),
                last_heartbeat_at: Timestamp(row.int(2)?),
                workers: as_u32(row.int(3)?),
                webhook_workers: as_u32(row.int(4)?),
                leading: row.flag(5)?,
                version: row.text(6)?,
                leases: as_u64(row.int(7)?),
            })
        },
    )
}

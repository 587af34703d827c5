//! Bulk jobs' progress.

use switchboard_core::Timestamp;

use super::{Db, args, as_u64};
use crate::StoreError;
use crate::jobs::JobRecord;

pub(super) fn save(db: &dyn Db, job: &JobRecord) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO bulk_jobs (id, action, state, total, processed, applied, skipped, failed, started_at, finished_at, node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE
            SET state = excluded.state, total = excluded.total, processed = excluded.processed,
                applied = excluded.applied, skipped = excluded.skipped, failed = excluded.failed,
                finished_at = excluded.finished_at",
        args![
            &job.id,
            &job.action,
            &job.state,
            job.total,
            job.processed,
            job.applied,
            job.skipped,
            job.failed,
            job.started_at.millis(),
            job.finished_at.map(Timestamp::millis),
            &job.node
        ],
    )?;
    Ok(())
}

pub(super) fn find(db: &dyn Db, id: &str) -> Result<Option<JobRecord>, StoreError> {
    db.row(
        "SELECT id, action, state, total, processed, applied, skipped, failed, started_at, finished_at, node
           FROM bulk_jobs WHERE id = ?1",
        args![id],
        |row| {
            Ok(JobRecord {
                id: row.text(0)?,
                action: row.text(1)?,
                state: row.text(2)?,
                total: row.opt_int(3)?.map(as_u64),
                processed: as_u64(row.int(4)?),
                applied: as_u64(row.int(5)?),
                skipped: as_u64(row.int(6)?),
                failed: as_u64(row.int(7)?),
                started_at: Timestamp(row.int(8)?),
                finished_at: row.opt_int(9)?.map(Timestamp),
                node: row.text(10)?,
            })
        },
    )
}

//! Running packaging jobs: claiming a CREATED job, a heartbeat while it runs, the status
//! moving CREATED → RUNNING → SUCCEEDED | FAILED with a message that says why, and recovery
//! of jobs whose worker died (marked FAILED, never left RUNNING).

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use crate::error::{ApiError, ResourceType, Result};
use crate::jobs::JobRow;
use crate::output::Fence;
use crate::packaging::build_component;
use crate::store::now_ms;
use crate::Service;

/// How often a running job's worker records that it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// The fence of a job's publish: the job must still be RUNNING, that is still this worker's
/// (not FAILED by the liveness rule while the worker was stopped, its component version
/// perhaps given to another job). The job store's write lock is held from the check until
/// the component is visible, so nobody can fail the job in between.
pub(crate) struct JobFence<'a> {
    pub svc: &'a Service,
    pub project: &'a str,
    pub name: &'a str,
}

impl Fence for JobFence<'_> {
    fn hold(&self, reveal: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let mut c = self.svc.db()?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM jobs WHERE project = ?1 AND name = ?2",
                params![self.project, self.name],
                |r| r.get(0),
            )
            .optional()?;
        if status.as_deref() != Some("RUNNING") {
            return Err(ApiError::conflict(
                ResourceType::ModelPackageJob,
                self.name,
                format!(
                    "job {} is {} now, no longer this worker's: its component was not published",
                    self.name,
                    status.as_deref().unwrap_or("gone")
                ),
            ));
        }
        reveal()?;
        tx.execute(
            "UPDATE jobs SET status_message = 'published; finishing', updated_ms = ?3, heartbeat_ms = ?3
             WHERE project = ?1 AND name = ?2",
            params![self.project, self.name, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl Service {
    /// Sets a running job's status message (what it is doing now).
    pub(crate) fn progress(&self, project: &str, name: &str, message: &str) -> Result<()> {
        self.db()?.execute(
            "UPDATE jobs SET status_message = ?3, updated_ms = ?4 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
            params![project, name, message, now_ms()],
        )?;
        Ok(())
    }

    /// Fails a job no worker could be started for (still CREATED) with `message`.
    pub(crate) fn fail_unstarted(&self, project: &str, name: &str, message: &str) -> Result<()> {
        self.db()?.execute(
            "UPDATE jobs SET status = 'FAILED', status_message = ?3, updated_ms = ?4
             WHERE project = ?1 AND name = ?2 AND status = 'CREATED'",
            params![project, name, message, now_ms()],
        )?;
        Ok(())
    }

    /// Runs job `name` of `project` if it is CREATED (a job another worker claimed, or one that
    /// finished, is left alone: returns `Ok(false)`). The job ends SUCCEEDED or FAILED; the
    /// returned error is only about the job store itself.
    pub fn run_job(&self, project: &str, name: &str) -> Result<bool> {
        let now = now_ms();
        let claimed = self.db()?.execute(
            "UPDATE jobs SET status = 'RUNNING', status_message = 'starting', updated_ms = ?3, heartbeat_ms = ?3
             WHERE project = ?1 AND name = ?2 AND status = 'CREATED'",
            params![project, name, now],
        )?;
        if claimed == 0 {
            return Ok(false);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let beat = {
            let svc = self.clone();
            let (p, n) = (project.to_owned(), name.to_owned());
            std::thread::spawn(move || {
                let Ok(c) = svc.db() else { return };
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                    let _ = c.execute(
                        "UPDATE jobs SET heartbeat_ms = ?3 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                        params![p, n, now_ms()],
                    );
                }
            })
        };
        let job = self.job(project, name);
        let outcome = match job {
            Err(e) => Err(e.message),
            Ok(job) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.package(&job))).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("internal error while packaging: {what}"))
                })
            }
        };
        let _ = stop.send(());
        let _ = beat.join();
        let c = self.db()?;
        match outcome {
            Ok((output, message)) => c.execute(
                "UPDATE jobs SET status = 'SUCCEEDED', status_message = ?3, output = ?4, updated_ms = ?5
                 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                params![project, name, message, serde_json::to_string(&output).expect("serializable"), now_ms()],
            )?,
            Err(message) => c.execute(
                "UPDATE jobs SET status = 'FAILED', status_message = ?3, updated_ms = ?4
                 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                params![project, name, message, now_ms()],
            )?,
        };
        Ok(true)
    }

    fn package(
        &self,
        job: &JobRow,
    ) -> std::result::Result<(crate::shapes::ModelPackagingOutputDetails, String), String> {
        let progress = |m: &str| {
            let _ = self.progress(&job.project, &job.name, m);
        };
        build_component(self, job, &progress).map_err(|e| e.message)
    }

    /// Jobs left RUNNING by a worker that stopped (no heartbeat for the service's
    /// `stale_after`) are marked FAILED with a message saying so; returns their names.
    pub fn fail_interrupted_jobs(&self) -> Result<Vec<String>> {
        let now = now_ms();
        let cutoff = now - self.settings.stale_after.as_millis() as i64;
        let mut c = self.db()?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let names: Vec<String> = {
            let mut st =
                tx.prepare("SELECT name FROM jobs WHERE status = 'RUNNING' AND COALESCE(heartbeat_ms, 0) < ?1")?;
            let rows = st.query_map([cutoff], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            rows
        };
        tx.execute(
            "UPDATE jobs SET status = 'FAILED', updated_ms = ?2,
                 status_message = 'interrupted: the worker stopped while the job was running (no heartbeat since '
                                  || datetime(COALESCE(heartbeat_ms, 0) / 1000, 'unixepoch') || ' UTC); start a new job'
             WHERE status = 'RUNNING' AND COALESCE(heartbeat_ms, 0) < ?1",
            params![cutoff, now],
        )?;
        tx.commit()?;
        Ok(names)
    }

    /// CREATED jobs that no worker claimed within `stale_after` (the process that accepted
    /// them stopped before launching one): (project, name), oldest first.
    pub fn unclaimed_jobs(&self) -> Result<Vec<(String, String)>> {
        let cutoff = now_ms() - self.settings.stale_after.as_millis() as i64;
        let c = self.db()?;
        let mut st =
            c.prepare("SELECT project, name FROM jobs WHERE status = 'CREATED' AND created_ms < ?1 ORDER BY id")?;
        let rows = st.query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

//! Running packaging jobs: claiming a CREATED job, a heartbeat while it runs, the status
//! moving CREATED → RUNNING → SUCCEEDED | FAILED with a message that says why, and recovery
//! of jobs whose worker died (marked FAILED, never left RUNNING).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::args;
use crate::error::{ApiError, ResourceType, Result};
use crate::jobs::JobRow;
use crate::output::Fence;
use crate::packaging::build_component;
use crate::store::now_ms;
use crate::Service;

/// How often a running job's worker records that it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// Set in the child a supervising worker runs the job in ([`Service::supervise_job`]).
pub const WORKER_CHILD_ENV: &str = "EDGEPACK_WORKER_CHILD";

/// The fence of a job's publish: the job must still be RUNNING, that is still this worker's
/// (not FAILED by the liveness rule while the worker was stopped, its component version
/// perhaps given to another job). The job store's write lock is held from the check until
/// the component is visible and the job SUCCEEDED, so nobody can fail the job in between, and
/// a store that cannot record the outcome takes the publish back.
pub(crate) struct JobFence<'a> {
    pub svc: &'a Service,
    pub project: &'a str,
    pub name: &'a str,
    /// The job's outcome (output details, final message), recorded as SUCCEEDED in the
    /// transaction that reveals the model component; `None` for the agent component published
    /// before it (only the check that the job is still this worker's).
    pub outcome: Option<(&'a crate::shapes::ModelPackagingOutputDetails, &'a str)>,
}

impl Fence for JobFence<'_> {
    fn hold(&self, reveal: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let mut c = self.svc.db()?;
        let mut tx = c.write()?;
        let status: Option<String> = tx
            .query_opt("SELECT status FROM jobs WHERE project = ?1 AND name = ?2", args![self.project, self.name])?
            .map(|r| r.get(0))
            .transpose()?;
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
        if let Some((output, message)) = self.outcome {
            tx.execute(
                "UPDATE jobs SET status = 'SUCCEEDED', status_message = ?3, output = ?4, updated_ms = ?5, heartbeat_ms = ?5
                 WHERE project = ?1 AND name = ?2",
                args![self.project, self.name, message, serde_json::to_string(output).expect("serializable"), now_ms()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Service {
    /// Sets a running job's status message (what it is doing now).
    pub(crate) fn progress(&self, project: &str, name: &str, message: &str) -> Result<()> {
        self.log_line(project, name, message);
        self.db()?.execute(
            "UPDATE jobs SET status_message = ?3, updated_ms = ?4 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
            args![project, name, message, now_ms()],
        )?;
        Ok(())
    }

    /// Fails a job no worker could be started for (still CREATED) with `message`.
    pub(crate) fn fail_unstarted(&self, project: &str, name: &str, message: &str) -> Result<()> {
        self.db()?.execute(
            "UPDATE jobs SET status = 'FAILED', status_message = ?3, updated_ms = ?4
             WHERE project = ?1 AND name = ?2 AND status = 'CREATED'",
            args![project, name, message, now_ms()],
        )?;
        Ok(())
    }

    /// Runs job `name` of `project` if it is CREATED (a job another worker claimed, or one that
    /// finished, is left alone: returns `Ok(false)`). The job ends SUCCEEDED or FAILED; the
    /// returned error is only about the job store itself.
    pub fn run_job(&self, project: &str, name: &str) -> Result<bool> {
        let now = now_ms();
        let mut c = self.db()?;
        // One statement: of the workers that try (on any machine), exactly one claims it; on
        // PostgreSQL the others skip the row another holds instead of waiting for it.
        let claimed = c.execute(
            &format!(
                "UPDATE jobs SET status = 'RUNNING', status_message = 'starting', updated_ms = ?3, heartbeat_ms = ?3
                 WHERE id = (SELECT id FROM jobs WHERE project = ?1 AND name = ?2 AND status = 'CREATED'{})",
                c.skip_locked()
            ),
            args![project, name, now],
        )?;
        drop(c);
        if claimed == 0 {
            return Ok(false);
        }
        self.log_line(project, name, &format!("RUNNING: claimed by worker process {}", std::process::id()));
        let (stop, stopped) = mpsc::channel::<()>();
        let beat = {
            let svc = self.clone();
            let (p, n) = (project.to_owned(), name.to_owned());
            std::thread::spawn(move || {
                // A SQLite connection is held for the job (opening one has a cost); a shared
                // store's pooled connection is taken per beat, so that running jobs do not hold
                // the pool's connections.
                let mut held = if svc.store().is_shared() { None } else { svc.db().ok() };
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                    let mut taken;
                    let c = match held.as_mut() {
                        Some(c) => c,
                        None => match svc.db() {
                            Ok(c) => {
                                taken = c;
                                &mut taken
                            }
                            Err(_) => continue,
                        },
                    };
                    let _ = c.execute(
                        "UPDATE jobs SET heartbeat_ms = ?3 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                        args![&p, &n, now_ms()],
                    );
                }
            })
        };
        let job = self.job(project, name);
        let outcome = match job {
            Err(e) => Err(e),
            Ok(job) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.package(&job))).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(ApiError::internal(format!("internal error while packaging: {what}")))
                })
            }
        };
        let _ = stop.send(());
        let _ = beat.join();
        match &outcome {
            Ok((_, message)) => self.log_line(project, name, &format!("SUCCEEDED: {message}")),
            Err(e) => self.log_line(project, name, &format!("FAILED: {}", e.message)),
        }
        let mut c = self.db()?;
        match outcome {
            Ok((output, message)) => c.execute(
                "UPDATE jobs SET status = 'SUCCEEDED', status_message = ?3, output = ?4, updated_ms = ?5
                 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                args![project, name, message, serde_json::to_string(&output).expect("serializable"), now_ms()],
            )?,
            Err(e) => c.execute(
                "UPDATE jobs SET status = 'FAILED', status_message = ?3, updated_ms = ?4
                 WHERE project = ?1 AND name = ?2 AND status = 'RUNNING'",
                args![project, name, e.message, now_ms()],
            )?,
        };
        Ok(true)
    }

    fn package(&self, job: &JobRow) -> Result<(crate::shapes::ModelPackagingOutputDetails, String)> {
        let progress = |m: &str| {
            let _ = self.progress(&job.project, &job.name, m);
        };
        build_component(self, job, &progress)
    }

    /// Runs job `name` in a child process (`program args… project name`, sharing this
    /// process's output, with [`WORKER_CHILD_ENV`] set so that it runs the job itself) and
    /// waits for it. When the child ends abnormally while the job is unfinished (killed by a
    /// signal, aborted by an allocation that failed under a memory limit, a non-zero exit),
    /// the job is FAILED at once with the cause: the signal, whether the kernel's
    /// out-of-memory killer fired meanwhile, and the last line the child wrote to its log.
    pub fn supervise_job(&self, program: &Path, args: &[String], project: &str, name: &str) -> Result<()> {
        let oom_before = oom_kills();
        let status = std::process::Command::new(program)
            .args(args)
            .args([project, name])
            .env(WORKER_CHILD_ENV, "1")
            .status()
            .map_err(|e| ApiError::internal(format!("{}: {e}", program.display())))?;
        if status.success() {
            return Ok(());
        }
        let mut cause = match (status.signal(), status.code()) {
            (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, Some(code)) => format!("exited with status {code}"),
            (None, None) => "ended without a status".to_owned(),
        };
        if status.signal() == Some(9) && oom_kills().zip(oom_before).is_some_and(|(after, before)| after > before) {
            cause.push_str("; the kernel's out-of-memory killer ran meanwhile");
        }
        let log = self.log_path(project, name);
        if let Some(line) = last_line(&log) {
            cause.push_str(&format!("; its last output: \"{line}\""));
        }
        self.db()?.execute(
            "UPDATE jobs SET status = 'FAILED', status_message = ?3, updated_ms = ?4
             WHERE project = ?1 AND name = ?2 AND status IN ('CREATED', 'RUNNING')",
            args![
                project,
                name,
                format!("the worker process died: {cause} (log: {}); start a new job", log.display()),
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Jobs left RUNNING by a worker that stopped (no heartbeat for the service's
    /// `stale_after`) are marked FAILED with a message saying so; returns their names.
    pub fn fail_interrupted_jobs(&self) -> Result<Vec<String>> {
        let now = now_ms();
        let cutoff = now - self.settings.stale_after.as_millis() as i64;
        // Most calls find nothing: a read first, the writer lock only when there is work.
        let probe = "SELECT 1 FROM jobs WHERE status = 'RUNNING' AND COALESCE(heartbeat_ms, 0) < ?1 LIMIT 1";
        let mut c = self.db()?;
        if c.query_opt(probe, args![cutoff])?.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = c.write()?;
        let stale = tx.query(
            "SELECT id, name, COALESCE(heartbeat_ms, 0) FROM jobs WHERE status = 'RUNNING' AND COALESCE(heartbeat_ms, 0) < ?1",
            args![cutoff],
        )?;
        let mut names = Vec::with_capacity(stale.len());
        for row in &stale {
            let (id, name, beat): (i64, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let at = chrono::DateTime::from_timestamp_millis(beat).unwrap_or_default().format("%Y-%m-%d %H:%M:%S");
            tx.execute(
                "UPDATE jobs SET status = 'FAILED', updated_ms = ?2, status_message = ?3 WHERE id = ?1",
                args![
                    id,
                    now,
                    format!(
                        "interrupted: the worker stopped while the job was running (no heartbeat since {at} UTC); \
                         start a new job"
                    )
                ],
            )?;
            names.push(name);
        }
        tx.commit()?;
        Ok(names)
    }

    /// CREATED jobs that no worker claimed within `stale_after` (the process that accepted
    /// them stopped before launching one): (project, name), oldest first.
    pub fn unclaimed_jobs(&self) -> Result<Vec<(String, String)>> {
        let cutoff = now_ms() - self.settings.stale_after.as_millis() as i64;
        self.db()?
            .query(
                "SELECT project, name FROM jobs WHERE status = 'CREATED' AND created_ms < ?1 ORDER BY id",
                args![cutoff],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }
}

/// The kernel's count of processes its out-of-memory killer ended (`/proc/vmstat`).
fn oom_kills() -> Option<u64> {
    let vmstat = std::fs::read_to_string("/proc/vmstat").ok()?;
    vmstat.lines().find_map(|l| l.strip_prefix("oom_kill "))?.trim().parse().ok()
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT: the process aborted",
        7 => "SIGBUS",
        9 => "SIGKILL: the out-of-memory killer or kill -9",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        24 => "SIGXCPU: over its CPU time limit",
        25 => "SIGXFSZ: over its file size limit",
        _ => "a signal",
    }
}

/// The last line of the file (its last 4 KiB) that is not empty or part of a backtrace,
/// trimmed to 300 characters.
fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // A backtrace's frames and notes say less than the line before them.
    let noise = |l: &str| {
        l.is_empty()
            || l.starts_with("note:")
            || l.starts_with("stack backtrace:")
            || l.starts_with("at ")
            || l.split_once(':').is_some_and(|(n, _)| n.trim().parse::<u32>().is_ok())
    };
    let line = text.lines().map(str::trim).rfind(|l| !noise(l))?;
    Some(line.chars().take(300).collect())
}

//! The job store's semantics on each store: SQLite (one root, the embedded default) and
//! PostgreSQL (a fresh database per test, several "servers" — services with roots of their
//! own — sharing it, as machines of a team do): identical starts racing on two servers make one
//! job, one worker of many claims a job, a model imported on one server is packaged by
//! another, a job whose worker died on one server is failed by another and an unclaimed one
//! is resumed there, projects/models/tokens/pages behave alike, and migrations run once.
//!
//! The PostgreSQL variants need `EDGEPACK_POSTGRES_URL` at build time (`ci/setup-postgres.sh`
//! prints it); without it they are reported as ignored ("skipped: …").

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{import_sample, project_with_sample, settings, start, x86};
use package::sample::SampleKind;
use package::store::{PostgresSettings, StoreConfig};
use package::{args, ErrorKind, Service, Settings};

/// The PostgreSQL server of the shared-store tests (`EDGEPACK_POSTGRES_URL` at build time).
#[cfg(not(no_postgres))]
const POSTGRES_URL: &str = env!("EDGEPACK_POSTGRES_URL");
#[cfg(no_postgres)]
const POSTGRES_URL: &str = "";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// One shared job store and the roots of the servers on it; a PostgreSQL database is dropped
/// with it.
struct Shared {
    dir: tempfile::TempDir,
    kind: Kind,
    database: Option<(String, String)>,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl Shared {
    fn new(kind: Kind) -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let database = (kind == Kind::Postgres).then(|| {
            let admin = POSTGRES_URL.to_owned();
            let name = format!("ep_test_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
            package::store::pg::drop_database(&admin, &name).unwrap();
            let url = package::store::pg::create_database(&admin, &name).unwrap();
            (admin, url)
        });
        Shared { dir, kind, database }
    }

    /// Server `i`'s root: its own on PostgreSQL, the one root on SQLite (a SQLite store is
    /// shared by the processes of one machine).
    fn root(&self, i: usize) -> PathBuf {
        let root = self.dir.path().join(format!("server-{}", if self.kind == Kind::Sqlite { 0 } else { i }));
        if let Some((_, url)) = &self.database {
            let config = StoreConfig::Postgres(PostgresSettings { url: url.clone(), max_connections: Some(4) });
            config.save(&root).unwrap();
        }
        root
    }

    /// Server `i` (jobs run by the test), liveness rule `stale_after`.
    fn server_with(&self, i: usize, stale_after: Duration) -> Service {
        let root = self.root(i);
        Service::open(&root, Settings { stale_after, ..settings(&root) }).expect("open")
    }

    fn server(&self, i: usize) -> Service {
        self.server_with(i, Duration::from_secs(30))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some((admin, url)) = &self.database {
            let name = url.rsplit('/').next().unwrap();
            let _ = package::store::pg::drop_database(admin, name);
        }
    }
}

fn status(svc: &Service, p: &str, job: &str) -> (String, String) {
    let j = svc.describe_model_packaging_job(p, job).unwrap().model_packaging_description.job;
    (j.status, j.status_message.unwrap_or_default())
}

fn twenty_identical_starts_on_two_servers_make_one_job(kind: Kind) {
    let shared = Shared::new(kind);
    let servers = [shared.server(0), shared.server(1)];
    project_with_sample(&servers[0], "p");
    let mut r = start("p", "latest", x86("core-avx2", "c"));
    r.client_token = Some("race".into());
    let names: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let (svc, r) = (&servers[i % 2], &r);
                s.spawn(move || svc.start_model_packaging_job(r).map(|x| x.job_name))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().expect("every identical call succeeds")).collect()
    });
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
    for svc in &servers {
        assert_eq!(svc.list_model_packaging_jobs("p", None, None).unwrap().model_packaging_jobs.len(), 1);
    }
    // Without a token, racing requests for one component version: one job, the rest conflict.
    let r = start("p", "1", x86("core-avx2", "d"));
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                s.spawn({
                    let (svc, r) = (&servers[i % 2], &r);
                    move || svc.start_model_packaging_job(r)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.kind == ErrorKind::Conflict), "{results:?}");
}

fn exactly_one_of_many_workers_claims_a_job(kind: Kind) {
    let shared = Shared::new(kind);
    let servers = [shared.server(0), shared.server(1)];
    project_with_sample(&servers[0], "p");
    let job = servers[0].start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    let claimed: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                s.spawn({
                    let (svc, job) = (&servers[i % 2], &job);
                    move || svc.run_job("p", job).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(claimed.iter().filter(|&&c| c).count(), 1, "{claimed:?}");
    let (st, msg) = status(&servers[1], "p", &job);
    assert_eq!(st, "SUCCEEDED", "{msg}");
}

fn a_model_imported_on_one_server_is_packaged_by_another(kind: Kind) {
    let shared = Shared::new(kind);
    let (a, b) = (shared.server(0), shared.server(1));
    a.create_project("p").unwrap();
    import_sample(&a, "p", SampleKind::Classification, 32, 32);
    let sha = a.describe_model("p", "1").unwrap().model_sha256;
    let job = a.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(b.run_job("p", &job).unwrap());
    let (st, msg) = status(&a, "p", &job);
    assert_eq!(st, "SUCCEEDED", "{msg}");
    // Server 1 keeps a verified copy of the model file from then on.
    assert!(b.root().join("blobs/sha256").join(&sha).is_file());
}

fn a_job_whose_worker_died_on_one_server_is_failed_by_another_and_a_queued_one_resumed(kind: Kind) {
    let shared = Shared::new(kind);
    let a = shared.server(0);
    project_with_sample(&a, "p");
    let crashed = a.start_model_packaging_job(&start("p", "1", x86("core-avx2", "a"))).unwrap().job_name;
    let queued = a.start_model_packaging_job(&start("p", "1", x86("core-avx2", "b"))).unwrap().job_name;
    // Server 0's worker claimed `crashed` and died a minute ago; `queued` was accepted by
    // server 0 a minute ago and no worker of it ever claimed it.
    let minute_ago = package::store::now_ms() - 60_000;
    let mut db = a.db().unwrap();
    let sql = "UPDATE jobs SET status = 'RUNNING', heartbeat_ms = ?2, created_ms = ?2 WHERE name = ?1";
    assert_eq!(db.execute(sql, args![&crashed, minute_ago]).unwrap(), 1);
    assert_eq!(db.execute("UPDATE jobs SET created_ms = ?2 WHERE name = ?1", args![&queued, minute_ago]).unwrap(), 1);
    drop(db);
    drop(a);
    // Server 1 applies the liveness rule when asked about the job…
    let b = shared.server_with(1, Duration::from_secs(30));
    let (st, msg) = status(&b, "p", &crashed);
    assert_eq!(st, "FAILED");
    assert!(msg.starts_with("interrupted: the worker stopped") && msg.contains(" UTC)"), "{msg}");
    // …and runs what nobody claimed.
    assert_eq!(b.unclaimed_jobs().unwrap(), vec![("p".to_string(), queued.clone())]);
    assert!(b.run_job("p", &queued).unwrap());
    assert_eq!(status(&b, "p", &queued).0, "SUCCEEDED");
    // A job with a fresh heartbeat is left alone.
    let live = b.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    let sql = "UPDATE jobs SET status = 'RUNNING', heartbeat_ms = ?2 WHERE name = ?1";
    b.db().unwrap().execute(sql, args![&live, package::store::now_ms()]).unwrap();
    assert!(shared.server(0).fail_interrupted_jobs().unwrap().is_empty());
}

fn projects_models_tokens_and_pages_behave_alike(kind: Kind) {
    let shared = Shared::new(kind);
    let (a, b) = (shared.server(0), shared.server(1));
    for i in 0..5 {
        a.create_project_with_token(&format!("p{i}"), Some(&format!("t{i}"))).unwrap();
    }
    // A retry on the other server answers as the first call did; another name conflicts.
    assert_eq!(b.create_project_with_token("p3", Some("t3")).unwrap().project_name, "p3");
    let e = b.create_project_with_token("p9", Some("t3")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(b.create_project("p1").unwrap_err().kind, ErrorKind::Conflict);
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = b.list_projects(token.as_deref(), Some(2)).unwrap();
        assert!(page.projects.len() <= 2);
        names.extend(page.projects.into_iter().map(|p| p.project_name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    for _ in 0..3 {
        import_sample(&a, "p0", SampleKind::Classification, 32, 32);
    }
    b.delete_model("p0", "3").unwrap();
    assert_eq!(import_sample(&b, "p0", SampleKind::Classification, 32, 32), "4", "numbers are never reused");
    let versions: Vec<String> =
        a.list_models("p0", None, None).unwrap().models.into_iter().map(|m| m.model_version).collect();
    assert_eq!(versions, ["4", "2", "1"]);
    assert_eq!(a.describe_model("p0", "latest").unwrap().model.model_version, "4");
    let e = b.delete_project("p0").unwrap_err();
    assert!(e.kind == ErrorKind::Conflict && e.message.contains("3 model version(s)"), "{e}");
    b.delete_project("p4").unwrap();
    assert_eq!(a.describe_project("p4").unwrap_err().kind, ErrorKind::ResourceNotFound);
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Kind::Sqlite) })*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(
                    no_postgres,
                    ignore = "skipped: no PostgreSQL (EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh), then rebuild)"
                )]
                fn $name() { super::$name(super::Kind::Postgres) }
            )*
        }
    };
}

on_both_stores!(
    twenty_identical_starts_on_two_servers_make_one_job,
    exactly_one_of_many_workers_claims_a_job,
    a_model_imported_on_one_server_is_packaged_by_another,
    a_job_whose_worker_died_on_one_server_is_failed_by_another_and_a_queued_one_resumed,
    projects_models_tokens_and_pages_behave_alike,
);

#[test]
#[cfg_attr(
    no_postgres,
    ignore = "skipped: no PostgreSQL (EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh), then rebuild)"
)]
fn postgres_migrations_run_once_when_servers_start_together_and_a_newer_schema_is_refused() {
    let shared = Shared::new(Kind::Postgres);
    let roots: Vec<PathBuf> = (0..6).map(|i| shared.root(i)).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = roots.iter().map(|r| s.spawn(move || Service::open(r, settings(r)).map(|_| ()))).collect();
        for h in hs {
            h.join().unwrap().expect("every server opens");
        }
    });
    let svc = shared.server(0);
    let mut db = svc.db().unwrap();
    let rows = db.query("SELECT version FROM edgepack_schema", &[]).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64>(0).unwrap(), package::store::pg::SCHEMA_VERSION as i64);
    db.execute("UPDATE edgepack_schema SET version = 99", &[]).unwrap();
    drop(db);
    let e = Service::open(&roots[1], settings(&roots[1])).err().expect("a newer schema is refused");
    assert!(e.message.contains("version 99, newer than this edgepack knows"), "{e}");
}

#[test]
fn an_unreachable_or_malformed_postgres_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgresql://edgepack:secret-pw@127.0.0.1:1/edgepack";
    let config = StoreConfig::Postgres(PostgresSettings { url: url.into(), max_connections: None });
    config.save(dir.path()).unwrap();
    let t0 = std::time::Instant::now();
    let e = Service::open(dir.path(), settings(dir.path())).err().expect("refused");
    assert!(
        e.message.contains("PostgreSQL at 'postgresql://edgepack:***@127.0.0.1:1/edgepack' cannot be reached"),
        "{e}"
    );
    assert!(!e.message.contains("secret-pw"), "the password is shown: {e}");
    assert!(e.message.contains("Connection refused"), "the cause is named: {e}");
    assert!(t0.elapsed() < Duration::from_secs(60), "no hang");
    let bad = StoreConfig::Postgres(PostgresSettings {
        url: "postgresql://x:y@host:notaport/db".into(),
        max_connections: None,
    });
    let e = bad.save(dir.path()).unwrap_err();
    assert!(e.message.contains("PostgreSQL connection string") && !e.message.contains(":y@"), "{e}");
    assert_eq!(
        config.redacted(),
        StoreConfig::Postgres(PostgresSettings {
            url: "postgresql://edgepack:***@127.0.0.1:1/edgepack".into(),
            max_connections: None
        })
    );
}

#[test]
#[cfg_attr(
    no_postgres,
    ignore = "skipped: no PostgreSQL (EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh), then rebuild)"
)]
fn a_postgres_store_closed_on_an_async_runtimes_thread_closes_quietly() {
    // A server shutting down drops its service on a runtime thread; the synchronous client
    // must not block on its own runtime there (it panics: "Cannot start a runtime from within
    // a runtime").
    let shared = Shared::new(Kind::Postgres);
    let svc = shared.server(0);
    svc.create_project("p").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move { drop(svc) });
}

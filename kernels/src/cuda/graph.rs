//! CUDA graphs: a run's launches captured once and replayed as one launch.

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;

use super::device::{dev_err, Gpu};
use crate::error::{KernelError, Result};

/// The launches one closure issued on the GPU's stream, replayable ([`Gpu::capture`]). The
/// buffers the launches name must outlive it and stay where they are.
pub struct DeviceGraph {
    graph: CudaGraph,
}

// SAFETY: the graph and its executable are driver handles that any host thread may launch or
// destroy (the driver API is thread-safe across threads for distinct objects); a DeviceGraph
// has one owner (it is not `Sync`), so no two threads use it at once. Moving a session with its
// graph to another thread is what concurrent sessions need.
unsafe impl Send for DeviceGraph {}

impl std::fmt::Debug for DeviceGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceGraph")
    }
}

impl Gpu {
    /// Captures the launches `issue` makes on this GPU's stream (nothing runs), as a graph.
    /// `issue` must only launch kernels on buffers that already exist: no allocation, copy or
    /// synchronization (the driver refuses those during a capture, and the capture fails).
    pub fn capture<E: From<KernelError>>(
        &self,
        issue: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<DeviceGraph, E> {
        let stream = self.stream();
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(dev_err("begin graph capture"))?;
        let issued = issue();
        // The capture ends whatever `issue` did, so the stream is usable again.
        let ended = stream.end_capture(CUgraphInstantiate_flags(0));
        issued?;
        match ended.map_err(dev_err("end graph capture"))? {
            Some(graph) => Ok(DeviceGraph { graph }),
            None => Err(KernelError::Device("the graph capture recorded nothing".into()).into()),
        }
    }

    /// Replays a captured graph on this GPU's stream.
    pub fn replay(&self, g: &DeviceGraph) -> Result<()> {
        g.graph.launch().map_err(dev_err("launch graph"))
    }
}

impl Gpu {
    /// The device time, in milliseconds, of the work `issue` puts on the stream (waits for it).
    pub fn elapsed_ms<E: From<KernelError>>(
        &self,
        issue: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<f64, E> {
        let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.context().new_event(flags).map_err(dev_err("event"))?;
        let end = self.context().new_event(flags).map_err(dev_err("event"))?;
        start.record(self.stream()).map_err(dev_err("record event"))?;
        issue()?;
        end.record(self.stream()).map_err(dev_err("record event"))?;
        end.synchronize().map_err(dev_err("synchronize"))?;
        Ok(f64::from(start.elapsed_ms(&end).map_err(dev_err("event time"))?))
    }
}

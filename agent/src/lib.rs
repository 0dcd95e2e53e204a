//! `edgepack-agent`: the on-device edge agent. Serves the model components a packaging job
//! published (installed by Greengrass, or named with `--model`) over the edge agent gRPC API
//! (`proto/edge-agent.proto`, the managed service's wire contract) on a Unix socket.
//!
//! - [`components`]: finding components and their manifests;
//! - [`registry`]: the models' life cycle (start, stop, describe);
//! - [`runner`]: per-model workers sharing one plan, the bounded queue, the thread budget;
//! - [`request`] and [`shm`]: checking a call's bitmap and shared memory;
//! - [`answer`]: reading outputs per the model's contract;
//! - [`service`], [`socket`], [`client`]: the gRPC side;
//! - [`parity`]: the device parity check of a component's Install step.

pub mod answer;
pub mod authority;
pub mod client;
pub mod components;
pub mod error;
pub mod parity;
pub mod registry;
pub mod request;
pub mod runner;
pub mod service;
pub mod shm;
pub mod socket;

/// Messages, client and server generated from `proto/edge-agent.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("aws.lookout_vision");
}

/// The largest message either way: a 4096×4096 RGB888 image and its mask, with room for the
/// other fields.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// HTTP/2 flow-control window per stream (both ends): one largest message.
pub const WINDOW_BYTES: u32 = MAX_MESSAGE_BYTES as u32;

/// Largest HTTP/2 frame either end accepts.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Serves `registry` on `listener` until `shutdown` completes.
pub async fn serve(
    registry: std::sync::Arc<registry::Registry>,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = proto::edge_agent_server::EdgeAgentServer::new(service::Agent::new(registry))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        // Whole images fit the flow-control windows: a 640×640 request (1.2 MB) does not wait
        // for WINDOW_UPDATE round trips midway, and large frames cut per-frame work.
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(4 * WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::StreamExt::map(tokio_stream::wrappers::UnixListenerStream::new(listener), |c| {
                c.map(authority::Fixed::new)
            }),
            shutdown,
        )
        .await
}

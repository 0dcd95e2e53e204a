//! A client of the agent's socket (for tests, the load generator and Rust applications).

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::proto::edge_agent_client::EdgeAgentClient;

/// Connects to the agent at `path` (a Unix socket).
pub async fn connect(path: impl Into<PathBuf>) -> Result<EdgeAgentClient<Channel>, tonic::transport::Error> {
    let path = path.into();
    // The URI is required by the API and not used: the connector dials the socket.
    let channel = Endpoint::from_static("http://edge-agent.local")
        .initial_stream_window_size(crate::WINDOW_BYTES)
        .initial_connection_window_size(4 * crate::WINDOW_BYTES)
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await?;
    Ok(EdgeAgentClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20))
}

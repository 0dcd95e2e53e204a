//! Generates the edge agent's gRPC messages, server and client from `proto/edge-agent.proto`
//! with a pure-Rust protobuf compiler (protox), so no `protoc` is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/edge-agent.proto");
    let files = protox::compile(["edge-agent.proto"], ["proto"])?;
    tonic_prost_build::configure().emit_rerun_if_changed(false).compile_fds(files)?;
    Ok(())
}

//! The `edgepack.EdgeAgent` component a packaging job publishes beside each model component:
//! the static agent binary for the target's architecture (built by `ci/build-agent.sh`) and a
//! recipe whose Run step starts it on the Greengrass artifacts tree. Model components depend on
//! it (HARD) and run their Install step's device parity check with its binary, so a device needs
//! nothing else installed.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::component::{digest, AGENT_COMPONENT, RECIPE_FILE, RECIPE_FORMAT};
use crate::error::{ApiError, Result};
use crate::output::OutputFile;
use crate::signing::Signer;

/// The agent component's version (the agent's crate version).
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The binary's file name for a Greengrass architecture (`amd64`, `aarch64`).
pub fn binary_name(architecture: &str) -> String {
    format!("edgepack-agent-{architecture}")
}

/// The build folder's name for a Greengrass architecture (`uname -m` style).
fn build_arch(architecture: &str) -> &str {
    match architecture {
        "amd64" => "x86_64",
        other => other,
    }
}

/// Where agent builds are looked for: `EDGEPACK_AGENT_DIR`, else `target/agent` (beside the
/// folder of the running program, or one level up for test binaries in `target/*/deps`).
pub fn default_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("EDGEPACK_AGENT_DIR") {
        return Some(PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(2).take(2).map(|p| p.join("agent")).find(|p| p.is_dir())
}

/// The built agent for `architecture`, or a message saying how to build it.
pub fn binary(dir: Option<&Path>, architecture: &str) -> Result<Vec<u8>> {
    let arch = build_arch(architecture);
    let how = format!("build it with `ci/build-agent.sh {arch}` (or set EDGEPACK_AGENT_DIR to a folder holding {arch}/edgepack-agent)");
    let Some(dir) = dir else {
        return Err(ApiError::validation(format!(
            "the edge agent for {arch} has not been built (no agent folder found); {how}"
        )));
    };
    let path = dir.join(arch).join("edgepack-agent");
    std::fs::read(&path).map_err(|e| {
        ApiError::validation(format!("the edge agent for {arch} has not been built ({}: {e}); {how}", path.display()))
    })
}

/// The agent's Run script for the binary `file`.
pub fn run_script(file: &str) -> String {
    format!(
        "{{artifacts:path}}/{file} --socket {{configuration:/Socket}} --components-dir {{kernel:rootPath}}/packages/artifacts \
         --work-dir {{kernel:rootPath}}/work --call-threads {{configuration:/CallThreads}} --queue {{configuration:/Queue}}"
    )
}

/// The device parity command of a model component's Install step.
pub fn install_script(architecture: &str) -> String {
    format!(
        "{{{AGENT_COMPONENT}:artifacts:path}}/{} parity --component {{artifacts:path}} --json {{work:path}}/device-parity.json",
        binary_name(architecture)
    )
}

/// Every agent build in `dir` besides the one for `architecture` (which [`binary`] reads):
/// the component carries a manifest for each architecture built, so jobs for other targets
/// publishing to the same place find theirs.
pub fn other_builds(dir: Option<&Path>, architecture: &str) -> Vec<(&'static str, Vec<u8>)> {
    ["amd64", "aarch64"]
        .into_iter()
        .filter(|&a| a != architecture)
        .filter_map(|a| Some((a, std::fs::read(dir?.join(build_arch(a)).join("edgepack-agent")).ok()?)))
        .collect()
}

/// The agent component's files (a binary per architecture, the signature of the recipe, then
/// the recipe), published under `s3://bucket/key_prefix/`.
pub fn files(builds: Vec<(&str, Vec<u8>)>, bucket: &str, key_prefix: &str, signer: &Signer) -> Vec<OutputFile> {
    let manifests: Vec<Value> = builds
        .iter()
        .map(|(architecture, binary)| {
            let file = binary_name(architecture);
            json!({
                "Platform": { "os": "linux", "architecture": architecture },
                "Lifecycle": { "Run": { "Script": run_script(&file), "RequiresPrivilege": false } },
                "Artifacts": [{
                    "URI": format!("s3://{bucket}/{key_prefix}/{file}"),
                    "Digest": digest(binary),
                    "Algorithm": "SHA-256",
                    "Unarchive": "NONE",
                    "Permission": { "Read": "ALL", "Execute": "ALL" },
                }],
            })
        })
        .collect();
    let recipe = json!({
        "RecipeFormatVersion": RECIPE_FORMAT,
        "ComponentName": AGENT_COMPONENT,
        "ComponentVersion": AGENT_VERSION,
        "ComponentDescription": "edgepack edge agent: serves edgepack model components over the edge agent gRPC API on a Unix socket",
        "ComponentPublisher": "edgepack",
        "ComponentConfiguration": { "DefaultConfiguration": {
            "Socket": "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock", "CallThreads": 1, "Queue": 16,
        }},
        "Manifests": manifests,
    });
    let mut text = serde_json::to_string_pretty(&recipe).expect("serializable");
    text.push('\n');
    let mut files: Vec<OutputFile> =
        builds.into_iter().map(|(a, bytes)| OutputFile { name: binary_name(a), bytes }).collect();
    let recipe = OutputFile { name: RECIPE_FILE.into(), bytes: text.into_bytes() };
    files.push(signer.sign(&[&recipe]));
    files.push(recipe);
    files
}

/// Whether an agent recipe already published has a manifest for `architecture`.
pub fn recipe_has(recipe: &Value, architecture: &str) -> bool {
    recipe["Manifests"].as_array().into_iter().flatten().any(|m| m["Platform"]["architecture"] == architecture)
}

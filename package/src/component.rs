//! Greengrass components (recipe format 2020-01-25): the recipe, `manifest.json`, and the
//! check of a published component (recipe format, every artifact present and matching its
//! SHA-256 digest).

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Result};
use crate::output::{OutputFile, OutputStore};
use crate::validate::{COMPONENT_NAME, COMPONENT_VERSION};

/// The recipe format version written and accepted.
pub const RECIPE_FORMAT: &str = "2020-01-25";
/// The edge runtime component that loads model components (a hard dependency).
pub const AGENT_COMPONENT: &str = "edgepack.EdgeAgent";
/// The recipe's file name inside the component's folder.
pub const RECIPE_FILE: &str = "recipe.json";
/// Lifecycle steps a recipe may have.
const LIFECYCLE_STEPS: &[&str] = &["Setenv", "Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover"];

/// Base64 SHA-256, the recipe's `Digest` format.
pub fn digest(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// What a recipe is made from.
#[derive(Debug, Clone)]
pub struct RecipeInput<'a> {
    /// Component name.
    pub name: &'a str,
    /// Component version.
    pub version: &'a str,
    /// Description (defaults to one naming the model).
    pub description: String,
    /// Greengrass `architecture` of the target (`amd64`, `aarch64`).
    pub architecture: &'static str,
    /// The artifacts and their URIs (`s3://bucket/key`).
    pub artifacts: Vec<(String, &'a OutputFile)>,
    /// Lifecycle `Install` script: the on-device parity check.
    pub install: String,
}

/// The recipe of a model component.
pub fn recipe(r: &RecipeInput<'_>) -> Value {
    let artifacts: Vec<Value> = r
        .artifacts
        .iter()
        .map(|(uri, f)| {
            json!({
                "URI": uri,
                "Digest": digest(&f.bytes),
                "Algorithm": "SHA-256",
                "Unarchive": "NONE",
                "Permission": { "Read": "OWNER", "Execute": "NONE" },
            })
        })
        .collect();
    json!({
        "RecipeFormatVersion": RECIPE_FORMAT,
        "ComponentName": r.name,
        "ComponentVersion": r.version,
        "ComponentDescription": r.description,
        "ComponentPublisher": "edgepack",
        "ComponentConfiguration": { "DefaultConfiguration": { "Threads": 0 } },
        "ComponentDependencies": {
            AGENT_COMPONENT: { "VersionRequirement": ">=0.1.0 <1.0.0", "DependencyType": "HARD" }
        },
        "Manifests": [{
            "Platform": { "os": "linux", "architecture": r.architecture },
            "Lifecycle": {
                "Install": { "Script": r.install, "RequiresPrivilege": false, "Timeout": 900 }
            },
            "Artifacts": artifacts,
        }],
    })
}

/// The problems of a recipe against format 2020-01-25 (empty: none).
pub fn recipe_problems(r: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    if s("RecipeFormatVersion") != Some(RECIPE_FORMAT) {
        p.push(format!("RecipeFormatVersion must be \"{RECIPE_FORMAT}\""));
    }
    if !s("ComponentName").is_some_and(|n| COMPONENT_NAME.accepts(n)) {
        p.push("ComponentName must be 1..128 of [a-zA-Z0-9-_.]".into());
    }
    if !s("ComponentVersion").is_some_and(|v| COMPONENT_VERSION.accepts(v)) {
        p.push("ComponentVersion must be a semantic version x.y.z".into());
    }
    if let Some(deps) = r.get("ComponentDependencies") {
        for (name, d) in deps.as_object().into_iter().flatten() {
            if d.get("VersionRequirement").and_then(Value::as_str).is_none() {
                p.push(format!("dependency {name}: VersionRequirement missing"));
            }
            if !matches!(d.get("DependencyType").and_then(Value::as_str), None | Some("HARD" | "SOFT")) {
                p.push(format!("dependency {name}: DependencyType must be HARD or SOFT"));
            }
        }
    }
    let manifests = r.get("Manifests").and_then(Value::as_array).filter(|m| !m.is_empty());
    let Some(manifests) = manifests else {
        p.push("Manifests must be a non-empty list".into());
        return p;
    };
    for (i, m) in manifests.iter().enumerate() {
        let plat = &m["Platform"];
        if plat["os"].as_str().is_none() {
            p.push(format!("Manifests[{i}].Platform.os missing"));
        }
        if !matches!(plat["architecture"].as_str(), Some("amd64" | "aarch64" | "arm" | "x86" | "*")) {
            p.push(format!("Manifests[{i}].Platform.architecture must be amd64, aarch64, arm, x86 or *"));
        }
        for (step, v) in m.get("Lifecycle").and_then(Value::as_object).into_iter().flatten() {
            if !LIFECYCLE_STEPS.contains(&step.as_str()) {
                p.push(format!("Manifests[{i}].Lifecycle.{step} is not a lifecycle step"));
            }
            if !(v.is_string() || v.get("Script").and_then(Value::as_str).is_some()) {
                p.push(format!("Manifests[{i}].Lifecycle.{step} needs a script"));
            }
        }
        for (j, a) in m.get("Artifacts").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("Manifests[{i}].Artifacts[{j}]");
            if !a["URI"].as_str().is_some_and(|u| u.starts_with("s3://") && u.len() > 5) {
                p.push(format!("{at}.URI must be an s3:// URI"));
            }
            if a["Algorithm"].as_str() != Some("SHA-256") {
                p.push(format!("{at}.Algorithm must be SHA-256"));
            }
            let d = a["Digest"].as_str().and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
            if d.map(|d| d.len()) != Some(32) {
                p.push(format!("{at}.Digest must be a base64 SHA-256"));
            }
            if !matches!(a["Unarchive"].as_str(), None | Some("NONE" | "ZIP")) {
                p.push(format!("{at}.Unarchive must be NONE or ZIP"));
            }
        }
    }
    p
}

/// `s3://bucket/key` → (bucket, key).
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

/// Checks a published component: the recipe at `bucket`/`key_prefix`/recipe.json follows the
/// format and every artifact it names exists and matches its digest. Returns the artifacts'
/// URIs; the error names the first artifact that is missing or was changed.
pub fn verify(store: &dyn OutputStore, bucket: &str, key_prefix: &str) -> Result<Vec<String>> {
    // Job messages print the prefix with a trailing slash: the same component.
    let key_prefix = key_prefix.strip_suffix('/').unwrap_or(key_prefix);
    let key = format!("{key_prefix}/{RECIPE_FILE}");
    let recipe: Value = serde_json::from_slice(&store.get(bucket, &key)?)
        .map_err(|e| ApiError::validation(format!("{}: not JSON: {e}", store.locate(bucket, &key))))?;
    let problems = recipe_problems(&recipe);
    if !problems.is_empty() {
        return Err(ApiError::validation(format!("{}: {}", store.locate(bucket, &key), problems.join("; "))));
    }
    let mut uris = Vec::new();
    for m in recipe["Manifests"].as_array().into_iter().flatten() {
        for a in m["Artifacts"].as_array().into_iter().flatten() {
            let uri = a["URI"].as_str().unwrap_or_default();
            let (b, k) = split_uri(uri)
                .ok_or_else(|| ApiError::validation(format!("artifact URI {uri} is not s3://bucket/key")))?;
            let bytes = store.get(b, k)?;
            let got = digest(&bytes);
            if Some(got.as_str()) != a["Digest"].as_str() {
                return Err(ApiError::validation(format!(
                    "artifact {uri} does not match the recipe: SHA-256 {got}, recipe says {}; it was changed after packaging",
                    a["Digest"].as_str().unwrap_or("?")
                )));
            }
            uris.push(uri.to_owned());
        }
    }
    Ok(uris)
}

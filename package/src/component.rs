//! Greengrass components (recipe format 2020-01-25): the recipe, and the check of a published
//! component against what the service writes (recipe, lifecycle scripts, artifacts and their
//! digests, manifest, signature).

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::agent_component;
use crate::blobs::sha256_hex;
use crate::error::{ApiError, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::output::{OutputFile, OutputStore};
use crate::packaging::{ARTIFACTS, LAST_FILE, MANIFEST_FILE};
use crate::signing::{self, PublicKey, SIGNATURE_FILE};
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

/// A component that passed [`verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The artifacts' URIs, in the recipe's order.
    pub artifacts: Vec<String>,
    /// The key its signature verified with ([`PublicKey::key_id`]).
    pub signed_by: String,
}

/// Checks a published component at `bucket`/`key_prefix` against what the service writes:
/// - the recipe follows format 2020-01-25, names the component its folder holds, and has the
///   lifecycle the service writes (a model component: the Install step's device parity check;
///   the agent: its Run step) and no other step;
/// - the set of artifacts is exactly the service's, each at `s3://bucket/key_prefix/<file>`,
///   each present and matching its digest;
/// - the signature (`signature.json`) verifies with `trusted` over the recipe and, for a
///   model component, `create-component-version.json`, whose inline recipe is the recipe
///   (so a publish that stopped before its last file does not verify);
/// - a model component's `manifest.json` agrees with the recipe and with the model and plan
///   it describes (their SHA-256s), and with the parity report.
///
/// Every problem found is reported at once in one ValidationException.
pub fn verify(store: &dyn OutputStore, bucket: &str, key_prefix: &str, trusted: &PublicKey) -> Result<Verified> {
    // Job messages print the prefix with a trailing slash: the same component.
    let key_prefix = key_prefix.strip_suffix('/').unwrap_or(key_prefix);
    let mut c = Check { store, bucket, prefix: key_prefix, problems: Vec::new() };
    let recipe_bytes = c.get(RECIPE_FILE)?.ok_or_else(|| c.failed())?;
    let recipe: Value = serde_json::from_slice(&recipe_bytes)
        .map_err(|e| ApiError::validation(format!("{}: not JSON: {e}", c.locate(RECIPE_FILE))))?;
    c.problems.extend(recipe_problems(&recipe));
    if !c.problems.is_empty() {
        return Err(c.failed());
    }
    let name = recipe["ComponentName"].as_str().unwrap_or_default();
    let version = recipe["ComponentVersion"].as_str().unwrap_or_default();
    let agent = name == AGENT_COMPONENT;
    let manifests = recipe["Manifests"].as_array().map(Vec::as_slice).unwrap_or_default();
    identity_problems(&mut c, &recipe, [name, version], manifests.len(), agent);
    let mut read = Read::default();
    for (i, m) in manifests.iter().enumerate() {
        read_manifest(&mut c, i, m, agent, &mut read)?;
    }
    // A model component's last file: the inline recipe must be the recipe; without it the
    // publish did not finish (reported as missing), and its signature cannot match.
    let create = if agent { None } else { c.get(LAST_FILE)? };
    if let Some(create) = &create {
        let inline = serde_json::from_slice::<Value>(create)
            .ok()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v["inlineRecipe"].as_str()?).ok());
        if inline.as_deref() != Some(recipe_bytes.as_slice()) {
            c.problem(format!("{LAST_FILE}'s inlineRecipe is not {RECIPE_FILE}"));
        }
    }
    if let (false, [arch]) = (agent, read.architectures.as_slice()) {
        manifest_problems(&mut c, name, version, arch, &read.files);
    }
    let mut signed_by = String::new();
    let complete = agent || create.is_some();
    if let Some(signature) = if complete { c.get(SIGNATURE_FILE)? } else { None } {
        let mut signed: Vec<(&str, &[u8])> = vec![(RECIPE_FILE, &recipe_bytes)];
        signed.extend(create.as_deref().map(|b| (LAST_FILE, b)));
        match signing::check(trusted, &signature, &signed) {
            Ok(()) => signed_by = trusted.key_id(),
            Err(e) => c.problem(e.to_string()),
        }
    }
    if !c.problems.is_empty() {
        return Err(c.failed());
    }
    Ok(Verified { artifacts: read.uris, signed_by })
}

/// The recipe's name and version against the folder it is in, its number of manifests and
/// its dependencies against the service's (a model component depends on the agent).
fn identity_problems(c: &mut Check<'_>, recipe: &Value, [name, version]: [&str; 2], manifests: usize, agent: bool) {
    let tail = format!("{name}/{version}");
    if c.prefix != tail && !c.prefix.ends_with(&format!("/{tail}")) {
        c.problem(format!("the recipe names {name} {version}, which does not belong at {}/", c.prefix));
    }
    if !agent && manifests != 1 {
        c.problem(format!("a model component has one manifest, this recipe has {manifests}"));
    }
    let expected_deps = if agent { json!(null) } else { json!({ AGENT_COMPONENT: { "DependencyType": "HARD" } }) };
    let deps = recipe.get("ComponentDependencies").unwrap_or(&Value::Null);
    let deps_kinds = deps.as_object().map(|d| {
        d.iter().map(|(k, v)| (k.clone(), json!({ "DependencyType": v["DependencyType"] }))).collect::<Map<_, _>>()
    });
    if deps_kinds.map(Value::Object).unwrap_or(Value::Null) != expected_deps {
        c.problem(format!("ComponentDependencies {deps} are not the service's ({expected_deps})"));
    }
}

/// What [`verify`] read of the manifests: the artifacts' URIs, the files with their bytes,
/// and the architectures.
#[derive(Default)]
struct Read<'r> {
    uris: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    architectures: Vec<&'r str>,
}

/// Manifest `i` of the recipe: one per architecture, the service's lifecycle step and script,
/// and exactly the service's artifacts, each read and checked against its digest.
fn read_manifest<'r>(c: &mut Check<'_>, i: usize, m: &'r Value, agent: bool, read: &mut Read<'r>) -> Result<()> {
    let arch = m["Platform"]["architecture"].as_str().unwrap_or_default();
    if read.architectures.contains(&arch) {
        c.problem(format!("Manifests[{i}]: a second manifest for {arch}"));
    }
    read.architectures.push(arch);
    let (step, script, expected): (&str, String, Vec<String>) = if agent {
        let binary = agent_component::binary_name(arch);
        ("Run", agent_component::run_script(&binary), vec![binary])
    } else {
        ("Install", agent_component::install_script(arch), ARTIFACTS.iter().map(|a| a.to_string()).collect())
    };
    let lifecycle = m["Lifecycle"].as_object().cloned().unwrap_or_default();
    let steps: Vec<&String> = lifecycle.keys().collect();
    if steps != [step] {
        c.problem(format!("Manifests[{i}].Lifecycle has {steps:?}; the service writes {step} only"));
    }
    let written = lifecycle.get(step).and_then(|s| s.get("Script").or(Some(s))).and_then(Value::as_str);
    if lifecycle.contains_key(step) && written != Some(script.as_str()) {
        c.problem(format!("Manifests[{i}].Lifecycle.{step} script is not the service's: {:?}", written.unwrap_or("?")));
    }
    let artifacts = m["Artifacts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let names: Vec<&str> = artifacts.iter().map(|a| a["URI"].as_str().unwrap_or_default()).collect();
    let want: Vec<String> = expected.iter().map(|f| format!("s3://{}/{}/{f}", c.bucket, c.prefix)).collect();
    if names != want {
        c.problem(format!("Manifests[{i}].Artifacts are {names:?}; the service writes {want:?}"));
        return Ok(());
    }
    for (a, file) in artifacts.iter().zip(&expected) {
        let Some(bytes) = c.get(file)? else { continue };
        let got = digest(&bytes);
        if Some(got.as_str()) != a["Digest"].as_str() {
            c.problem(format!(
                "artifact {} does not match the recipe: SHA-256 {got}, recipe says {}; it was changed after packaging",
                c.locate(file),
                a["Digest"].as_str().unwrap_or("?")
            ));
        }
        read.files.push((file.clone(), bytes));
    }
    read.uris.extend(want);
    Ok(())
}

/// The checks of a model component's manifest against the recipe and the artifacts.
fn manifest_problems(c: &mut Check<'_>, name: &str, version: &str, arch: &str, files: &[(String, Vec<u8>)]) {
    let file = |n: &str| files.iter().find(|f| f.0 == n).map(|f| f.1.as_slice());
    let Some(bytes) = file(MANIFEST_FILE) else { return };
    let m: Manifest = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return c.problem(format!("{MANIFEST_FILE} is not a manifest: {e}")),
    };
    if (m.component.name.as_str(), m.component.version.as_str()) != (name, version) {
        c.problem(format!(
            "{MANIFEST_FILE} describes {} {}, the recipe {name} {version}",
            m.component.name, m.component.version
        ));
    }
    for (what, named, want) in [("model", &m.model.file, &m.model.sha256), ("plan", &m.plan.file, &m.plan.sha256)] {
        match file(named) {
            None => c.problem(format!("{MANIFEST_FILE} names {what} file {named}, which is not an artifact")),
            Some(b) if sha256_hex(b) != *want => {
                c.problem(format!("{MANIFEST_FILE} gives the {what} SHA-256 {want}, {named} has {}", sha256_hex(b)))
            }
            Some(_) => {}
        }
    }
    let report: Option<Value> = file(&m.parity.file).and_then(|b| serde_json::from_slice(b).ok());
    if report.as_ref().and_then(|r| r["Status"].as_str()) != Some(m.parity.status.as_str()) {
        c.problem(format!("{MANIFEST_FILE} gives parity {}, {} does not agree", m.parity.status, m.parity.file));
    }
    if m.agent.binary != agent_component::binary_name(arch) || m.agent.component != AGENT_COMPONENT {
        c.problem(format!(
            "{MANIFEST_FILE} names agent {} {}, not the one for {arch}",
            m.agent.component, m.agent.binary
        ));
    }
}

/// The state of one [`verify`].
struct Check<'a> {
    store: &'a dyn OutputStore,
    bucket: &'a str,
    prefix: &'a str,
    problems: Vec<String>,
}

impl Check<'_> {
    fn locate(&self, file: &str) -> String {
        self.store.locate(self.bucket, &format!("{}/{file}", self.prefix))
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// A file of the component; a missing one is a problem (`None`), a store that fails an error.
    fn get(&mut self, file: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(self.bucket, &format!("{}/{file}", self.prefix)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind == ErrorKind::Validation => {
                self.problem(e.message);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn failed(&self) -> ApiError {
        ApiError::validation(format!(
            "component {}/ does not verify: {}",
            self.store.locate(self.bucket, self.prefix),
            self.problems.join("; ")
        ))
    }
}

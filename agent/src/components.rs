//! Model components on this device: the folders Greengrass installed under the artifacts root
//! (`<root>/<ComponentName>/<ComponentVersion>/manifest.json`, newest version of each name)
//! and folders named on the command line (`--model NAME=DIR`). A component's `manifest.json`
//! (written by the packaging job) says which model it is, its contract, the kernel set its plan
//! was packed for and the SHA-256 of each artifact.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use model::contract::ModelContract;
use serde_json::Value;

use crate::error::{read, Error, Result};
use sha2::{Digest, Sha256};

/// The file the device parity check writes (in the component's work folder or beside it).
pub const DEVICE_PARITY_FILE: &str = "device-parity.json";

/// One model component.
#[derive(Debug, Clone)]
pub struct Component {
    /// Greengrass component name (the API's `model_component`).
    pub name: String,
    /// Its version (`x.y.z`).
    pub version: String,
    /// The folder holding `model.eppl`, `model.onnx` and `manifest.json`.
    pub dir: PathBuf,
    /// Where its device parity report is (`{work:path}/device-parity.json`, or beside the
    /// artifacts for folders given with `--model`).
    pub parity_report: PathBuf,
    /// The model's ARN.
    pub model_arn: String,
    /// Input and output contract.
    pub contract: ModelContract,
    /// The kernel set the plan was packed for (`avx512`, `neon`, …).
    pub kernel_set: String,
    /// SHA-256 (hex) of `model.onnx`.
    pub model_sha256: String,
    /// SHA-256 (hex) of `model.eppl`, when the manifest records it.
    pub plan_sha256: Option<String>,
    /// Bytes of packed weights and constants.
    pub weight_bytes: u64,
    /// Bytes of activations one call needs.
    pub activation_bytes: u64,
}

impl Component {
    /// Reads `dir/manifest.json`; the work folder holds the device parity report.
    pub fn load(dir: &Path, work: Option<&Path>) -> Result<Component> {
        let path = dir.join("manifest.json");
        let bytes = read(path.clone())?;
        let manifest = |reason: String| Error::Manifest { path: path.clone(), reason };
        let m: Value = serde_json::from_slice(&bytes).map_err(|e| manifest(format!("not JSON: {e}")))?;
        let text = |p: &str| m.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let need = |p: &str| text(p).ok_or_else(|| manifest(format!("`{p}` missing")));
        let contract: ModelContract =
            serde_json::from_value(m["Contract"].clone()).map_err(|e| manifest(format!("Contract: {e}")))?;
        contract.check().map_err(|source| Error::Contract { path: path.clone(), source })?;
        let name = need("/Component/Name")?;
        let parity_report = match work {
            Some(w) => w.join(&name).join(DEVICE_PARITY_FILE),
            None => dir.join(DEVICE_PARITY_FILE),
        };
        Ok(Component {
            version: need("/Component/Version")?,
            dir: dir.to_owned(),
            parity_report,
            model_arn: need("/Model/ModelArn")?,
            contract,
            kernel_set: need("/Target/KernelSet")?,
            model_sha256: need("/Model/Sha256")?,
            plan_sha256: text("/Plan/Sha256"),
            weight_bytes: m.pointer("/Plan/WeightBytes").and_then(Value::as_u64).unwrap_or(0),
            activation_bytes: m.pointer("/Plan/ActivationBytes").and_then(Value::as_u64).unwrap_or(0),
            name,
        })
    }

    /// Reads the plan (`model.eppl`), checked against the manifest's digest, with the kernel
    /// set it was packed for; an error when this device cannot run that set.
    pub fn plan(&self) -> Result<(model::plan::Plan, Box<dyn kernels::KernelSet>)> {
        let bytes = self.read_verified("model.eppl")?;
        let plan = model::plan::Plan::from_bytes(&bytes)
            .map_err(|source| Error::Model { path: self.dir.join("model.eppl"), source })?;
        let set = kernels::kernel_set(plan.kernel_set)
            .map_err(|source| Error::KernelSet { kernel_set: plan.kernel_name.clone(), source })?;
        Ok((plan, set))
    }

    /// Reads an artifact and checks it against the manifest's digest.
    pub fn read_verified(&self, file: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(file);
        let bytes = read(path.clone())?;
        let want = match file {
            "model.onnx" => Some(&self.model_sha256),
            "model.eppl" => self.plan_sha256.as_ref(),
            _ => None,
        };
        if let Some(want) = want {
            let got = hex(&Sha256::digest(&bytes));
            if !got.eq_ignore_ascii_case(want) {
                return Err(Error::Digest { path, got, want: want.clone() });
            }
        }
        Ok(bytes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares `x.y.z` versions numerically (a part that is not a number sorts first).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split(['.', '-', '+']).take(3).map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b)).then_with(|| a.cmp(b))
}

/// The newest version of every model component under `root` (folders without a readable
/// manifest, such as the agent's own component, are not models and are passed over; the
/// reasons are returned for the log).
pub fn scan(root: &Path, work: Option<&Path>) -> (Vec<Component>, Vec<String>) {
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    let Ok(names) = std::fs::read_dir(root) else {
        return (found, vec![format!("{}: no such folder", root.display())]);
    };
    let mut names: Vec<PathBuf> = names.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    names.sort();
    for name_dir in names {
        let Ok(versions) = std::fs::read_dir(&name_dir) else { continue };
        let mut versions: Vec<PathBuf> =
            versions.flatten().map(|e| e.path()).filter(|p| p.join("manifest.json").is_file()).collect();
        versions.sort_by(|a, b| compare_versions(&file_name(b), &file_name(a)));
        if let Some(newest) = versions.first() {
            match Component::load(newest, work) {
                Ok(c) => found.push(c),
                Err(e) => skipped.push(e.to_string()),
            }
        }
    }
    (found, skipped)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

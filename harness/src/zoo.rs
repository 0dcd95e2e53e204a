//! The model zoo (`ci/fetch-zoo.sh`): exported open architectures and small networks, read
//! from the manifest `zoo.json` the export writes (no compiled-in list), with ONNX
//! Runtime's outputs for a fixed input of each.

use std::path::PathBuf;

use model::Tensor;

use crate::error::{read_fetched, Error, Result};

/// The zoo's folder under the cache (keep in step with `ci/fetch-zoo.sh`).
pub const ZOO_DIR: &str = "zoo-v1";

/// One model of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooModel {
    /// Name (file stem).
    pub name: String,
    /// The `.onnx` file.
    pub path: PathBuf,
    /// NCHW input shape it is planned at.
    pub shape: Vec<usize>,
    /// What it is.
    pub about: String,
    /// Where it comes from (`torchvision`, `timm`, `edgepack`).
    pub source: String,
    /// Whether its H and W were exported as dynamic dimensions.
    pub dynamic_hw: bool,
}

/// The zoo folder.
pub fn dir() -> PathBuf {
    crate::models::cache().join(ZOO_DIR)
}

const FETCH: &str = "run ci/fetch-zoo.sh; the README's test command does";

/// Every model of the manifest.
pub fn all() -> Result<Vec<ZooModel>> {
    let path = dir().join("zoo.json");
    let text = read_fetched(&path, FETCH)?;
    let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::data(&path, e))?;
    let models = doc["models"].as_array().ok_or_else(|| Error::data(&path, "no `models` list"))?;
    models
        .iter()
        .map(|m| {
            let s = |k: &str| {
                m[k].as_str().map(str::to_string).ok_or_else(|| Error::data(&path, format!("a model has no `{k}`")))
            };
            let shape = m["shape"]
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| Error::data(&path, "a model has no `shape`"))?;
            Ok(ZooModel {
                name: s("name")?,
                path: dir().join(s("file")?),
                shape,
                about: s("about")?,
                source: s("source")?,
                dynamic_hw: m["dynamic_hw"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

/// The models named in `EDGEPACK_ZOO` (comma-separated; unknown names are an error), or all.
pub fn selected() -> Result<Vec<ZooModel>> {
    let all = all()?;
    match std::env::var("EDGEPACK_ZOO") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(str::trim)
            .map(|n| {
                all.iter().find(|m| m.name == n).cloned().ok_or_else(|| {
                    Error::case(
                        "EDGEPACK_ZOO",
                        format!(
                            "no model `{n}` (known: {})",
                            all.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            })
            .collect(),
        _ => Ok(all),
    }
}

/// A zoo model by name.
pub fn find(name: &str) -> Result<ZooModel> {
    all()?.into_iter().find(|m| m.name == name).ok_or_else(|| Error::case(name, "no zoo model of this name"))
}

impl ZooModel {
    /// The model's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        read_fetched(&self.path, FETCH)
    }

    /// ONNX Runtime's folder for this model.
    pub fn ort_dir(&self) -> PathBuf {
        dir().join(format!("ort-{}", crate::models::ORT_VERSION)).join(&self.name)
    }

    /// The float64 reference's outputs for the fixed input, computed once by `compute` and
    /// cached beside ORT's (`reference-f64/<name>/output_<k>.npy`; the folder goes when the
    /// zoo is exported again, and deleting it recomputes).
    pub fn reference(&self, compute: impl FnOnce() -> Result<Vec<Tensor<f64>>>) -> Result<Vec<Tensor<f64>>> {
        let d = dir().join("reference-f64").join(&self.name);
        let done = d.join(".complete");
        if done.is_file() {
            let mut outs = Vec::new();
            while d.join(format!("output_{}.npy", outs.len())).is_file() {
                outs.push(crate::npy::read_f64(&d.join(format!("output_{}.npy", outs.len())))?);
            }
            return Ok(outs);
        }
        let outs = compute()?;
        for (k, t) in outs.iter().enumerate() {
            crate::npy::write_f64(&d.join(format!("output_{k}.npy")), t)?;
        }
        std::fs::write(&done, b"").map_err(|source| Error::Io { path: done.clone(), source })?;
        Ok(outs)
    }

    /// The fixed input and ONNX Runtime's outputs for it.
    pub fn ort_case(&self) -> Result<(Tensor, Vec<Tensor>)> {
        crate::models::read_case(&self.ort_dir())
    }
}

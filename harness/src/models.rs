//! The real models of the model-execution tests and benchmarks, fetched by
//! `ci/fetch-models.sh` from the `rapidocr-onnxruntime` wheel, with ONNX Runtime's outputs for
//! fixed synthetic inputs (`ci/ort_reference.py`).

use std::path::{Path, PathBuf};

use model::Tensor;

use crate::error::{read_fetched, Error, Result};

/// Pinned versions (keep in step with `ci/fetch-models.sh`).
pub const RAPIDOCR_VERSION: &str = "1.4.4";
/// ONNX Runtime that computed the reference outputs.
pub const ORT_VERSION: &str = "1.32.0";

/// A model with its input shape.
#[derive(Debug, Clone)]
pub struct RealModel {
    /// File stem.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// NCHW input shape.
    pub shape: [usize; 4],
}

/// The detection (segmentation) network at 640×640 and the classifier at 48×192.
pub const MODELS: [RealModel; 2] = [
    RealModel {
        name: "ch_PP-OCRv4_det_infer",
        about: "PP-OCRv4 text detection: PP-LCNetV3 backbone, FPN neck, ConvTranspose head, per-pixel probability map",
        shape: [1, 3, 640, 640],
    },
    RealModel {
        name: "ch_ppocr_mobile_v2.0_cls_infer",
        about: "PP-OCR mobile v2.0 text-direction classifier (MobileNetV3-style)",
        shape: [1, 3, 48, 192],
    },
];

/// The models the tests and benchmarks use: all of [`MODELS`], or those named in
/// `EDGEPACK_MODELS` (comma-separated file stems; the ARM64 run under qemu keeps to the
/// classifier, the detector's float64 reference taking minutes under emulation).
pub fn selected() -> Vec<&'static RealModel> {
    match std::env::var("EDGEPACK_MODELS") {
        Ok(list) if !list.trim().is_empty() => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            let chosen: Vec<_> = MODELS.iter().filter(|m| names.contains(&m.name)).collect();
            assert_eq!(
                chosen.len(),
                names.len(),
                "EDGEPACK_MODELS={list}: unknown model name (known: {:?})",
                MODELS.map(|m| m.name)
            );
            chosen
        }
        _ => MODELS.iter().collect(),
    }
}

/// The cache folder of fetched models and reference outputs (`EDGEPACK_CACHE`, default
/// `.cache` in the workspace).
pub fn cache() -> PathBuf {
    std::env::var_os("EDGEPACK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"))
}

/// `input_0.npy` and every `output_<k>.npy` of a reference folder.
pub fn read_case(d: &Path) -> Result<(Tensor, Vec<Tensor>)> {
    let path = d.join("input_0.npy");
    // A missing input means the fetch scripts have not run; a damaged one is a data error
    // (each message names the file once).
    let input = crate::npy::read(&path).map_err(|e| match e {
        edgepack_parity::npy::NpyError::Io { source, .. } => Error::NotFetched {
            path,
            source: Box::new(source),
            hint: "run the fetch scripts; the README's test command does",
        },
        e => Error::Npy(e),
    })?;
    let mut outputs = Vec::new();
    while d.join(format!("output_{}.npy", outputs.len())).is_file() {
        outputs.push(crate::npy::read(&d.join(format!("output_{}.npy", outputs.len())))?);
    }
    Ok((input, outputs))
}

impl RealModel {
    /// The `.onnx` file.
    pub fn path(&self) -> PathBuf {
        cache().join(format!("models/rapidocr-{RAPIDOCR_VERSION}/{}.onnx", self.name))
    }

    /// The model's bytes; the error says to run the fetch script.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        read_fetched(&self.path(), "run ci/fetch-models.sh; the README's test command does")
    }

    /// ONNX Runtime's folder for this model: `input_0.npy`, `output_0.npy`.
    pub fn ort_dir(&self) -> PathBuf {
        cache().join(format!("ort-{ORT_VERSION}-outputs/{}", self.name))
    }

    /// The synthetic input and ONNX Runtime's outputs for it.
    pub fn ort_case(&self) -> Result<(Tensor, Vec<Tensor>)> {
        read_case(&self.ort_dir())
    }

    /// The shape as a vector.
    pub fn shape(&self) -> Vec<usize> {
        self.shape.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_folder_without_its_input_is_reported_as_not_fetched_naming_the_file_once() {
        let dir = std::env::temp_dir().join(format!("edgepack-read-case-{}", std::process::id()));
        let e = read_case(&dir).unwrap_err();
        let text = e.to_string();
        let path = dir.join("input_0.npy").display().to_string();
        assert!(matches!(e, Error::NotFetched { .. }), "{text}");
        assert_eq!(text.matches(&path).count(), 1, "{text}");
        assert!(text.contains("fetch scripts"), "{text}");
    }
}

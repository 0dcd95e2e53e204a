//! What a device needs to use a model: the input tensor and its pixel normalization, and what
//! the outputs mean (an anomaly score with its threshold, or a segmentation mask with class
//! names and colors). Given at import, checked against the model, carried in `manifest.json`.

use serde::{Deserialize, Serialize};

/// The input contract and the output contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelContract {
    /// The image input.
    pub input: InputSpec,
    /// What the outputs mean.
    pub output: OutputSpec,
}

/// The image input: `NCHW` float32, RGB, `x = (pixel · Scale − Mean[c]) / Std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputSpec {
    /// The ONNX input's name.
    pub name: String,
    /// `[1, 3, H, W]`, fixed at import (dynamic dimensions are given by the importer).
    pub shape: Vec<usize>,
    /// Multiplies the 0..255 pixel first (1/255 for models trained on 0..1 images).
    pub scale: f64,
    /// Per-channel mean subtracted after scaling.
    pub mean: [f64; 3],
    /// Per-channel standard deviation divided by last.
    pub std: [f64; 3],
}

/// How to read the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutputSpec {
    /// An image classifier whose output holds an anomaly score.
    #[serde(rename_all = "PascalCase")]
    Classification {
        /// The output holding the scores.
        score_output: String,
        /// Which element of it is the anomaly score (e.g. 1 of `[normal, anomaly]`).
        score_index: usize,
        /// Scores at or above are anomalous.
        threshold: f64,
    },
    /// A segmentation network: a per-pixel mask.
    #[serde(rename_all = "PascalCase")]
    Segmentation {
        /// The output holding the mask (`[1, classes, H, W]` probabilities).
        mask_output: String,
        /// Per mask channel: the class and its color (first: background).
        classes: Vec<MaskClass>,
        /// Pixels at or above are the class's.
        threshold: f64,
    },
}

/// A mask class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MaskClass {
    /// Its name.
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// What is inconsistent in a contract by itself.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContractError {
    /// The input shape is not `[1, 3, H, W]`.
    #[error("input shape {0:?} must be [1, 3, H, W] with H, W ≥ 1")]
    InputShape(Vec<usize>),
    /// The pixel scale is not a positive number.
    #[error("input scale {0} must be a positive number")]
    Scale(f64),
    /// A mean is not finite or a standard deviation not positive.
    #[error("normalization mean {mean:?} / std {std:?}: std must be positive")]
    Normalization {
        /// The means given.
        mean: [f64; 3],
        /// The standard deviations given.
        std: [f64; 3],
    },
    /// The threshold lies outside `[0, 1]`.
    #[error("threshold {0} must be in [0, 1]")]
    Threshold(f64),
    /// A segmentation contract without mask classes.
    #[error("a segmentation model needs at least one mask class")]
    NoMaskClasses,
    /// A mask class whose color is not `#rrggbb`.
    #[error("class `{class}`: color `{color}` must be #rrggbb")]
    Color {
        /// The class.
        class: String,
        /// Its color as given.
        color: String,
    },
}

impl ModelContract {
    /// Checks the contract's own consistency (shape, normalization, threshold, colors); the
    /// model-dependent checks (names, channel counts) are in the importer.
    pub fn check(&self) -> Result<(), ContractError> {
        let s = &self.input.shape;
        if s.len() != 4 || s[0] != 1 || s[1] != 3 || s[2] == 0 || s[3] == 0 {
            return Err(ContractError::InputShape(s.clone()));
        }
        if !(self.input.scale.is_finite() && self.input.scale > 0.0) {
            return Err(ContractError::Scale(self.input.scale));
        }
        if self.input.std.iter().any(|v| !(v.is_finite() && *v > 0.0)) || self.input.mean.iter().any(|v| !v.is_finite())
        {
            return Err(ContractError::Normalization { mean: self.input.mean, std: self.input.std });
        }
        match &self.output {
            OutputSpec::Classification { threshold, .. } | OutputSpec::Segmentation { threshold, .. }
                if !(0.0..=1.0).contains(threshold) =>
            {
                Err(ContractError::Threshold(*threshold))
            }
            OutputSpec::Segmentation { classes, .. } if classes.is_empty() => Err(ContractError::NoMaskClasses),
            OutputSpec::Segmentation { classes, .. } => {
                for c in classes {
                    let hex = c.color.strip_prefix('#').unwrap_or("");
                    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ContractError::Color { class: c.name.clone(), color: c.color.clone() });
                    }
                }
                Ok(())
            }
            OutputSpec::Classification { .. } => Ok(()),
        }
    }
}

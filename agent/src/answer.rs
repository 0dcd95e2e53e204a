//! Reading a model's outputs the way its contract says, into the API's answer.
//!
//! - **Classification**: the score is element `ScoreIndex` of `ScoreOutput`; the image is
//!   anomalous when the score is at or above the threshold; `confidence` is the score when
//!   anomalous and `1 − score` otherwise.
//! - **Segmentation**: `MaskOutput` is `[1, classes, h, w]` class probabilities. A pixel takes the
//!   class with the highest probability among those at or above the threshold; a pixel no class
//!   claims, or one the class named `background` claims, is background. The label map is scaled
//!   to the request's image size (nearest neighbour) and drawn in the class colours (background:
//!   its class's colour, else black). `anomalies` lists every class of the contract with its
//!   share of the image's pixels in percent; the image is anomalous when any class other than the
//!   background covers a pixel. `confidence` is the mean over model pixels of the probability of
//!   the label chosen (`1 − max p` for unclaimed pixels).

use model::contract::{MaskClass, ModelContract, OutputSpec};
use model::Tensor;

use crate::error::{Error, Result};

/// What a call answers, before it is put into the API's messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Whether the image is anomalous.
    pub is_anomalous: bool,
    /// Confidence in `is_anomalous`, in `[0, 1]`.
    pub confidence: f32,
    /// The mask (segmentation): packed RGB888 at the request's image size.
    pub mask: Option<Vec<u8>>,
    /// Per class: name, share of the image in percent, `#rrggbb`.
    pub anomalies: Vec<(String, f32, String)>,
}

fn rgb(hex: &str) -> [u8; 3] {
    let h = hex.trim_start_matches('#');
    let byte = |i: usize| h.get(i..i + 2).and_then(|s| u8::from_str_radix(s, 16).ok()).unwrap_or(0);
    [byte(0), byte(2), byte(4)]
}

fn is_background(c: &MaskClass) -> bool {
    c.name.eq_ignore_ascii_case("background")
}

/// Reads `outputs` (named `names`, in the plan's order) for an image of `width × height`.
pub fn read(
    contract: &ModelContract,
    names: &[String],
    outputs: &[Tensor],
    width: usize,
    height: usize,
) -> Result<Answer> {
    // The named output's shape and values.
    let output = |want: &str| -> Result<(&[usize], &[f32])> {
        let i = names
            .iter()
            .position(|n| n == want)
            .ok_or_else(|| Error::Output(format!("the plan has no output `{want}`")))?;
        let v = outputs[i].floats().ok_or_else(|| Error::Output(format!("output `{want}` is not a float tensor")))?;
        Ok((&outputs[i].shape, v))
    };
    match &contract.output {
        OutputSpec::Classification { score_output, score_index, threshold } => {
            let (_, v) = output(score_output)?;
            let score = *v
                .get(*score_index)
                .ok_or_else(|| Error::Output(format!("output `{score_output}` has no element {score_index}")))?;
            let anomalous = f64::from(score) >= *threshold;
            let confidence = if anomalous { score } else { 1.0 - score };
            Ok(Answer {
                is_anomalous: anomalous,
                confidence: confidence.clamp(0.0, 1.0),
                mask: None,
                anomalies: vec![],
            })
        }
        OutputSpec::Segmentation { mask_output, classes, threshold } => {
            let (shape, v) = output(mask_output)?;
            if shape.len() != 4 || shape[1] != classes.len() {
                return Err(Error::Output(format!(
                    "mask output `{mask_output}` has shape {shape:?}, not [1, {}, h, w]",
                    classes.len()
                )));
            }
            Ok(segmentation(classes, *threshold as f32, v, shape[2], shape[3], width, height))
        }
    }
}

/// Label `k` (0..classes) for a claimed pixel, `classes` for background.
fn segmentation(
    classes: &[MaskClass],
    threshold: f32,
    p: &[f32],
    h: usize,
    w: usize,
    width: usize,
    height: usize,
) -> Answer {
    let plane = h * w;
    let background = classes.len();
    let mut labels = vec![background as u16; plane];
    let mut confidence = 0f64;
    for (px, label) in labels.iter_mut().enumerate() {
        let (mut best, mut best_p, mut max_p) = (background, f32::NEG_INFINITY, 0f32);
        for k in 0..classes.len() {
            let pk = p[k * plane + px];
            max_p = max_p.max(pk);
            if pk >= threshold && pk > best_p {
                (best, best_p) = (k, pk);
            }
        }
        if best < background && is_background(&classes[best]) {
            best = background;
        }
        *label = best as u16;
        confidence += f64::from(if best_p.is_finite() { best_p } else { 1.0 - max_p }).clamp(0.0, 1.0);
    }
    let bg_color = classes.iter().find(|c| is_background(c)).map_or([0, 0, 0], |c| rgb(&c.color));
    let colors: Vec<[u8; 3]> = classes.iter().map(|c| rgb(&c.color)).chain([bg_color]).collect();
    let mut counts = vec![0u64; classes.len() + 1];
    let mut mask = vec![0u8; width * height * 3];
    let cols: Vec<usize> = (0..width).map(|x| ((2 * x + 1) * w / (2 * width)).min(w - 1)).collect();
    for y in 0..height {
        let sy = ((2 * y + 1) * h / (2 * height)).min(h - 1);
        let row = &labels[sy * w..(sy + 1) * w];
        for (x, &sx) in cols.iter().enumerate() {
            let l = row[sx] as usize;
            counts[l] += 1;
            mask[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(&colors[l]);
        }
    }
    let total = (width * height) as f64;
    let anomalies = classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let n = if is_background(c) { counts[background] } else { counts[k] };
            (c.name.clone(), (100.0 * n as f64 / total) as f32, c.color.to_ascii_lowercase())
        })
        .collect();
    let is_anomalous = classes.iter().enumerate().any(|(k, c)| !is_background(c) && counts[k] > 0);
    Answer { is_anomalous, confidence: (confidence / plane.max(1) as f64) as f32, mask: Some(mask), anomalies }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[(&str, &str)]) -> Vec<MaskClass> {
        names.iter().map(|(n, c)| MaskClass { name: (*n).into(), color: (*c).into() }).collect()
    }

    #[test]
    fn one_class_mask_is_scaled_and_counted() {
        // A 2×2 model mask, top-left pixel over the threshold, scaled to a 4×4 image.
        let a = segmentation(&classes(&[("crack", "#FF0000")]), 0.5, &[0.9, 0.1, 0.2, 0.3], 2, 2, 4, 4);
        assert!(a.is_anomalous);
        assert_eq!(a.anomalies, vec![("crack".into(), 25.0, "#ff0000".into())]);
        let m = a.mask.unwrap();
        let px = |x: usize, y: usize| &m[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3];
        assert_eq!(px(0, 0), [255, 0, 0]);
        assert_eq!(px(1, 1), [255, 0, 0]);
        assert_eq!(px(2, 1), [0, 0, 0]);
        assert_eq!(px(3, 3), [0, 0, 0]);
        // confidence: mean of 0.9, 1−0.1, 1−0.2, 1−0.3.
        assert!((a.confidence - 0.825).abs() < 1e-6);
    }

    #[test]
    fn background_class_is_not_an_anomaly() {
        let c = classes(&[("background", "#000080"), ("scratch", "#00ff00")]);
        // Every pixel: background 0.8, scratch 0.2 → all background.
        let p = [0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.2];
        let a = segmentation(&c, 0.5, &p, 2, 2, 64, 64);
        assert!(!a.is_anomalous);
        assert_eq!(a.anomalies[0].1, 100.0);
        assert_eq!(a.anomalies[1].1, 0.0);
        assert_eq!(&a.mask.unwrap()[..3], &[0, 0, 128]);
    }

    #[test]
    fn classification_threshold_and_confidence() {
        let contract = ModelContract {
            input: model::contract::InputSpec {
                name: "x".into(),
                shape: vec![1, 3, 8, 8],
                scale: 1.0,
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            output: OutputSpec::Classification { score_output: "s".into(), score_index: 1, threshold: 0.5 },
        };
        let t = |v: f32| Tensor::float(vec![1, 2], vec![1.0 - v, v]);
        let a = read(&contract, &["s".into()], &[t(0.75)], 64, 64).unwrap();
        assert!(a.is_anomalous && a.confidence == 0.75 && a.mask.is_none());
        let a = read(&contract, &["s".into()], &[t(0.25)], 64, 64).unwrap();
        assert!(!a.is_anomalous && a.confidence == 0.75);
        assert!(read(&contract, &["other".into()], &[t(0.25)], 64, 64)
            .unwrap_err()
            .to_string()
            .contains("no output `s`"));
    }
}

//! From a camera image to the model's input: packed RGB888 pixels are resized to the
//! contract's input size and normalized as the contract says. The edge agent feeds every
//! request through [`to_input`]; the parity checks (packaging job and device) feed their seeded
//! image through it too, so what is checked is what is served.
//!
//! Resizing is bilinear with antialiasing (the triangle filter widened by the scale factor when
//! shrinking, as Pillow's `Image.resize(…, BILINEAR)` does), separable, in float32 without
//! intermediate rounding. Same size in and out is an exact copy.

use crate::contract::ModelContract;
use crate::rng::SplitMix;
use crate::Tensor;

/// A packed, interleaved RGB888 image (R, G, B byte order, rows top to bottom).
#[derive(Debug, Clone, Copy)]
pub struct Rgb8<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub pixels: &'a [u8],
}

/// An image whose byte count does not match its size (or whose size is zero or overflows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {width}x{height} RGB888 image has {} bytes, not {bytes}", want.map_or_else(|| "too many".to_string(), |n| n.to_string()))]
pub struct ImageSizeError {
    /// Width given.
    pub width: usize,
    /// Height given.
    pub height: usize,
    /// Bytes such an image has (`None`: more than `usize` holds).
    pub want: Option<usize>,
    /// Bytes given.
    pub bytes: usize,
}

impl<'a> Rgb8<'a> {
    /// Checks the byte count against the size.
    pub fn new(width: usize, height: usize, pixels: &'a [u8]) -> Result<Self, ImageSizeError> {
        let want = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if width == 0 || height == 0 || want != Some(pixels.len()) {
            return Err(ImageSizeError { width, height, want, bytes: pixels.len() });
        }
        Ok(Self { width, height, pixels })
    }
}

/// Filter taps per output coordinate: the first input index, how many inputs, and their
/// weights (`width` slots per coordinate, the first `count` used).
struct Taps {
    start: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<f32>,
    width: usize,
}

impl Taps {
    /// The first input index and the weights of output coordinate `i`.
    fn of(&self, i: usize) -> (usize, &[f32]) {
        (self.start[i], &self.weights[i * self.width..i * self.width + self.count[i]])
    }
}

fn taps(input: usize, output: usize) -> Taps {
    let scale = input as f64 / output as f64;
    let widen = scale.max(1.0);
    let width = (widen.ceil() as usize) * 2 + 1;
    let (mut start, mut count) = (Vec::with_capacity(output), Vec::with_capacity(output));
    let mut weights = vec![0f32; output * width];
    for i in 0..output {
        let center = (i as f64 + 0.5) * scale;
        let lo = ((center - widen + 0.5).floor().max(0.0)) as usize;
        let hi = (((center + widen + 0.5).floor()) as usize).min(input).max(lo + 1);
        let mut w: Vec<f64> =
            (lo..hi).map(|j| (1.0 - ((j as f64 - center + 0.5) / widen).abs()).max(0.0)).take(width).collect();
        // Zero weights at the ends (the triangle's edges) are not taps.
        while w.len() > 1 && w.last() == Some(&0.0) {
            w.pop();
        }
        let skip = w.iter().take_while(|&&v| v == 0.0).count().min(w.len() - 1);
        let sum: f64 = w.iter().sum();
        for (k, v) in w[skip..].iter().enumerate() {
            weights[i * width + k] = if sum > 0.0 { (v / sum) as f32 } else { f32::from(k == 0) };
        }
        start.push(lo + skip);
        count.push(w.len() - skip);
    }
    Taps { start, count, weights, width }
}

/// Resizes `img` to `out_w × out_h`, returning interleaved float RGB (0..255 scale).
pub fn resize(img: Rgb8<'_>, out_w: usize, out_h: usize) -> Vec<f32> {
    if (img.width, img.height) == (out_w, out_h) {
        // The filter is the identity at scale 1: the pixels as they are.
        return img.pixels.iter().map(|&p| f32::from(p)).collect();
    }
    let (tx, ty) = (taps(img.width, out_w), taps(img.height, out_h));
    // Horizontal pass: every input row to the output width.
    let mut rows = vec![0f32; img.height * out_w * 3];
    for (y, row) in rows.chunks_exact_mut(out_w * 3).enumerate() {
        let src = &img.pixels[y * img.width * 3..(y + 1) * img.width * 3];
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let (s0, w) = tx.of(x);
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                let p = &src[(s0 + k) * 3..(s0 + k) * 3 + 3];
                acc[0] += wk * f32::from(p[0]);
                acc[1] += wk * f32::from(p[1]);
                acc[2] += wk * f32::from(p[2]);
            }
            px.copy_from_slice(&acc);
        }
    }
    // Vertical pass.
    let mut out = vec![0f32; out_h * out_w * 3];
    let stride = out_w * 3;
    for (y, dst) in out.chunks_exact_mut(stride).enumerate() {
        let (s0, w) = ty.of(y);
        for (k, &wk) in w.iter().enumerate() {
            let src = &rows[(s0 + k) * stride..(s0 + k + 1) * stride];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += wk * s;
            }
        }
    }
    out
}

/// The model input for `img`: resized to the contract's `H × W`, normalized
/// `(pixel · scale − mean[c]) / std[c]`, planar `[1, 3, H, W]`.
pub fn to_input(img: Rgb8<'_>, contract: &ModelContract) -> Tensor {
    let s = &contract.input.shape;
    let (h, w) = (s[2], s[3]);
    let resized = resize(img, w, h);
    let spec = &contract.input;
    let plane = h * w;
    let mut values = vec![0f32; 3 * plane];
    for (i, px) in resized.chunks_exact(3).enumerate() {
        for c in 0..3 {
            values[c * plane + i] = ((f64::from(px[c]) * spec.scale - spec.mean[c]) / spec.std[c]) as f32;
        }
    }
    Tensor::float(vec![1, 3, h, w], values)
}

/// The parity checks' image: uniform pseudo-random 8-bit RGB at the contract's input size,
/// from `seed` (the same bytes on every platform).
pub fn seeded_pixels(contract: &ModelContract, seed: u64) -> Vec<u8> {
    let s = &contract.input.shape;
    let mut rng = SplitMix::new(seed);
    (0..s[2] * s[3] * 3).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{InputSpec, OutputSpec};

    fn contract(h: usize, w: usize) -> ModelContract {
        ModelContract {
            input: InputSpec {
                name: "x".into(),
                shape: vec![1, 3, h, w],
                scale: 1.0 / 255.0,
                mean: [0.5, 0.25, 0.0],
                std: [0.5, 0.25, 2.0],
            },
            output: OutputSpec::Classification { score_output: "y".into(), score_index: 0, threshold: 0.5 },
        }
    }

    #[test]
    fn same_size_is_an_exact_copy_and_normalizes_per_channel() {
        let px: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = Rgb8::new(5, 3, &px).unwrap();
        let r = resize(img, 5, 3);
        assert_eq!(r, px.iter().map(|&p| f32::from(p)).collect::<Vec<_>>());
        // Scale 1 along one axis through the filter (not the same-size shortcut): exact too.
        let row = &px[..5 * 3];
        let tall = resize(Rgb8::new(5, 1, row).unwrap(), 5, 4);
        for r in tall.chunks(5 * 3) {
            assert_eq!(r, row.iter().map(|&p| f32::from(p)).collect::<Vec<_>>());
        }
        let t = to_input(img, &contract(3, 5));
        assert_eq!(t.shape, [1, 3, 3, 5]);
        let v = t.floats().unwrap();
        // Pixel (x=1, y=2) of channel c is planar element c·15 + 2·5 + 1.
        for c in 0..3 {
            let p = f64::from(px[(2 * 5 + 1) * 3 + c]);
            let want = ((p / 255.0 - [0.5, 0.25, 0.0][c]) / [0.5, 0.25, 2.0][c]) as f32;
            assert_eq!(v[c * 15 + 2 * 5 + 1], want);
        }
    }

    #[test]
    fn upscaling_is_half_pixel_bilinear() {
        // One row [0, 100] to four columns: 0, 25, 75, 100 (edges clamp).
        let px = [0u8, 0, 0, 100, 100, 100];
        let r = resize(Rgb8::new(2, 1, &px).unwrap(), 4, 1);
        let red: Vec<f32> = r.chunks(3).map(|p| p[0]).collect();
        assert_eq!(red, [0.0, 25.0, 75.0, 100.0]);
    }

    #[test]
    fn downscaling_averages_with_a_widened_triangle() {
        // Four columns to two: each output weighs its two source pixels 3:3 and the next 1
        // (triangle of half-width 2): out0 = (3·a + 3·b + c) / 7.
        let row = [10u8, 20, 30, 40];
        let px: Vec<u8> = row.iter().flat_map(|&v| [v, v, v]).collect();
        let r = resize(Rgb8::new(4, 1, &px).unwrap(), 2, 1);
        assert!((r[0] - (3.0 * 10.0 + 3.0 * 20.0 + 30.0) / 7.0).abs() < 1e-4, "{r:?}");
        assert!((r[3] - (20.0 + 3.0 * 30.0 + 3.0 * 40.0) / 7.0).abs() < 1e-4, "{r:?}");
        // A constant image stays constant at any size.
        let flat = vec![77u8; 97 * 61 * 3];
        for (w, h) in [(13, 7), (200, 150), (97, 61), (1, 1)] {
            assert!(resize(Rgb8::new(97, 61, &flat).unwrap(), w, h).iter().all(|&v| (v - 77.0).abs() < 1e-3));
        }
    }

    #[test]
    fn byte_counts_are_checked() {
        assert!(Rgb8::new(4, 4, &[0; 47]).unwrap_err().to_string().contains("has 48 bytes, not 47"));
        assert!(Rgb8::new(0, 4, &[]).is_err());
        assert!(Rgb8::new(usize::MAX, 2, &[]).unwrap_err().to_string().contains("too many"));
    }
}

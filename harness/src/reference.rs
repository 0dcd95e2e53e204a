//! Float64 references: plain loops, no blocking, no SIMD, written independently of the kernels.

use kernels::{Activation, Bias, Epilogue, MatRef};

/// A reference result with, per element, what the tolerance model needs.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Final values (after the activation), row-major.
    pub value: Vec<f64>,
    /// Values before the activation, row-major.
    pub pre: Vec<f64>,
    /// `Σ|a·b| + |bias| + |residual|` per element: the scale of rounding error.
    pub abs_sum: Vec<f64>,
    /// The activation applied.
    pub activation: Activation,
}

/// ONNX semantics of each activation, in float64.
pub fn activate(act: Activation, x: f64) -> f64 {
    act.reference(x)
}

/// `activation(A·B + bias + residual)` in float64.
pub fn gemm(a: &MatRef<'_>, b: &MatRef<'_>, epi: &Epilogue<'_>) -> Reference {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "reference: inner dimensions differ");
    let mut value = vec![0.0; m * n];
    let mut pre = vec![0.0; m * n];
    let mut abs_sum = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut s_abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a.at(i, p) as f64 * b.at(p, j) as f64;
                s += prod;
                s_abs += prod.abs();
            }
            let bias = match epi.bias {
                Bias::None => 0.0,
                Bias::PerRow(v) => v[i] as f64,
                Bias::PerCol(v) => v[j] as f64,
            };
            let res = epi.residual.map_or(0.0, |r| r.at(i, j) as f64);
            s += bias + res;
            s_abs += bias.abs() + res.abs();
            pre[i * n + j] = s;
            abs_sum[i * n + j] = s_abs;
            value[i * n + j] = activate(epi.activation, s);
        }
    }
    Reference { m, n, k, value, pre, abs_sum, activation: epi.activation }
}

/// `activation(conv(x) + bias + residual)` in float64 with ONNX `Conv` / `ConvTranspose`
/// semantics on NHWC tensors; ONNX-layout weights. The result is the `(n·oh·ow) × c_out`
/// matrix; `k` is the longest reduction (`taps · c_in/groups`).
pub fn conv(
    p: &kernels::ConvParams,
    input: &kernels::ImageRef<'_>,
    weights: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&MatRef<'_>>,
    activation: Activation,
) -> Reference {
    conv_sums(p, input, weights).finish(bias, residual, activation)
}

/// A convolution's sums before its epilogue, which several epilogues on the same input and
/// weights share (the sums are the reference's whole cost).
#[derive(Debug, Clone)]
pub struct ConvSums {
    /// Output pixels (`n·oh·ow`).
    rows: usize,
    /// Output channels (the row length).
    c_out: usize,
    /// The longest reduction.
    k: usize,
    /// `Σ x·w` per output, row-major `(n·oh·ow) × c_out`.
    sum: Vec<f64>,
    /// `Σ |x·w|` per output.
    abs: Vec<f64>,
}

impl ConvSums {
    /// `activation(sums + bias + residual)`: the reference of [`conv`].
    pub fn finish(&self, bias: Option<&[f32]>, residual: Option<&MatRef<'_>>, activation: Activation) -> Reference {
        let mut pre = self.sum.clone();
        let mut abs = self.abs.clone();
        for (i, (v, a)) in pre.iter_mut().zip(abs.iter_mut()).enumerate() {
            let (r, oc) = (i / self.c_out, i % self.c_out);
            let (b, res) = (bias.map_or(0.0, |b| b[oc] as f64), residual.map_or(0.0, |m| m.at(r, oc) as f64));
            *v += b + res;
            *a += b.abs() + res.abs();
        }
        let value = pre.iter().map(|&v| activate(activation, v)).collect();
        Reference { m: self.rows, n: self.c_out, k: self.k, value, pre, abs_sum: abs, activation }
    }
}

/// The sums of [`conv`] (no epilogue).
pub fn conv_sums(p: &kernels::ConvParams, input: &kernels::ImageRef<'_>, weights: &[f32]) -> ConvSums {
    let [n, h, w, c_in] = input.dims();
    let [oh, ow] = p.output_hw(h, w).expect("reference: valid convolution");
    let (cg_in, cg_out, taps) = (p.c_in_per_group(), p.c_out_per_group(), p.taps());
    let [kh_n, kw_n] = p.kernel;
    let x = input.data();
    let rows = n * oh * ow;
    let mut sum = vec![0.0f64; rows * p.c_out];
    let mut abs = vec![0.0f64; rows * p.c_out];
    // Visit every (input pixel, tap) pair once and add its product where it lands: the same
    // loop serves Conv (gather form solved for the output) and ConvTranspose (scatter form).
    let transposed = matches!(p.kind, kernels::ConvKind::Transposed { .. });
    for img in 0..n {
        for kh in 0..kh_n {
            for kw in 0..kw_n {
                let (dy, dx) = ((kh * p.dilations[0]) as isize, (kw * p.dilations[1]) as isize);
                for oy in 0..oh {
                    for ox in 0..ow {
                        // Conv: iy = oy·s + kh·d − pad. ConvTranspose: oy + pad = iy·s + kh·d.
                        let (iy, ix) = if transposed {
                            let ny = oy as isize + p.pads[0] as isize - dy;
                            let nx = ox as isize + p.pads[1] as isize - dx;
                            let (sy, sx) = (p.strides[0] as isize, p.strides[1] as isize);
                            if ny < 0 || nx < 0 || ny % sy != 0 || nx % sx != 0 {
                                continue;
                            }
                            (ny / sy, nx / sx)
                        } else {
                            (
                                (oy * p.strides[0]) as isize + dy - p.pads[0] as isize,
                                (ox * p.strides[1]) as isize + dx - p.pads[1] as isize,
                            )
                        };
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            continue;
                        }
                        let src = ((img * h + iy as usize) * w + ix as usize) * c_in;
                        let dst = ((img * oh + oy) * ow + ox) * p.c_out;
                        for oc in 0..p.c_out {
                            let (g, o) = (oc / cg_out, oc % cg_out);
                            for ci in 0..cg_in {
                                let wi = if transposed {
                                    ((g * cg_in + ci) * cg_out + o) * taps + kh * kw_n + kw
                                } else {
                                    (oc * cg_in + ci) * taps + kh * kw_n + kw
                                };
                                let prod = x[src + g * cg_in + ci] as f64 * weights[wi] as f64;
                                sum[dst + oc] += prod;
                                abs[dst + oc] += prod.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    ConvSums { rows, c_out: p.c_out, k: taps * cg_in, sum, abs }
}

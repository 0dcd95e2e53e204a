//! Convolution weights packed once, in the form each algorithm wants, and serialized into a
//! package like GEMM weights.
//!
//! - dense and grouped `Conv`, and every `ConvTranspose`: one [`PackedB`] per group (per
//!   output phase and group for `ConvTranspose`), the implicit GEMM's `(taps·cg_in) × cg_out`
//!   right operand with K ordered (tap, channel), in panels as wide as the register tile that
//!   will run it ([`PanelWidths::for_n`]);
//! - depthwise `Conv`: `kh·kw` taps of `c_out` values, so one tap is a contiguous channel
//!   vector;
//! - a 3×3 `Conv` that [`winograd::suits`] on its input size: the 36 transformed weight
//!   matrices (`c_in × c_out` each) of Winograd F(4×4, 3×3), at the main tile's width;
//! - a grouped `Conv` with groups narrower than the tile ([`grouped::suits`]):
//!   `[group][tap][ci][co]`, for the direct grouped kernel.
//!
//! The algorithms other than the implicit GEMM and the depthwise kernel are chosen only when
//! packing for an input ([`crate::KernelSet::pack_conv_for_input`]).

use super::grouped;
use super::params::{ConvKind, ConvParams};
use super::plan::{forward_taps, transposed_phases};
use super::winograd;
use crate::error::{KernelError, Result};
use crate::mat::MatRef;
use crate::pack::{PackedB, PanelWidths, Reader};
use crate::Parallelism;

/// The packed forms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// Implicit-GEMM weights: per group (`Conv`), or per phase then group (`ConvTranspose`).
    Gemm(Vec<PackedB>),
    /// Depthwise weights, `[tap][c_out]`.
    Depthwise(Vec<f32>),
    /// Winograd F(4×4, 3×3) weights: one `c_in × c_out` matrix per transform point.
    Winograd(Vec<PackedB>),
    /// Weights of the direct grouped kernel, `[group][tap][ci][co]`.
    Grouped(Vec<f32>),
}

/// How a packed convolution runs (see [`PackedConv::algorithm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// The implicit GEMM (im2col fused into the packing of A; pointwise: the GEMM itself).
    ImplicitGemm,
    /// The direct depthwise kernel.
    Depthwise,
    /// Winograd F(4×4, 3×3): transforms around one GEMM per transform point.
    Winograd,
    /// The direct kernel for groups narrower than the register tile.
    Grouped,
}

impl ConvAlgorithm {
    /// The word that names the algorithm in serialized weights (the depthwise and implicit
    /// GEMM bodies share 0: the attributes tell them apart).
    fn tag(self) -> u64 {
        match self {
            ConvAlgorithm::ImplicitGemm | ConvAlgorithm::Depthwise => 0,
            ConvAlgorithm::Winograd => 1,
            ConvAlgorithm::Grouped => 2,
        }
    }
}

/// A convolution's weights packed for one kernel set; see [`crate::KernelSet::pack_conv`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv {
    kernel: String,
    params: ConvParams,
    body: Body,
}

const MAGIC: &[u8; 4] = b"EPKC";
const VERSION: u32 = 1;

impl PackedConv {
    /// Packs ONNX-layout weights for kernel set `kernel`, each implicit-GEMM part at the panel
    /// width `widths` chooses for its column count.
    /// With `input_hw` (the input's rows and columns, when known), a convolution that
    /// [`winograd::suits`] is packed for Winograd F(4×4, 3×3), and one that
    /// [`grouped::suits`] for the direct grouped kernel.
    pub(crate) fn pack(
        kernel: &str,
        widths: PanelWidths,
        params: &ConvParams,
        weights: &[f32],
        input_hw: Option<[usize; 2]>,
    ) -> Result<Self> {
        params.validate()?;
        if weights.len() != params.weight_len() {
            return Err(KernelError::Shape(format!(
                "convolution weights have {} values, {params:?} needs {}",
                weights.len(),
                params.weight_len()
            )));
        }
        let (taps, cg_in, cg_out) = (params.taps(), params.c_in_per_group(), params.c_out_per_group());
        let kw_n = params.kernel[1];
        let body = if input_hw.is_some_and(|hw| winograd::suits(params, hw)) {
            Body::Winograd(winograd::pack_weights(kernel, widths.nr, params, weights))
        } else if input_hw.is_some() && grouped::suits(params, widths.nr) {
            Body::Grouped(grouped::pack_weights(params, weights))
        } else if params.is_depthwise() {
            // ONNX [c_out, 1, kh, kw] → [tap][c_out].
            let mut dw = vec![0.0; taps * params.c_out];
            for oc in 0..params.c_out {
                for t in 0..taps {
                    dw[t * params.c_out + oc] = weights[oc * taps + t];
                }
            }
            Body::Depthwise(dw)
        } else {
            // Each phase's (kh, kw) list; a Conv has one phase holding every tap.
            let phases: Vec<Vec<(usize, usize)>> = match params.kind {
                ConvKind::Forward => vec![forward_taps(params).into_iter().map(|(k, _)| k).collect()],
                ConvKind::Transposed { .. } => transposed_phases(params).into_iter().map(|p| p.kernel_taps).collect(),
            };
            let mut packed = Vec::with_capacity(phases.len() * params.groups);
            for phase in &phases {
                for g in 0..params.groups {
                    let k = phase.len() * cg_in;
                    let mut b = vec![0.0; k * cg_out];
                    for (t, &(kh, kw)) in phase.iter().enumerate() {
                        let tap = kh * kw_n + kw;
                        for c in 0..cg_in {
                            for o in 0..cg_out {
                                let src = match params.kind {
                                    ConvKind::Forward => ((g * cg_out + o) * cg_in + c) * taps + tap,
                                    ConvKind::Transposed { .. } => ((g * cg_in + c) * cg_out + o) * taps + tap,
                                };
                                b[(t * cg_in + c) * cg_out + o] = weights[src];
                            }
                        }
                    }
                    packed.push(PackedB::pack(kernel, widths.for_n(cg_out), &MatRef::row_major(&b, k, cg_out)?));
                }
            }
            Body::Gemm(packed)
        };
        Ok(Self { kernel: kernel.to_owned(), params: *params, body })
    }

    /// The convolution these weights belong to.
    pub fn params(&self) -> &ConvParams {
        &self.params
    }

    /// Name of the kernel set this was packed for.
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// The algorithm these weights were packed for.
    pub fn algorithm(&self) -> ConvAlgorithm {
        match self.body {
            Body::Gemm(_) => ConvAlgorithm::ImplicitGemm,
            Body::Depthwise(_) => ConvAlgorithm::Depthwise,
            Body::Winograd(_) => ConvAlgorithm::Winograd,
            Body::Grouped(_) => ConvAlgorithm::Grouped,
        }
    }

    /// Whether [`PackedConv::scale_inputs_into`] applies: implicit-GEMM weights of a forward
    /// convolution in one group.
    pub fn scales_inputs(&self) -> bool {
        matches!(self.body, Body::Gemm(_)) && self.params.kind == ConvKind::Forward && self.params.groups == 1
    }

    /// Writes into `dst` these weights with input channel `c`'s multiplied by `scale[c]`, so
    /// that convolving `x` with `dst` computes the convolution of `x·scale` (per channel) with
    /// these: a squeeze-excitation gate folded into the convolution that reads the gated
    /// tensor, cheaper than a pass over that tensor where the weights are the smaller.
    /// `dst` must be a copy of these weights (a clone, made once and reused); errors when
    /// [`PackedConv::scales_inputs`] is false, on a scale per channel of the wrong length,
    /// or on a `dst` of another shape. With `par`, the copy is written by the current threads.
    pub fn scale_inputs_into(&self, scale: &[f32], dst: &mut PackedConv, par: Parallelism) -> Result<()> {
        if !self.scales_inputs() {
            return Err(KernelError::Packed(format!(
                "input channel scales need implicit-GEMM weights of a one-group forward convolution, not {:?} with {:?}",
                self.algorithm(),
                self.params
            )));
        }
        if scale.len() != self.params.c_in {
            return Err(KernelError::Shape(format!(
                "{} input channel scales for a convolution of {} input channels",
                scale.len(),
                self.params.c_in
            )));
        }
        match (&self.body, &mut dst.body) {
            (Body::Gemm(src), Body::Gemm(out)) if dst.params == self.params && src.len() == out.len() => {
                let parallel = par == Parallelism::Threads;
                src.iter().zip(out.iter_mut()).try_for_each(|(s, o)| s.scale_rows_into(scale, o, parallel))
            }
            _ => Err(KernelError::Shape(format!(
                "the scaled copy ({:?}, {:?}) is not a copy of these weights ({:?}, {:?})",
                dst.algorithm(),
                dst.params,
                self.algorithm(),
                self.params
            ))),
        }
    }

    pub(crate) fn body(&self) -> &Body {
        &self.body
    }

    /// Serializes to a self-describing little-endian blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.kernel.len() as u32).to_le_bytes());
        out.extend_from_slice(self.kernel.as_bytes());
        for v in param_words(&self.params, self.algorithm().tag()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        match &self.body {
            Body::Gemm(blobs) | Body::Winograd(blobs) => {
                out.extend_from_slice(&(blobs.len() as u64).to_le_bytes());
                for b in blobs {
                    let bytes = b.to_bytes();
                    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    out.extend_from_slice(&bytes);
                }
            }
            Body::Depthwise(w) | Body::Grouped(w) => {
                out.extend_from_slice(&(w.len() as u64).to_le_bytes());
                for v in w {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out
    }

    /// Parses a blob written by [`PackedConv::to_bytes`], checking the attributes and that
    /// every packed part has the shape they imply.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| KernelError::Packed(format!("convolution weights: {m}"));
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(bad("not a packed-convolution blob (bad magic)".into()));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(format!("format version {version}, this build reads {VERSION}")));
        }
        let name_len = r.u32()? as usize;
        if name_len == 0 || name_len > 64 {
            return Err(bad(format!("kernel name length {name_len} out of range 1..=64")));
        }
        let kernel = std::str::from_utf8(r.take(name_len)?).map_err(|_| bad("kernel name is not UTF-8".into()))?;
        let mut words = [0u64; PARAM_WORDS];
        for w in &mut words {
            *w = r.u64()?;
        }
        let (params, tag) = params_from_words(&words).ok_or_else(|| bad("attributes out of range".into()))?;
        params.validate().map_err(|e| bad(e.to_string()))?;
        let wino = tag == ConvAlgorithm::Winograd.tag();
        if wino && !winograd::attributes_suit(&params) {
            return Err(bad(format!("Winograd weights for a convolution it does not suit: {params:?}")));
        }
        let direct = tag == ConvAlgorithm::Grouped.tag();
        if direct && !grouped::suits(&params, usize::MAX) {
            return Err(bad(format!("direct grouped weights for a convolution that is not grouped: {params:?}")));
        }
        let count = usize::try_from(r.u64()?).map_err(|_| bad("count too large".into()))?;
        let body = if params.is_depthwise() || direct {
            let expected = params.weight_len();
            if count != expected || bytes.len() - r.pos != 4 * expected {
                return Err(bad(format!(
                    "{} body must hold {expected} values",
                    ["depthwise", "grouped"][usize::from(direct)]
                )));
            }
            let w =
                r.take(4 * expected)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            match direct {
                true => Body::Grouped(w),
                false => Body::Depthwise(w),
            }
        } else {
            // Check the count before building anything from it: each part takes at least its
            // 8-byte length prefix, so a count beyond the blob's size is a corrupt blob.
            let phases = match params.kind {
                ConvKind::Forward => 1,
                ConvKind::Transposed { .. } => params.strides[0] * params.strides[1],
            };
            let expected = if wino { winograd::POINTS } else { phases * params.groups };
            if count != expected || count > (bytes.len() - r.pos) / 8 {
                return Err(bad(format!("{count} packed parts, the attributes imply {expected}")));
            }
            let shapes = match wino {
                true => vec![(params.c_in, params.c_out); winograd::POINTS],
                false => gemm_shapes(&params),
            };
            let mut parts = Vec::with_capacity(count);
            for (k, n) in shapes {
                let len = usize::try_from(r.u64()?).map_err(|_| bad("part too large".into()))?;
                let part = PackedB::from_bytes(r.take(len)?)?;
                if part.k() != k || part.n() != n || part.kernel() != kernel {
                    return Err(bad(format!(
                        "part is {}x{} for `{}`, expected {k}x{n} for `{kernel}`",
                        part.k(),
                        part.n(),
                        part.kernel()
                    )));
                }
                parts.push(part);
            }
            if r.pos != bytes.len() {
                return Err(bad(format!("{} trailing bytes", bytes.len() - r.pos)));
            }
            if wino {
                Body::Winograd(parts)
            } else {
                Body::Gemm(parts)
            }
        };
        Ok(Self { kernel: kernel.to_owned(), params, body })
    }
}

/// `(k, n)` of every implicit-GEMM part the attributes imply, in packing order.
fn gemm_shapes(p: &ConvParams) -> Vec<(usize, usize)> {
    let taps_per_phase: Vec<usize> = match p.kind {
        ConvKind::Forward => vec![p.taps()],
        ConvKind::Transposed { .. } => transposed_phases(p).iter().map(|ph| ph.kernel_taps.len()).collect(),
    };
    taps_per_phase
        .into_iter()
        .flat_map(|t| std::iter::repeat_n((t * p.c_in_per_group(), p.c_out_per_group()), p.groups))
        .collect()
}

const PARAM_WORDS: usize = 17;

/// The attributes as words; the last is the algorithm's tag ([`ConvAlgorithm::tag`]).
fn param_words(p: &ConvParams, tag: u64) -> [u64; PARAM_WORDS] {
    let (kind, op) = match p.kind {
        ConvKind::Forward => (0, [0, 0]),
        ConvKind::Transposed { output_padding } => (1, output_padding),
    };
    let v = [
        kind,
        op[0],
        op[1],
        p.c_in,
        p.c_out,
        p.kernel[0],
        p.kernel[1],
        p.strides[0],
        p.strides[1],
        p.dilations[0],
        p.dilations[1],
        p.pads[0],
        p.pads[1],
        p.pads[2],
        p.pads[3],
        p.groups,
    ];
    let mut words = [0; PARAM_WORDS];
    for (w, x) in words.iter_mut().zip(v) {
        *w = x as u64;
    }
    words[PARAM_WORDS - 1] = tag;
    words
}

/// The attributes, and the algorithm's tag (checked to be one).
fn params_from_words(w: &[u64; PARAM_WORDS]) -> Option<(ConvParams, u64)> {
    // Channel counts beyond 2^24 are no vision model's and would only serve to exhaust memory.
    let u = |i: usize| usize::try_from(w[i]).ok().filter(|&v| v <= 1 << 24);
    let kind = match w[0] {
        0 => ConvKind::Forward,
        1 => ConvKind::Transposed { output_padding: [u(1)?, u(2)?] },
        _ => return None,
    };
    let tag = w[PARAM_WORDS - 1];
    if tag > ConvAlgorithm::Grouped.tag() {
        return None;
    }
    let params = ConvParams {
        kind,
        c_in: u(3)?,
        c_out: u(4)?,
        kernel: [u(5)?, u(6)?],
        strides: [u(7)?, u(8)?],
        dilations: [u(9)?, u(10)?],
        pads: [u(11)?, u(12)?, u(13)?, u(14)?],
        groups: u(15)?,
    };
    Some((params, tag))
}

#[cfg(test)]
mod tests {
    use super::{Body, PackedConv};
    use crate::conv::params::ConvParams;
    use crate::pack::PanelWidths;

    #[test]
    fn parts_are_packed_at_the_width_their_columns_choose_and_keep_it() {
        let widths = PanelWidths { nr: 16, wide: Some(24), half_width_wide: false };
        for (c_out, groups, nr) in [(24, 1, 24), (48, 2, 24), (48, 1, 16), (40, 1, 16)] {
            let params = ConvParams { groups, ..ConvParams::new(8, c_out, [3, 3]) };
            let w: Vec<f32> = (0..params.weight_len()).map(|i| i as f32).collect();
            let packed = PackedConv::pack("avx2", widths, &params, &w, None).unwrap();
            let back = PackedConv::from_bytes(&packed.to_bytes()).unwrap();
            for p in [&packed, &back] {
                let Body::Gemm(parts) = p.body() else { panic!("dense weights packed as depthwise") };
                assert!(parts.iter().all(|b| b.nr() == nr), "c_out {c_out} in {groups} groups: want nr {nr}");
            }
        }
    }
}

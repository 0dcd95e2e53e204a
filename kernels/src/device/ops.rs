//! The operations a [`super::Device`] runs on handles: convolutions and GEMMs with their fused
//! epilogues, element-wise chains, broadcasting binaries, strided copies (every data-movement
//! step), pooling, resize and softmax.

use super::Handle;
use crate::error::{KernelError, Result};
use crate::{Activation, PoolParams, Unary};

/// An operand: a tensor, or a constant of the model ([`super::ModelData::consts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// A tensor of the workspace.
    Tensor(Handle),
    /// A constant, by index.
    Const(usize),
}

/// The fused epilogue of a convolution or GEMM: `activation(acc + bias + residual)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epi {
    /// Per-output-channel bias: a constant, by index.
    pub bias: Option<usize>,
    /// Activation applied last.
    pub activation: Activation,
    /// An output-shaped tensor added before the activation.
    pub residual: Option<Handle>,
}

/// One operation of an element-wise chain ([`Op::Map`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MapStep {
    /// An activation (every one the CPU sets have).
    Act(Activation),
    /// A transcendental function.
    Unary(Unary),
    /// `x · k[c]`: a constant of one value or one per channel.
    Mul(usize),
    /// `x + k[c]`.
    Add(usize),
}

/// The operator of [`Op::Binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
}

impl BinaryOp {
    /// `a ∘ b`.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

/// A strided copy: element `(i₀, …)` of the iteration space `dims` goes from
/// `src[src_offset + Σ iₖ·src_strides[k]]` to `dst[dst_offset + Σ iₖ·dst_strides[k]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StridedCopy {
    /// Iteration space, outermost first (at most 6 axes after merging on the GPU).
    pub dims: Vec<usize>,
    /// Source strides per axis.
    pub src_strides: Vec<usize>,
    /// Destination strides per axis.
    pub dst_strides: Vec<usize>,
    /// First source element.
    pub src_offset: usize,
    /// First destination element.
    pub dst_offset: usize,
}

impl StridedCopy {
    /// A dense copy of `len` elements.
    pub fn dense(len: usize) -> Self {
        Self { dims: vec![len], src_strides: vec![1], dst_strides: vec![1], ..Self::default() }
    }

    /// The same copy with axes of one element dropped and neighbours that are contiguous in
    /// both tensors merged (fewer divisions per element, and most copies fit the GPU kernel's
    /// six axes).
    pub fn merged(&self) -> Self {
        let mut m = Self { src_offset: self.src_offset, dst_offset: self.dst_offset, ..Self::default() };
        for ((&d, &s), &t) in self.dims.iter().zip(&self.src_strides).zip(&self.dst_strides) {
            if d == 1 {
                continue;
            }
            match (m.dims.last_mut(), m.src_strides.last_mut(), m.dst_strides.last_mut()) {
                (Some(pd), Some(ps), Some(pt)) if *ps == s * d && *pt == t * d => {
                    *pd *= d;
                    (*ps, *pt) = (s, t);
                }
                _ => {
                    m.dims.push(d);
                    m.src_strides.push(s);
                    m.dst_strides.push(t);
                }
            }
        }
        m
    }

    /// Elements copied.
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether it has one stride per axis on each side.
    pub fn well_formed(&self) -> bool {
        self.dims.len() == self.src_strides.len() && self.dims.len() == self.dst_strides.len()
    }

    /// One past the last element one side touches (its `strides` and `offset`).
    pub fn reach(&self, strides: &[usize], offset: usize) -> usize {
        reach(&self.dims, strides, offset)
    }

    /// Runs the copy on the host from `x` into `y`, checked against both lengths first.
    pub fn apply(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        if !self.well_formed() {
            return Err(KernelError::Shape("a strided copy needs one stride per axis on each side".into()));
        }
        if self.elements() == 0 {
            return Ok(());
        }
        if self.reach(&self.src_strides, self.src_offset) > x.len()
            || self.reach(&self.dst_strides, self.dst_offset) > y.len()
        {
            return Err(KernelError::Shape(format!(
                "a strided copy {self:?} reaches past its tensors ({} → {})",
                x.len(),
                y.len()
            )));
        }
        for flat in 0..self.elements() {
            let (mut rest, mut s, mut d) = (flat, self.src_offset, self.dst_offset);
            for axis in (0..self.dims.len()).rev() {
                let i = rest % self.dims[axis];
                rest /= self.dims[axis];
                s += i * self.src_strides[axis];
                d += i * self.dst_strides[axis];
            }
            y[d] = x[s];
        }
        Ok(())
    }
}

/// One past the last element of a non-empty iteration over `dims` at `strides` from `offset`.
pub(crate) fn reach(dims: &[usize], strides: &[usize], offset: usize) -> usize {
    offset + 1 + dims.iter().zip(strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>()
}

/// The source taps of a resize: per output row and column `(i0, i1, weight of i1)` (nearest:
/// `i0` only).
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    /// Per output row.
    pub rows: Vec<(usize, usize, f32)>,
    /// Per output column.
    pub cols: Vec<(usize, usize, f32)>,
    /// Linear interpolation (else nearest).
    pub linear: bool,
}

impl Taps {
    /// One past the largest source row and column the taps read.
    pub fn reach(&self) -> [usize; 2] {
        let end = |t: &[(usize, usize, f32)]| {
            t.iter().map(|&(a, b, _)| a.max(if self.linear { b } else { a }) + 1).max().unwrap_or(0)
        };
        [end(&self.rows), end(&self.cols)]
    }
}

/// One operation of a model on a device. Images are NHWC.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A convolution of `input` (`dims`) with packed weights `weights` into `output`.
    Conv {
        /// Weights, by index ([`super::ModelData::convs`]).
        weights: usize,
        /// The input image.
        input: Handle,
        /// Its dims.
        dims: [usize; 4],
        /// Bias, activation, residual.
        epi: Epi,
        /// The output image.
        output: Handle,
    },
    /// `output = a · weights` for `a` of `rows` rows.
    Gemm {
        /// The left operand, row-major.
        a: Handle,
        /// Its rows.
        rows: usize,
        /// Packed weights, by index ([`super::ModelData::gemms`]).
        weights: usize,
        /// Bias, activation, residual.
        epi: Epi,
        /// The output, row-major.
        output: Handle,
    },
    /// `output = chain(input)` element by element; element `i` has channel `(i / stride) % c`
    /// for `channels = (c, stride)`.
    Map {
        /// The input.
        input: Handle,
        /// The chain, applied in order.
        chain: Vec<MapStep>,
        /// `(c, stride)`.
        channels: (usize, usize),
        /// The output (the input's length).
        output: Handle,
    },
    /// `output = a ∘ b` over the 4 axes `dims`, each operand read at its strides (0 along
    /// broadcast axes).
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand and its strides.
        a: (Operand, [usize; 4]),
        /// Right operand and its strides.
        b: (Operand, [usize; 4]),
        /// The output's dims (dense).
        dims: [usize; 4],
        /// The output.
        output: Handle,
    },
    /// Strided copies into `output`, in order (relayouts, transposes, crops, gathers,
    /// concatenations, depth-to-space, copies).
    Copies {
        /// Each copy's source and geometry.
        parts: Vec<(Operand, StridedCopy)>,
        /// The destination.
        output: Handle,
    },
    /// Max or average pooling of `input` (`dims`) into `output` (`[n, oh, ow, c]`).
    Pool {
        /// The input image.
        input: Handle,
        /// Its dims.
        dims: [usize; 4],
        /// Window, strides, pads, mode.
        params: PoolParams,
        /// Output rows and columns.
        out_hw: [usize; 2],
        /// The output image.
        output: Handle,
    },
    /// The mean over H×W of `input` (`dims`) into `output` (`[n, c]`).
    GlobalAveragePool {
        /// The input image.
        input: Handle,
        /// Its dims.
        dims: [usize; 4],
        /// The output.
        output: Handle,
    },
    /// A resize of `input` (`dims`) by `taps` into NHWC `output`, or NCHW when `planes`.
    Resize {
        /// The input image.
        input: Handle,
        /// Its dims.
        dims: [usize; 4],
        /// The source taps of each output row and column.
        taps: Taps,
        /// NCHW output.
        planes: bool,
        /// The output.
        output: Handle,
    },
    /// Layer normalisation of each `len`-value row of `input` into `output`:
    /// `(x − mean) / √(var + epsilon) · scale + bias`.
    LayerNorm {
        /// The input, whole rows.
        input: Handle,
        /// Row length.
        len: usize,
        /// Scale: a constant of `len` values.
        scale: usize,
        /// Bias: a constant of `len` values, or none.
        bias: Option<usize>,
        /// Added to the variance.
        epsilon: f32,
        /// The output (the input's length).
        output: Handle,
    },
    /// A batched product of two tensors: per batch index, `m × k` by `k × n` (both row-major)
    /// into the dense `[batch…, m, n]` output, each operand at its own batch strides (0 where
    /// it broadcasts).
    MatMul {
        /// Left operand.
        a: Handle,
        /// Right operand.
        b: Handle,
        /// `(m, k, n)`.
        dims: (usize, usize, usize),
        /// The output's batch axes (at most 4 on the GPU).
        batch: Vec<usize>,
        /// Element offset of each batch axis in `a`.
        a_strides: Vec<usize>,
        /// Element offset of each batch axis in `b`.
        b_strides: Vec<usize>,
        /// The output.
        output: Handle,
    },
    /// Softmax of `input` along `len` values at stride `inner`, `outer` times, into `output`.
    Softmax {
        /// The input.
        input: Handle,
        /// `(outer, len, inner)`.
        dims: (usize, usize, usize),
        /// The output.
        output: Handle,
    },
}

/// The offsets in `a` and `b` of batch index `i` over `batch` axes at their strides.
pub fn batch_offsets(i: usize, batch: &[usize], a_strides: &[usize], b_strides: &[usize]) -> (usize, usize) {
    let (mut ao, mut bo, mut rest) = (0, 0, i);
    for d in (0..batch.len()).rev() {
        let q = rest % batch[d];
        rest /= batch[d];
        ao += q * a_strides[d];
        bo += q * b_strides[d];
    }
    (ao, bo)
}

impl Op {
    /// The tensor the operation writes.
    pub fn output(&self) -> Handle {
        match self {
            Op::Conv { output, .. }
            | Op::Gemm { output, .. }
            | Op::Map { output, .. }
            | Op::Binary { output, .. }
            | Op::Copies { output, .. }
            | Op::Pool { output, .. }
            | Op::GlobalAveragePool { output, .. }
            | Op::Resize { output, .. }
            | Op::LayerNorm { output, .. }
            | Op::MatMul { output, .. }
            | Op::Softmax { output, .. } => *output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_copies_merge_contiguous_axes_and_drop_unit_ones() {
        // NCHW [2, 3, 4, 5] → NHWC: iteration over (n, h·w, c) after merging h and w.
        let c = StridedCopy {
            dims: vec![2, 4, 5, 3],
            src_strides: vec![60, 5, 1, 20],
            dst_strides: vec![60, 15, 3, 1],
            ..Default::default()
        };
        let m = c.merged();
        assert_eq!(m.dims, vec![2, 20, 3]);
        assert_eq!(m.src_strides, vec![60, 1, 20]);
        assert_eq!(m.dst_strides, vec![60, 3, 1]);
        assert_eq!(m.reach(&m.src_strides, 0), 120);
        // A dense copy of a [1, 8, 1, 6] block is one axis.
        let d = StridedCopy {
            dims: vec![1, 8, 1, 6],
            src_strides: vec![48, 6, 6, 1],
            dst_strides: vec![48, 6, 6, 1],
            src_offset: 3,
            dst_offset: 0,
        };
        let m = d.merged();
        assert_eq!((m.dims.clone(), m.src_strides.clone(), m.src_offset), (vec![48], vec![1], 3));
        assert_eq!(m.reach(&m.src_strides, m.src_offset), 51);
        assert_eq!(StridedCopy::dense(0).merged().elements(), 0);
    }
}

//! Weights uploaded once, in the layout each CUDA kernel reads.
//!
//! - f32, and f16 where the tensor-core kernel cannot run: the host's 128-column panels
//!   ([`PackedB`] with `nr = 128`), one block's B tile per panel, zero-padded;
//! - f16 for the tensor-core kernel: the transpose `Bt[j][k]`, so `ldmatrix` reads B's
//!   fragments without a transposing load;
//! - depthwise: `[tap][c_out]`.

use cudarc::driver::CudaSlice;

use super::device::{DeviceBuf, Gpu, Precision};
use crate::conv::{forward_taps, transposed_phases};
use crate::conv::{Body, ConvKind, ConvParams, PackedConv};
use crate::error::{KernelError, Result};
use crate::pack::PackedB;

/// An output phase `(oy mod s_h, ox mod s_w)`.
type Phase = [usize; 2];
/// A tap's input offset `(dy, dx)`.
type Offset = (isize, isize);

/// Panel width of the CUDA set's packed weights: the GEMM kernels' N tile.
pub const NR: usize = crate::CUDA_NR;

/// How one GEMM's B is laid out on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// 128-column panels: `B(k, j) = b[(j/128)·k_len·128 + k·128 + j%128]`.
    Panels,
    /// `B(k, j) = b[j·k_len + k]` (f16, tensor-core kernel).
    Transposed,
}

/// One GEMM's weights for every group: a matrix, a `Conv`, or one output phase of a
/// `ConvTranspose`.
#[derive(Debug)]
pub(crate) struct Part {
    pub weights: DeviceBuf,
    pub layout: Layout,
    /// Elements between consecutive groups' weights.
    pub group_stride: usize,
    /// Reduction length (taps · input channels per group).
    pub k: usize,
    /// Output columns per group.
    pub n: usize,
    /// `(dy, dx)` per tap, in the order of K.
    pub offs: Option<CudaSlice<i32>>,
    /// Output phase `(oy mod s_h, ox mod s_w)` (`[0, 0]` for a `Conv`).
    pub phase: [usize; 2],
}

impl Part {
    /// Uploads the groups `parts` (each `k × n`, packed `nr = 128` for `cuda`).
    fn upload(gpu: &Gpu, parts: &[&PackedB], precision: Precision, tensor_cores: bool) -> Result<Self> {
        let (k, n) = (parts[0].k(), parts[0].n());
        let transposed = precision == Precision::F16 && tensor_cores;
        let mut host = Vec::new();
        for p in parts {
            if p.kernel() != "cuda" || p.nr() != NR || p.k() != k || p.n() != n {
                return Err(KernelError::Packed(format!(
                    "weights packed for `{}` (nr={}), the CUDA set needs `cuda` (nr={NR})",
                    p.kernel(),
                    p.nr()
                )));
            }
            if transposed {
                let d = p.data();
                for j in 0..n {
                    host.extend((0..k).map(|kk| d[(j / NR) * k * NR + kk * NR + j % NR]));
                }
            } else {
                host.extend_from_slice(p.data());
            }
        }
        let group_stride = host.len() / parts.len();
        let weights = gpu.upload_buf(&host, precision)?;
        let layout = if transposed { Layout::Transposed } else { Layout::Panels };
        Ok(Self { weights, layout, group_stride, k, n, offs: None, phase: [0, 0] })
    }
}

/// GEMM weights (`k × n`) on the device.
#[derive(Debug)]
pub struct DeviceMatrix {
    pub(crate) part: Part,
}

impl DeviceMatrix {
    /// Uploads weights packed by the CUDA set (`KernelSet::pack_b`), once.
    pub fn upload(gpu: &Gpu, b: &PackedB, precision: Precision) -> Result<Self> {
        let tc = gpu.has_mma() && b.k().is_multiple_of(8);
        Ok(Self { part: Part::upload(gpu, &[b], precision, tc)? })
    }

    /// `(k, n)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.part.k, self.part.n)
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.part.weights.precision()
    }
}

/// The packed forms on the device.
#[derive(Debug)]
pub(crate) enum ConvBody {
    /// One implicit GEMM (`Conv`) or one per output phase (`ConvTranspose`).
    Gemm(Vec<Part>),
    /// Depthwise `[tap][c_out]`.
    Depthwise(DeviceBuf),
}

/// Convolution weights on the device, uploaded once from the CUDA set's [`PackedConv`].
#[derive(Debug)]
pub struct DeviceConv {
    pub(crate) params: ConvParams,
    pub(crate) body: ConvBody,
    precision: Precision,
}

impl DeviceConv {
    /// Uploads `packed` (from the CUDA set's `pack_conv`) in `precision`.
    pub fn upload(gpu: &Gpu, packed: &PackedConv, precision: Precision) -> Result<Self> {
        if packed.kernel() != "cuda" {
            return Err(KernelError::Packed(format!(
                "convolution weights packed for `{}`, the CUDA set needs `cuda`",
                packed.kernel()
            )));
        }
        let p = *packed.params();
        let body = match packed.body() {
            Body::Depthwise(w) => ConvBody::Depthwise(gpu.upload_buf(w, precision)?),
            Body::Winograd(_) | Body::Grouped(_) => {
                return Err(KernelError::Packed(format!(
                    "{:?} convolution weights are for the CPU sets; the CUDA set packs implicit-GEMM ones",
                    packed.algorithm()
                )))
            }
            Body::Gemm(parts) => {
                let phases: Vec<(Phase, Vec<Offset>)> = match p.kind {
                    ConvKind::Forward => vec![([0, 0], forward_taps(&p).into_iter().map(|(_, o)| o).collect())],
                    ConvKind::Transposed { .. } => {
                        transposed_phases(&p).into_iter().map(|ph| (ph.phase, ph.offsets)).collect()
                    }
                };
                let tc = gpu.has_mma() && p.c_in_per_group().is_multiple_of(8) && p.c_in.is_multiple_of(8);
                let mut out = Vec::with_capacity(phases.len());
                for (i, (phase, offsets)) in phases.into_iter().enumerate() {
                    let groups: Vec<&PackedB> = parts[i * p.groups..(i + 1) * p.groups].iter().collect();
                    let mut part = Part::upload(gpu, &groups, precision, tc)?;
                    let mut table = Vec::with_capacity(2 * offsets.len().max(1));
                    for (dy, dx) in offsets {
                        table.push(super::args::sint(dy, "tap offset")?);
                        table.push(super::args::sint(dx, "tap offset")?);
                    }
                    table.resize(table.len().max(2), 0);
                    part.offs = Some(gpu.stream().clone_htod(&table).map_err(super::device::dev_err("upload"))?);
                    part.phase = phase;
                    out.push(part);
                }
                ConvBody::Gemm(out)
            }
        };
        Ok(Self { params: p, body, precision })
    }

    /// The convolution's attributes.
    pub fn params(&self) -> &ConvParams {
        &self.params
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }
}

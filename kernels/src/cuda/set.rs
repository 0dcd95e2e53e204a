//! The CUDA set behind the [`KernelSet`] trait: host slices in and out, for the generic
//! kernel suites and for callers that hold tensors on the host. Each call uploads its
//! operands and weights and downloads the result; the executor keeps tensors and weights on
//! the device instead (see [`super::Gpu::conv2d`]).

use std::sync::Arc;

use super::device::{gpu, Gpu, Precision};
use super::launch::{DeviceBias, DeviceEpilogue};
use super::weights::{DeviceConv, DeviceMatrix, NR};
use crate::conv::driver::check_call;
use crate::conv::{ConvParams, ImageMut, ImageRef, PackedConv};
use crate::epilogue::{Bias, Epilogue};
use crate::error::Result;
use crate::gemm::driver::check_gemm;
use crate::mat::{MatMut, MatRef};
use crate::pack::{PackedB, PanelWidths};
use crate::{BOperand, Blocking, KernelInfo, KernelSet, KernelSetId, Parallelism};

/// The CUDA kernel set in f32.
pub(crate) struct CudaSet {
    info: KernelInfo,
    gpu: Arc<Gpu>,
}

impl std::fmt::Debug for CudaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelSet(cuda {} sm_{})", self.gpu.name(), self.gpu.sm())
    }
}

impl CudaSet {
    /// The set on this process's GPU, or why there is none.
    pub(crate) fn new() -> Result<Self> {
        let gpu = gpu()?;
        let info = KernelInfo {
            id: KernelSetId::Cuda,
            name: "cuda",
            isa: KernelSetId::Cuda.isa(),
            mr: NR,
            nr: NR,
            wide: None,
            blocking: Blocking { kc: 8, mc: NR, nc: NR },
            peak_flops_per_iter: None,
        };
        Ok(Self { info, gpu })
    }
}

/// A strided matrix as a dense row-major vector.
fn dense(m: &MatRef<'_>) -> Vec<f32> {
    let mut v = Vec::with_capacity(m.rows() * m.cols());
    for r in 0..m.rows() {
        v.extend((0..m.cols()).map(|c| m.at(r, c)));
    }
    v
}

impl Gpu {
    fn host_epilogue(&self, epi: &Epilogue<'_>) -> Result<DeviceEpilogue> {
        let bias = match epi.bias {
            Bias::None => DeviceBias::None,
            Bias::PerRow(b) => DeviceBias::PerRow(self.upload_f32(b)?),
            Bias::PerCol(b) => DeviceBias::PerCol(self.upload_f32(b)?),
        };
        super::args::activation(epi.activation)?; // refused here, before any upload is used
        Ok(DeviceEpilogue { bias, activation: epi.activation })
    }
}

impl KernelSet for CudaSet {
    fn info(&self) -> &KernelInfo {
        &self.info
    }

    fn pack_b(&self, b: MatRef<'_>) -> PackedB {
        PackedB::pack("cuda", NR, &b)
    }

    fn gemm(
        &self,
        a: MatRef<'_>,
        b: BOperand<'_>,
        mut c: MatMut<'_>,
        epilogue: &Epilogue<'_>,
        _par: Parallelism,
    ) -> Result<()> {
        let (m, n, _) = check_gemm(&a, &b, &c, epilogue)?;
        let packed;
        let b = match b {
            BOperand::Matrix(bm) => {
                packed = self.pack_b(bm);
                &packed
            }
            BOperand::Packed(p) => p,
        };
        if m == 0 || n == 0 {
            return Ok(());
        }
        let g = &self.gpu;
        let weights = DeviceMatrix::upload(g, b, Precision::F32)?;
        let da = g.upload(&dense(&a), Precision::F32)?;
        let residual = epilogue.residual.map(|r| g.upload(&dense(&r), Precision::F32)).transpose()?;
        // Poisoned, so elements a kernel leaves unwritten come back as NaN.
        let mut dc = g.upload(&vec![f32::NAN; m * n], Precision::F32)?;
        g.gemm(&da, m, &weights, &g.host_epilogue(epilogue)?, residual.as_ref(), &mut dc)?;
        let mut out = vec![0.0; m * n];
        g.download(&dc, &mut out)?;
        for r in 0..m {
            for col in 0..n {
                c.set(r, col, out[r * n + col]);
            }
        }
        Ok(())
    }

    fn pack_conv(&self, params: &ConvParams, weights: &[f32]) -> Result<PackedConv> {
        PackedConv::pack("cuda", PanelWidths { nr: NR, wide: None, half_width_wide: false }, params, weights, None)
    }

    fn conv2d(
        &self,
        input: ImageRef<'_>,
        weights: &PackedConv,
        mut output: ImageMut<'_>,
        epilogue: &Epilogue<'_>,
        _par: Parallelism,
    ) -> Result<()> {
        let [n, oh, ow] = check_call("cuda", input.dims(), weights, output.dims(), epilogue)?;
        let c_out = weights.params().c_out;
        if n * oh * ow * c_out == 0 {
            return Ok(());
        }
        let g = &self.gpu;
        let w = DeviceConv::upload(g, weights, Precision::F32)?;
        let x = g.upload(input.data(), Precision::F32)?;
        let residual = epilogue.residual.map(|r| g.upload(&dense(&r), Precision::F32)).transpose()?;
        let mut y = g.upload(&vec![f32::NAN; n * oh * ow * c_out], Precision::F32)?;
        g.conv2d(&x, input.dims(), &w, &g.host_epilogue(epilogue)?, residual.as_ref(), &mut y)?;
        g.download(&y, output.as_matrix().data_mut())
    }

    /// Element-wise work of a GPU session runs on the host: the portable kernels' loop.
    fn activate(&self, activation: crate::Activation, data: &mut [f32]) -> Result<()> {
        activation.validate()?;
        // SAFETY: the portable kernel uses no optional instructions.
        unsafe { <crate::scalar::ScalarVector as crate::vector::VectorKernels>::activate(activation, data) };
        Ok(())
    }

    fn unary(&self, f: crate::Unary, data: &mut [f32]) -> Result<()> {
        // SAFETY: the portable kernel uses no optional instructions.
        unsafe { <crate::scalar::ScalarVector as crate::vector::VectorKernels>::unary(f, data) };
        Ok(())
    }

    fn pool2d(
        &self,
        input: ImageRef<'_>,
        output: ImageMut<'_>,
        params: &crate::PoolParams,
        par: Parallelism,
    ) -> Result<()> {
        let g = crate::pool::check(&input, &output, params)?;
        // The portable kernel uses no optional instructions.
        crate::pool::run(
            &g,
            &input,
            output,
            par,
            <crate::scalar::ScalarVector as crate::vector::VectorKernels>::pool_rows,
        );
        Ok(())
    }

    fn normalize_rows(
        &self,
        norm: crate::RowNorm<'_>,
        input: &[f32],
        len: usize,
        out: &mut [f32],
        par: Parallelism,
    ) -> Result<()> {
        crate::rows::check(&norm, input, len, out)?;
        // The portable kernel uses no optional instructions.
        crate::rows::run(
            &norm,
            input,
            len,
            out,
            par,
            <crate::scalar::ScalarVector as crate::vector::VectorKernels>::norm_rows,
        );
        Ok(())
    }

    fn fma_loop(&self, _iterations: usize) -> f32 {
        // No CPU probe for a GPU set; `peak_flops_per_iter` is `None`.
        0.0
    }

    fn device(&self) -> Result<Arc<dyn crate::device::Device>> {
        Ok(Arc::new(super::program::CudaDevice { gpu: Arc::clone(&self.gpu) }))
    }
}

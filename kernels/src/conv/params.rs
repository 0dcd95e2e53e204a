//! ONNX `Conv` / `ConvTranspose` attributes, checked once, and the shapes they imply.

use crate::error::{KernelError, Result};

/// Which operator a [`ConvParams`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ConvKind {
    /// ONNX `Conv`; weights are `[c_out, c_in/groups, kh, kw]`.
    Forward,
    /// ONNX `ConvTranspose`; weights are `[c_in, c_out/groups, kh, kw]`.
    Transposed {
        /// `output_padding` (rows, columns) added at the bottom/right of the output.
        output_padding: [usize; 2],
    },
}

/// A 2-D convolution's attributes with ONNX semantics (explicit pads; `auto_pad` and
/// `output_shape` are resolved into `pads` by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConvParams {
    /// `Conv` or `ConvTranspose`.
    pub kind: ConvKind,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel (rows, columns).
    pub kernel: [usize; 2],
    /// Strides (rows, columns).
    pub strides: [usize; 2],
    /// Dilations (rows, columns).
    pub dilations: [usize; 2],
    /// Pads in ONNX order: `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Groups; `c_in` and `c_out` are multiples of it (depthwise: `groups == c_in`).
    pub groups: usize,
}

/// Largest kernel side, stride, dilation or pad accepted (far beyond any vision model; it
/// keeps every index computation in range).
const MAX_ATTR: usize = 1 << 16;
/// Most output phases (`s_h·s_w`) of a `ConvTranspose`: each is a separately packed GEMM.
const MAX_PHASES: usize = 1 << 12;

impl ConvParams {
    /// A `Conv` with unit strides and dilations, no padding and one group.
    pub fn new(c_in: usize, c_out: usize, kernel: [usize; 2]) -> Self {
        Self {
            kind: ConvKind::Forward,
            c_in,
            c_out,
            kernel,
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 1,
        }
    }

    /// A `ConvTranspose` with unit strides and dilations, no padding and one group.
    pub fn transposed(c_in: usize, c_out: usize, kernel: [usize; 2]) -> Self {
        Self { kind: ConvKind::Transposed { output_padding: [0, 0] }, ..Self::new(c_in, c_out, kernel) }
    }

    /// Checks every attribute; the message names the one at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(KernelError::Shape(format!("convolution: {what}")));
        if self.c_in == 0 || self.c_out == 0 || self.groups == 0 {
            return bad(format!("c_in={}, c_out={}, groups={} must be positive", self.c_in, self.c_out, self.groups));
        }
        if !self.c_in.is_multiple_of(self.groups) || !self.c_out.is_multiple_of(self.groups) {
            return bad(format!(
                "c_in={} and c_out={} must be multiples of groups={}",
                self.c_in, self.c_out, self.groups
            ));
        }
        for (name, v) in [("kernel", self.kernel), ("strides", self.strides), ("dilations", self.dilations)] {
            if v.iter().any(|&x| x == 0 || x > MAX_ATTR) {
                return bad(format!("{name} {v:?} must be in 1..={MAX_ATTR}"));
            }
        }
        if self.pads.iter().any(|&p| p > MAX_ATTR) {
            return bad(format!("pads {:?} must be at most {MAX_ATTR}", self.pads));
        }
        if let ConvKind::Transposed { output_padding } = self.kind {
            if self.strides[0] * self.strides[1] > MAX_PHASES {
                return bad(format!("conv transpose strides {:?}: at most {MAX_PHASES} output phases", self.strides));
            }
            for axis in 0..2 {
                if output_padding[axis] >= self.strides[axis].max(self.dilations[axis]) {
                    return bad(format!(
                        "output_padding {output_padding:?} must be smaller than the stride or the dilation on each axis"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether this is a plain pointwise convolution (the expansion
    /// [`crate::KernelSet::conv2d_expand_depthwise`] takes): a `Conv`, 1×1, stride 1,
    /// unpadded, one group.
    pub fn is_pointwise(&self) -> bool {
        self.kind == ConvKind::Forward
            && self.kernel == [1, 1]
            && self.strides == [1, 1]
            && self.pads == [0; 4]
            && self.groups == 1
    }

    /// Input channels per group.
    pub fn c_in_per_group(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels per group.
    pub fn c_out_per_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// Number of kernel taps, `kh·kw`.
    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Number of weight values in ONNX layout.
    pub fn weight_len(&self) -> usize {
        match self.kind {
            ConvKind::Forward => self.c_out * self.c_in_per_group() * self.taps(),
            ConvKind::Transposed { .. } => self.c_in * self.c_out_per_group() * self.taps(),
        }
    }

    /// Whether this is a depthwise `Conv` (one input channel per group, more than one group).
    pub fn is_depthwise(&self) -> bool {
        self.kind == ConvKind::Forward && self.groups > 1 && self.c_in_per_group() == 1
    }

    /// Output (rows, columns) for an `h × w` input; errors when the kernel does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<[usize; 2]> {
        self.validate()?;
        let input = [h, w];
        let mut out = [0; 2];
        for axis in 0..2 {
            let span = self.dilations[axis] * (self.kernel[axis] - 1) + 1;
            let (begin, end) = (self.pads[axis], self.pads[axis + 2]);
            out[axis] = match self.kind {
                ConvKind::Forward => {
                    let padded = input[axis] + begin + end;
                    if padded < span {
                        return Err(KernelError::Shape(format!(
                            "convolution: kernel span {span} exceeds padded input extent {padded} on axis {axis}"
                        )));
                    }
                    (padded - span) / self.strides[axis] + 1
                }
                ConvKind::Transposed { output_padding } => {
                    if input[axis] == 0 {
                        return Err(KernelError::Shape("conv transpose: empty input".into()));
                    }
                    let full = self.strides[axis] * (input[axis] - 1) + output_padding[axis] + span;
                    if full <= begin + end {
                        return Err(KernelError::Shape(format!(
                            "conv transpose: pads {begin}+{end} remove the whole output extent {full} on axis {axis}"
                        )));
                    }
                    full - begin - end
                }
            };
        }
        Ok(out)
    }
}

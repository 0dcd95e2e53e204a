//! Shared definitions of edgepack's benchmarks: the shapes measured and how figures are named,
//! so that the criterion benches, the table generator (`perf-table`) and the regression check
//! (`bench-check`) agree.

pub mod conv;
pub mod gate;
pub mod line_child;
pub mod ort_peer;
pub mod peers;
pub mod tracking;

/// Square GEMM sizes benchmarked (m = n = k).
pub const SQUARE_SIZES: &[usize] = &[64, 128, 256, 512, 1024, 2048];

/// Largest square size at which the portable (scalar) set is also measured.
pub const SCALAR_MAX_SIZE: usize = 512;

/// A GEMM shape that a 1×1 (pointwise) convolution of a mobile CNN produces in NHWC:
/// `m = H·W` pixels, `k` input channels, `n` output channels.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    /// Short label, `HxW cin→cout`.
    pub label: &'static str,
    /// H·W.
    pub m: usize,
    /// Input channels.
    pub k: usize,
    /// Output channels.
    pub n: usize,
}

/// Pointwise convolutions of MobileNetV3 / PP-LCNet-style networks: the stride-4 stage of a
/// 640×640 detector (160×160 pixels: expand/project layers 16…72 channels) and a 48×192
/// classifier input at full resolution (32…512 channels).
pub const CONV1X1_SHAPES: &[ConvShape] = &[
    ConvShape { label: "160x160_16-16", m: 160 * 160, k: 16, n: 16 },
    ConvShape { label: "160x160_16-64", m: 160 * 160, k: 16, n: 64 },
    ConvShape { label: "160x160_64-24", m: 160 * 160, k: 64, n: 24 },
    ConvShape { label: "160x160_24-72", m: 160 * 160, k: 24, n: 72 },
    ConvShape { label: "160x160_72-24", m: 160 * 160, k: 72, n: 24 },
    ConvShape { label: "48x192_32-64", m: 48 * 192, k: 32, n: 64 },
    ConvShape { label: "48x192_64-128", m: 48 * 192, k: 64, n: 128 },
    ConvShape { label: "48x192_128-256", m: 48 * 192, k: 128, n: 256 },
    ConvShape { label: "48x192_256-512", m: 48 * 192, k: 256, n: 512 },
    ConvShape { label: "48x192_512-512", m: 48 * 192, k: 512, n: 512 },
];

/// Floating-point operations of an `m × k` by `k × n` product.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}

/// Iterations of a kernel set's FMA loop per peak-benchmark sample.
pub const PEAK_ITERATIONS: usize = 1 << 20;

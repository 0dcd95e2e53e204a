//! Which input pixel each kernel tap reads, for `Conv` and for each output phase of
//! `ConvTranspose`.
//!
//! A `ConvTranspose` with stride `s` is `s_h·s_w` ordinary stride-1 convolutions, one per
//! output phase `(oy mod s_h, ox mod s_w)`: output row `oy = ph + s_h·t` receives input row
//! `i` through tap `kh` exactly when `oy + pad_top = i·s_h + kh·d_h`, i.e. for the taps with
//! `(ph + pad_top − kh·d_h) mod s_h = 0`, reading `i = t + (ph + pad_top − kh·d_h)/s_h`. Every
//! output element is therefore computed once, by a GEMM, with the epilogue fused, and no
//! multiply touches an inserted zero.

use super::params::ConvParams;

/// `((kh, kw), (dy, dx))` for every tap of a `Conv`: output `(oy, ox)` reads input
/// `(oy·s_h + dy, ox·s_w + dx)`.
pub(crate) fn forward_taps(p: &ConvParams) -> Vec<((usize, usize), (isize, isize))> {
    let mut taps = Vec::with_capacity(p.taps());
    for kh in 0..p.kernel[0] {
        for kw in 0..p.kernel[1] {
            let dy = (kh * p.dilations[0]) as isize - p.pads[0] as isize;
            let dx = (kw * p.dilations[1]) as isize - p.pads[1] as isize;
            taps.push(((kh, kw), (dy, dx)));
        }
    }
    taps
}

/// One output phase of a `ConvTranspose`.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    /// `(oy mod s_h, ox mod s_w)`.
    pub phase: [usize; 2],
    /// The kernel taps that reach this phase.
    pub kernel_taps: Vec<(usize, usize)>,
    /// For each of them, the input offset: phase-grid position `(t, u)` reads `(t + dy, u + dx)`.
    pub offsets: Vec<(isize, isize)>,
}

/// Taps of one axis reaching phase `ph`: `(k, offset)`.
fn axis_taps(p: &ConvParams, axis: usize, ph: usize) -> Vec<(usize, isize)> {
    let s = p.strides[axis] as isize;
    (0..p.kernel[axis])
        .filter_map(|k| {
            let num = (ph + p.pads[axis]) as isize - (k * p.dilations[axis]) as isize;
            (num.rem_euclid(s) == 0).then(|| (k, num.div_euclid(s)))
        })
        .collect()
}

/// Every phase, row-phase major.
pub(crate) fn transposed_phases(p: &ConvParams) -> Vec<Phase> {
    let mut phases = Vec::with_capacity(p.strides[0] * p.strides[1]);
    for ph in 0..p.strides[0] {
        let rows = axis_taps(p, 0, ph);
        for pw in 0..p.strides[1] {
            let cols = axis_taps(p, 1, pw);
            let mut phase = Phase { phase: [ph, pw], kernel_taps: Vec::new(), offsets: Vec::new() };
            for &(kh, dy) in &rows {
                for &(kw, dx) in &cols {
                    phase.kernel_taps.push((kh, kw));
                    phase.offsets.push((dy, dx));
                }
            }
            phases.push(phase);
        }
    }
    phases
}

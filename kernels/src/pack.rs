//! Packed operand layouts: the on-the-fly panels of the GEMM driver and pre-packed weights.
//!
//! B (the `k × n` right operand, the weights in an NHWC convolution) is packed into column
//! panels `NR` wide: panel `j` holds columns `j·NR .. j·NR+NR`, one row of `NR` values per `k`,
//! zero-padded past `n`. A `k`-range of a panel is therefore contiguous whatever the cache
//! blocking, which is what lets [`PackedB`] be packed once, serialized into a package and used
//! on a machine with other cache sizes. A (the left operand) is packed the same way in row
//! panels `MR` tall, per cache block, while the GEMM runs.

use crate::aligned::AlignedBuf;
use crate::error::{KernelError, Result};
use crate::mat::MatRef;

/// Fewest packed values [`PackedB::scale_rows_into`] splits across threads (64 KiB: below
/// that one thread finishes before a second would have its share).
const SCALE_GRAIN: usize = 1 << 14;

/// Packs rows `p0..p0+kc` and columns `j0..j0+nc` of `b` into `ceil(nc/nr)` panels of
/// `kc × nr` values each (panel stride `kc·nr`), zero-padding the last panel.
pub(crate) fn pack_b_panels(b: &MatRef<'_>, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
    let panels = nc.div_ceil(nr);
    debug_assert!(dst.len() >= panels * kc * nr);
    if kc == 0 {
        return; // an empty reduction has nothing to pack
    }
    let (data, rs, cs) = (b.data(), b.row_stride(), b.col_stride());
    for (panel, out) in dst.chunks_exact_mut(kc * nr).take(panels).enumerate() {
        let jp = j0 + panel * nr;
        let w = nr.min(j0 + nc - jp);
        for (p, row) in out.chunks_exact_mut(nr).enumerate() {
            let base = (p0 + p) * rs + jp * cs;
            if cs == 1 {
                row[..w].copy_from_slice(&data[base..base + w]);
            } else {
                for (j, v) in row[..w].iter_mut().enumerate() {
                    *v = data[base + j * cs];
                }
            }
            row[w..].fill(0.0);
        }
    }
}

/// Packs rows `i0..i0+mc` and columns `p0..p0+kc` of `a` into `ceil(mc/MR)` panels of
/// `kc × MR` values each (for every `k`, `MR` consecutive rows), zero-padding the last panel.
pub(crate) fn pack_a_panels<const MR: usize>(
    a: &MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let panels = mc.div_ceil(MR);
    debug_assert!(dst.len() >= panels * kc * MR);
    if kc == 0 {
        return; // an empty reduction has nothing to pack
    }
    let (data, rs, cs) = (a.data(), a.row_stride(), a.col_stride());
    for (panel, out) in dst.chunks_exact_mut(kc * MR).take(panels).enumerate() {
        let ip = i0 + panel * MR;
        let h = MR.min(i0 + mc - ip);
        if h < MR {
            out.fill(0.0);
        }
        if rs == 1 {
            // Column-major A (a transposed operand): each k is a contiguous run of rows.
            for (p, dst) in out.chunks_exact_mut(MR).enumerate() {
                let base = (p0 + p) * cs + ip;
                dst[..h].copy_from_slice(&data[base..base + h]);
            }
        } else if cs == 1 && h == MR {
            // Row-major A (NHWC activations): MR row streams, interleaved one k at a time.
            let rows: [&[f32]; MR] = std::array::from_fn(|r| {
                let base = (ip + r) * rs + p0;
                &data[base..base + kc]
            });
            for (p, dst) in out.chunks_exact_mut(MR).enumerate() {
                for (d, row) in dst.iter_mut().zip(&rows) {
                    // SAFETY: every row slice is `kc` long and `p < kc` (out has kc chunks).
                    *d = unsafe { *row.get_unchecked(p) };
                }
            }
        } else {
            for r in 0..h {
                let base = (ip + r) * rs + p0 * cs;
                for p in 0..kc {
                    out[p * MR + r] = data[base + p * cs];
                }
            }
        }
    }
}

/// A `k × n` right-hand operand (weights) packed ahead of time for one kernel set.
///
/// Serializes to bytes with [`PackedB::to_bytes`] and back with [`PackedB::from_bytes`]; a
/// kernel set refuses blobs packed for another set.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedB {
    kernel: String,
    nr: usize,
    k: usize,
    n: usize,
    data: AlignedBuf,
}

/// The panel widths a kernel set packs weights at: its main tile's `nr`, and its second
/// (wide) tile's when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelWidths {
    /// The main tile's column count.
    pub nr: usize,
    /// The wide tile's column count, if the set has one.
    pub wide: Option<usize>,
    /// The wide tile runs on vectors half as wide as the main tile's (AVX-512's 6×24 on
    /// 256-bit registers), so it pays only where the main tile would pad a quarter of the
    /// columns or more: on CPUs with full-width 512-bit FMA units it runs at 60–70 % of the
    /// main tile's rate, on those that split them (Zen 4) at about the same rate.
    pub half_width_wide: bool,
}

impl PanelWidths {
    /// The width for weights with `n` columns: the wide tile's when it covers `n` in whole
    /// panels and the main tile does not (AVX2: 24 for 24, 72, 120, … columns, where 16-wide
    /// panels would end in a half-empty one; AVX-512, with its half-width wide tile: only
    /// where 32-wide panels would be at least a quarter padding, 24 and 72), else the main
    /// tile's. A function of the set alone, so that packages do not depend on the host.
    pub fn for_n(self, n: usize) -> usize {
        let padded = n.next_multiple_of(self.nr);
        match self.wide {
            Some(w)
                if n.is_multiple_of(w)
                    && !n.is_multiple_of(self.nr)
                    && (!self.half_width_wide || 4 * (padded - n) >= padded) =>
            {
                w
            }
            _ => self.nr,
        }
    }
}

const MAGIC: &[u8; 4] = b"EPKB";
const VERSION: u32 = 1;
const MAX_NAME: usize = 64;
const MAX_NR: usize = 256;

impl PackedB {
    /// Packs `b` into panels `nr` wide, labelled with the kernel set that will consume it.
    pub(crate) fn pack(kernel: &str, nr: usize, b: &MatRef<'_>) -> Self {
        let (k, n) = (b.rows(), b.cols());
        let mut data = AlignedBuf::zeroed(n.div_ceil(nr) * k * nr);
        pack_b_panels(b, 0, k, 0, n, nr, data.as_mut_slice());
        Self { kernel: kernel.to_owned(), nr, k, n, data }
    }

    /// Name of the kernel set this was packed for.
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// Panel width.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Rows of the original matrix (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the original matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The packed values: `ceil(n/nr)` panels of `k × nr`.
    pub(crate) fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// Writes into `dst` these weights with row `r` of the original matrix multiplied by
    /// `scale[r % scale.len()]` (one scale per input channel of a convolution whose reduction
    /// runs over (tap, channel)). `dst` must have this operand's kernel set, shape and panel
    /// width (a clone, made once, reused every run). Split across the current threads when
    /// `parallel` and the weights are large enough to pay for it.
    pub(crate) fn scale_rows_into(&self, scale: &[f32], dst: &mut PackedB, parallel: bool) -> Result<()> {
        if scale.is_empty() || !self.k.is_multiple_of(scale.len()) {
            return Err(KernelError::Shape(format!("{} row scales for a {}-row operand", scale.len(), self.k)));
        }
        if (dst.kernel.as_str(), dst.nr, dst.k, dst.n) != (self.kernel.as_str(), self.nr, self.k, self.n) {
            return Err(KernelError::Shape(format!(
                "scaled copy is {}x{} at nr={} for `{}`, the weights {}x{} at nr={} for `{}`",
                dst.k, dst.n, dst.nr, dst.kernel, self.k, self.n, self.nr, self.kernel
            )));
        }
        // Row r of the packed data is row r mod k of its panel, so its scale is
        // scale[r mod len] (k is a multiple of len). Blocks of rows go to the threads.
        const ROWS: usize = 256;
        let (nr, src) = (self.nr, self.data());
        let parallel = parallel && src.len() > SCALE_GRAIN;
        crate::threads::chunks_mut(dst.data.as_mut_slice(), ROWS * nr, parallel, |i, out| {
            let first = i * ROWS;
            let rows = out.chunks_exact_mut(nr).zip(src[first * nr..].chunks_exact(nr));
            for (r, (o, s)) in rows.enumerate() {
                let f = scale[(first + r) % scale.len()];
                o.iter_mut().zip(s).for_each(|(o, &v)| *o = v * f);
            }
        });
        Ok(())
    }

    /// Serializes to a self-describing little-endian blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.kernel.len() + 4 * self.data().len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.kernel.len() as u32).to_le_bytes());
        out.extend_from_slice(self.kernel.as_bytes());
        out.extend_from_slice(&(self.nr as u32).to_le_bytes());
        out.extend_from_slice(&(self.k as u64).to_le_bytes());
        out.extend_from_slice(&(self.n as u64).to_le_bytes());
        for v in self.data() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses a blob written by [`PackedB::to_bytes`], checking every field and the length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(KernelError::Packed("not a packed-weight blob (bad magic)".into()));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(KernelError::Packed(format!("format version {version}, this build reads {VERSION}")));
        }
        let name_len = r.u32()? as usize;
        if name_len == 0 || name_len > MAX_NAME {
            return Err(KernelError::Packed(format!("kernel name length {name_len} out of range 1..={MAX_NAME}")));
        }
        let kernel = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| KernelError::Packed("kernel name is not UTF-8".into()))?
            .to_owned();
        let nr = r.u32()? as usize;
        if nr == 0 || nr > MAX_NR {
            return Err(KernelError::Packed(format!("panel width {nr} out of range 1..={MAX_NR}")));
        }
        let k = usize::try_from(r.u64()?).map_err(|_| KernelError::Packed("k too large".into()))?;
        let n = usize::try_from(r.u64()?).map_err(|_| KernelError::Packed("n too large".into()))?;
        let expected = n
            .div_ceil(nr)
            .checked_mul(k)
            .and_then(|v| v.checked_mul(nr))
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| KernelError::Packed(format!("{k}x{n} overflows")))?;
        let rest = bytes.len() - r.pos;
        if rest != expected {
            return Err(KernelError::Packed(format!(
                "{k}x{n} with nr={nr} needs {expected} data bytes, blob has {rest}"
            )));
        }
        let mut data = AlignedBuf::zeroed(rest / 4);
        for (v, c) in data.as_mut_slice().iter_mut().zip(r.take(rest)?.chunks_exact(4)) {
            *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(Self { kernel, nr, k, n, data })
    }
}

/// A bounds-checked cursor over a blob (shared with [`crate::conv::PackedConv`]).
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| KernelError::Packed(format!("blob truncated at byte {}", self.bytes.len())))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(std::array::from_fn(|i| b[i])))
    }
}

#[cfg(test)]
mod tests {
    use super::PanelWidths;

    #[test]
    fn the_wide_width_only_where_it_fits_whole_and_the_main_one_does_not() {
        let avx2 = PanelWidths { nr: 16, wide: Some(24), half_width_wide: false };
        for (n, want) in [(1, 16), (8, 16), (16, 16), (24, 24), (40, 16), (48, 16), (72, 24), (96, 16), (120, 24)] {
            assert_eq!(avx2.for_n(n), want, "n = {n}");
        }
        let one_tile = PanelWidths { nr: 32, wide: None, half_width_wide: false };
        assert_eq!(one_tile.for_n(24), 32);
        // AVX-512: the half-width wide tile only where 32-wide panels would be a quarter
        // padding or more.
        let avx512 = PanelWidths { nr: 32, wide: Some(24), half_width_wide: true };
        for (n, want) in [(24, 24), (72, 24), (120, 32), (144, 32), (168, 32), (96, 32), (48, 24)] {
            assert_eq!(avx512.for_n(n), want, "n = {n}");
        }
    }
}

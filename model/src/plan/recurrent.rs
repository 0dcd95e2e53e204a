//! `LSTM` and `GRU` on a kernel set: the input products of every time step are one GEMM
//! step before this one (bias folded in); each time step then runs the recurrent product
//! on the kernel set's GEMM and the gates on its vector activations, in float32.

use kernels::{Activation, BOperand, Epilogue, KernelSet, MatMut, MatRef, PackedB, Parallelism};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::portable::RnnKind;

/// One recurrent layer's time loop: everything but the input products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recurrent {
    /// The cell (`Gru(true)`: `linear_before_reset`; the other GRU form is not lowered).
    pub kind: RnnKind,
    /// Per direction, whether it runs from the last time step to the first.
    pub reverse: Vec<bool>,
    /// `hidden_size`.
    pub hidden: usize,
    /// Time steps.
    pub seq: usize,
    /// Batch rows.
    pub batch: usize,
    /// `layout = 1`: input, output and states batch first.
    pub batch_first: bool,
    /// Per direction, the packed `Rᵀ` (`[hidden, gates·hidden]`) in the plan's GEMM weights.
    pub recurrent: Vec<usize>,
    /// GRU: the recurrent bias of the new gate (`[dirs, hidden]`), added inside the reset
    /// product; every other bias is folded into the input products.
    pub new_gate_bias: Option<usize>,
    /// LSTM peepholes `[dirs, 3·hidden]` (i, o, f).
    pub peepholes: Option<usize>,
    /// Initial hidden state, in (direction, batch, unit) order.
    pub initial_h: Option<usize>,
    /// LSTM initial cell state, in (direction, batch, unit) order.
    pub initial_c: Option<usize>,
    /// Per direction, the cell's activations (LSTM: f, g, h; GRU: f, g).
    pub activations: Vec<Activation>,
    /// `clip` of the gates' pre-activations.
    pub clip: Option<f32>,
    /// LSTM `input_forget`: the forget gate is `1 − i`.
    pub input_forget: bool,
}

impl Recurrent {
    /// The constants this layer reads, for range checks.
    pub(super) fn constants(&self) -> impl Iterator<Item = usize> + '_ {
        [self.new_gate_bias, self.peepholes, self.initial_h, self.initial_c].into_iter().flatten()
    }

    /// Index of unit 0 of time step `t`, direction `d`, batch row `b` in the output `Y`.
    fn y_index(&self, t: usize, d: usize, b: usize) -> usize {
        let dirs = self.reverse.len();
        let row = if self.batch_first { (b * self.seq + t) * dirs + d } else { (t * dirs + d) * self.batch + b };
        row * self.hidden
    }

    /// Row of `(t, b)` in the input products.
    fn x_row(&self, t: usize, b: usize) -> usize {
        if self.batch_first {
            b * self.seq + t
        } else {
            t * self.batch + b
        }
    }
}

/// One direction of a layer, with its activations and constants borrowed from the plan.
struct Cell<'a> {
    set: &'a dyn KernelSet,
    rc: &'a Recurrent,
    acts: &'a [Activation],
    new_gate_bias: Option<&'a [f32]>,
    peepholes: Option<&'a [f32]>,
}

/// Runs the time loop: `xw` holds `x·Wᵀ + biases` per `(t, b)` row and direction, `y`
/// receives every step's hidden state. The directions of a bidirectional layer are
/// independent chains of steps: with `parallel` they run on two threads.
pub(super) fn run(
    set: &dyn KernelSet,
    rc: &Recurrent,
    consts: &[Vec<f32>],
    gemms: &[PackedB],
    xw: &[f32],
    y: &mut [f32],
    parallel: bool,
) -> Result<()> {
    let (dirs, h, batch, seq) = (rc.reverse.len(), rc.hidden, rc.batch, rc.seq);
    let gh = rc.kind.gates() * h;
    if xw.len() != seq * batch * dirs * gh || y.len() != seq * dirs * batch * h || rc.recurrent.len() != dirs {
        return Err(ModelError::Malformed(format!(
            "a recurrent step of {dirs} direction(s), {seq}×{batch} rows, hidden {h} got {} input products and {} outputs",
            xw.len(),
            y.len()
        )));
    }
    let run_direction = |d: usize| direction(set, rc, consts, &gemms[rc.recurrent[d]], xw, d);
    let states: Vec<Result<Vec<f32>>> = if parallel && dirs > 1 {
        let slots: Vec<Mutex<Option<Result<Vec<f32>>>>> = (0..dirs).map(|_| Mutex::new(None)).collect();
        kernels::threads::for_each(dirs, |d| {
            let r = run_direction(d);
            *slots[d].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        slots
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every direction ran"))
            .collect()
    } else {
        (0..dirs).map(run_direction).collect()
    };
    for (d, hs) in states.into_iter().enumerate() {
        let hs = hs?;
        for t in 0..seq {
            for b in 0..batch {
                y[rc.y_index(t, d, b)..][..h].copy_from_slice(&hs[(t * batch + b) * h..][..h]);
            }
        }
    }
    Ok(())
}

/// One direction's time loop; returns its hidden states in (time step, batch row, unit) order.
fn direction(
    set: &dyn KernelSet,
    rc: &Recurrent,
    consts: &[Vec<f32>],
    r: &PackedB,
    xw: &[f32],
    d: usize,
) -> Result<Vec<f32>> {
    let (dirs, h, batch, seq) = (rc.reverse.len(), rc.hidden, rc.batch, rc.seq);
    let gh = rc.kind.gates() * h;
    let na = rc.activations.len() / dirs.max(1);
    let slice = |c: Option<usize>, len: usize| c.map(|c| &consts[c][d * len..][..len]);
    let mut gates = vec![0.0f32; batch * gh];
    let state = |c: Option<usize>| slice(c, batch * h).map_or_else(|| vec![0.0f32; batch * h], <[f32]>::to_vec);
    let (mut hs, mut cs) = (state(rc.initial_h), state(rc.initial_c));
    let cell = Cell {
        set,
        rc,
        acts: &rc.activations[d * na..(d + 1) * na],
        new_gate_bias: slice(rc.new_gate_bias, h),
        peepholes: slice(rc.peepholes, 3 * h),
    };
    let mut ys = vec![0.0f32; seq * batch * h];
    for step in 0..seq {
        let t = if rc.reverse[d] { seq - 1 - step } else { step };
        set.gemm(
            MatRef::row_major(&hs, batch, h)?,
            BOperand::Packed(r),
            MatMut::row_major(&mut gates, batch, gh)?,
            &Epilogue::none(),
            Parallelism::Sequential,
        )?;
        for b in 0..batch {
            let xr = &xw[(rc.x_row(t, b) * dirs + d) * gh..][..gh];
            let g = &mut gates[b * gh..][..gh];
            let (hb, cb) = (&mut hs[b * h..][..h], &mut cs[b * h..][..h]);
            match rc.kind {
                RnnKind::Lstm => cell.lstm(xr, g, cb, hb)?,
                RnnKind::Gru(_) => cell.gru(xr, g, hb)?,
            }
            ys[(t * batch + b) * h..][..h].copy_from_slice(hb);
        }
    }
    Ok(ys)
}

impl Cell<'_> {
    /// `x ← clip(x)` when the layer clips.
    fn clip(&self, x: &mut [f32]) -> Result<()> {
        match self.rc.clip {
            Some(c) => Ok(self.set.activate(Activation::Clip { min: -c, max: c }, x)?),
            None => Ok(()),
        }
    }

    /// One LSTM step: `g` holds `h·Rᵀ` (gates i, o, f, c) and becomes scratch; `xr` the
    /// input products; updates the cell state `c` and the hidden state `h`.
    fn lstm(&self, xr: &[f32], g: &mut [f32], c: &mut [f32], h: &mut [f32]) -> Result<()> {
        let (set, acts, n) = (self.set, self.acts, c.len());
        g.iter_mut().zip(xr).for_each(|(g, x)| *g += x);
        let (gi, rest) = g.split_at_mut(n);
        let (go, rest) = rest.split_at_mut(n);
        let (gf, gc) = rest.split_at_mut(n);
        if let Some(p) = self.peepholes {
            for e in 0..n {
                gi[e] += p[e] * c[e];
                gf[e] += p[2 * n + e] * c[e];
            }
        }
        for part in [&mut *gi, &mut *gf, &mut *gc] {
            self.clip(part)?;
        }
        set.activate(acts[0], gi)?;
        if self.rc.input_forget {
            gf.iter_mut().zip(&*gi).for_each(|(f, i)| *f = 1.0 - i);
        } else {
            set.activate(acts[0], gf)?;
        }
        set.activate(acts[1], gc)?;
        for e in 0..n {
            c[e] = gf[e] * c[e] + gi[e] * gc[e];
        }
        if let Some(p) = self.peepholes {
            go.iter_mut().zip(&p[n..2 * n]).zip(&*c).for_each(|((o, p), c)| *o += p * c);
        }
        self.clip(go)?;
        set.activate(acts[0], go)?;
        // The candidate gate's values are spent: its room takes act(c).
        gc.copy_from_slice(c);
        set.activate(acts[2], gc)?;
        h.iter_mut().zip(&*go).zip(&*gc).for_each(|((h, o), s)| *h = o * s);
        Ok(())
    }

    /// One GRU step with `linear_before_reset`: `g` holds `h·Rᵀ` (gates z, r, h); `xr` the
    /// input products; updates `h`.
    fn gru(&self, xr: &[f32], g: &mut [f32], h: &mut [f32]) -> Result<()> {
        let n = h.len();
        let (zr, gn) = g.split_at_mut(2 * n);
        zr.iter_mut().zip(xr).for_each(|(g, x)| *g += x);
        self.clip(zr)?;
        self.set.activate(self.acts[0], zr)?;
        let (z, r) = zr.split_at(n);
        if let Some(rb) = self.new_gate_bias {
            gn.iter_mut().zip(rb).for_each(|(g, b)| *g += b);
        }
        gn.iter_mut().zip(r).zip(&xr[2 * n..]).for_each(|((g, r), x)| *g = x + r * *g);
        self.clip(gn)?;
        self.set.activate(self.acts[1], gn)?;
        h.iter_mut().zip(z).zip(&*gn).for_each(|((h, z), n)| *h = (1.0 - z) * n + z * *h);
        Ok(())
    }
}

//! `LSTM` and `GRU`: forward, reverse and bidirectional, both layouts, sequence lengths,
//! initial states, peepholes, clipping, `input_forget`, `linear_before_reset`, and every
//! activation function the operators name.

use serde::{Deserialize, Serialize};

use super::{Arg, At};
use crate::error::Result;
use crate::tensor::Tensor;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RnnKind {
    /// Gates i, o, f, c.
    Lstm,
    /// Gates z, r, h; `linear_before_reset`.
    Gru(bool),
}

impl RnnKind {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        match self {
            RnnKind::Lstm => "LSTM",
            RnnKind::Gru(_) => "GRU",
        }
    }

    /// Gates per cell.
    pub fn gates(self) -> usize {
        match self {
            RnnKind::Lstm => 4,
            RnnKind::Gru(_) => 3,
        }
    }

    /// Activations per direction.
    pub fn activations(self) -> usize {
        match self {
            RnnKind::Lstm => 3,
            RnnKind::Gru(_) => 2,
        }
    }
}

/// `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Forward.
    Forward,
    /// Reverse.
    Reverse,
    /// Both (two directions).
    Bidirectional,
}

/// An activation of a recurrent cell, with its alpha and beta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnAct {
    /// ONNX name (`Sigmoid`, `Tanh`, `Relu`, `HardSigmoid`, …).
    pub name: String,
    /// alpha.
    pub alpha: f32,
    /// beta.
    pub beta: f32,
}

/// The activation `name` with the given (or its default) alpha and beta; `None` for a
/// name the recurrent operators do not define.
pub fn rnn_act(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Option<RnnAct> {
    let (a, b) = match name {
        "Sigmoid" | "Tanh" | "Relu" | "Softsign" | "Softplus" => (0.0, 0.0),
        "HardSigmoid" => (0.2, 0.5),
        "LeakyRelu" => (0.01, 0.0),
        "ThresholdedRelu" | "Elu" => (1.0, 0.0),
        "ScaledTanh" => (1.0, 1.0),
        "Affine" => (1.0, 0.0),
        _ => return None,
    };
    Some(RnnAct { name: name.to_string(), alpha: alpha.unwrap_or(a), beta: beta.unwrap_or(b) })
}

impl RnnAct {
    /// The kernel sets' activation computing this one, if there is one (plans run the cell
    /// with it; the others leave the node to `Eval`).
    pub fn kernel(&self) -> Option<kernels::Activation> {
        use kernels::Activation;
        Some(match self.name.as_str() {
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "Relu" => Activation::Relu,
            "HardSigmoid" => Activation::HardSigmoid { alpha: self.alpha, beta: self.beta },
            "LeakyRelu" => Activation::LeakyRelu { alpha: self.alpha },
            _ => return None,
        })
    }

    fn apply(&self, x: f64) -> f64 {
        let (a, b) = (f64::from(self.alpha), f64::from(self.beta));
        match self.name.as_str() {
            "Sigmoid" => 1.0 / (1.0 + (-x).exp()),
            "Tanh" => x.tanh(),
            "Relu" => x.max(0.0),
            "HardSigmoid" => (a * x + b).clamp(0.0, 1.0),
            "LeakyRelu" => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            "ThresholdedRelu" => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            "ScaledTanh" => a * (b * x).tanh(),
            "Affine" => a * x + b,
            "Elu" => {
                if x < 0.0 {
                    a * x.exp_m1()
                } else {
                    x
                }
            }
            "Softsign" => x / (1.0 + x.abs()),
            _ => (1.0 + x.exp()).ln(),
        }
    }
}

/// Attributes of an `LSTM` / `GRU` node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rnn {
    /// The cell.
    pub kind: RnnKind,
    /// Direction.
    pub direction: Direction,
    /// `hidden_size`.
    pub hidden: usize,
    /// Activations, [`RnnKind::activations`] per direction.
    pub activations: Vec<RnnAct>,
    /// `clip` of the gates' inputs.
    pub clip: Option<f32>,
    /// LSTM `input_forget` (couple input and forget gates).
    pub input_forget: bool,
    /// `layout = 1`: batch first.
    pub batch_first: bool,
    /// Outputs computed (Y, Y_h, and for LSTM Y_c).
    pub outputs: usize,
    /// `com.microsoft` `DynamicQuantizeLSTM`: 8-bit weights `[dirs, n, 4H]` with scales and
    /// zero points (inputs 8–11), activations quantized on the fly.
    pub quantized: bool,
}

impl Rnn {
    /// Directions (2 when bidirectional).
    pub fn dirs(&self) -> usize {
        if self.direction == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

pub(super) fn infer(at: &At, r: &Rnn, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let x = at.arg(args, 0)?.shape;
    let [a, b, input] = x else { return Err(at.err(format!("X has shape {x:?}, expected rank 3"))) };
    let (seq, batch) = if r.batch_first { (*b, *a) } else { (*a, *b) };
    let (d, h, g) = (r.dirs(), r.hidden, r.kind.gates());
    let expect = |i: usize, want: &[usize]| -> Result<()> {
        match args.get(i).and_then(Option::as_ref) {
            Some(a) if a.shape != want => Err(at.err(format!("input {i} has shape {:?}, expected {want:?}", a.shape))),
            _ => Ok(()),
        }
    };
    at.arg(args, 1)?;
    at.arg(args, 2)?;
    if r.quantized {
        expect(1, &[d, *input, g * h])?;
        expect(2, &[d, h, g * h])?;
    } else {
        expect(1, &[d, g * h, *input])?;
        expect(2, &[d, g * h, h])?;
    }
    expect(3, &[d, 2 * g * h])?;
    expect(4, &[batch])?;
    let state = if r.batch_first { vec![batch, d, h] } else { vec![d, batch, h] };
    expect(5, &state)?;
    if r.kind == RnnKind::Lstm {
        expect(6, &state)?;
        expect(7, &[d, 3 * h])?;
    }
    let y = if r.batch_first { vec![batch, seq, d, h] } else { vec![seq, d, batch, h] };
    let mut out = vec![y, state.clone(), state];
    out.truncate(r.outputs);
    Ok(out)
}

/// ONNX Runtime's dynamic quantization of an activation block: per tensor, the range
/// widened to include 0, scale `(max − min)/255` (1 when the range is empty), zero point
/// round-half-even; the block's values as `(q − zero_point)` and the scale.
fn quantize_block(v: &[f64]) -> (Vec<f64>, f32) {
    let lo = v.iter().copied().fold(0.0f64, f64::min) as f32;
    let hi = v.iter().copied().fold(0.0f64, f64::max) as f32;
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (-lo / scale).clamp(0.0, 255.0).round_ties_even();
    let q = v.iter().map(|&x| ((x as f32 / scale).round_ties_even() + zp).clamp(0.0, 255.0) - zp).map(f64::from);
    (q.collect(), scale)
}

/// Weights of one direction as the products read them: `at(row j of the 4H/3H gates, k)`.
enum Weights<'a> {
    /// Float `[gates·H, n]`.
    Float(&'a [f64], usize),
    /// Quantized `[n, gates·H]` as `(q − zero_point)`, with a scale per gate row (or one).
    Quant(Vec<f64>, usize, Vec<f32>),
}

impl Weights<'_> {
    /// `Σ_k v[k] · W[j, k]` for every gate row `j` into `out` (added), for each row `v` of
    /// `rows`; quantized weights quantize the rows as one block, or each row on its own
    /// (`per_row`).
    fn product(&self, rows: &[f64], out: &mut [f64], gh: usize, per_row: bool) {
        match self {
            Weights::Float(w, n) => {
                for (row, o) in rows.chunks(*n).zip(out.chunks_mut(gh)) {
                    for (j, oj) in o.iter_mut().enumerate() {
                        *oj += row.iter().zip(&w[j * n..(j + 1) * n]).map(|(a, b)| a * b).sum::<f64>();
                    }
                }
            }
            Weights::Quant(w, n, scales) => {
                // Integer products (exact in float64), rescaled in float32 as ORT does.
                let block = if per_row { *n } else { rows.len().max(1) };
                for (chunk, o_chunk) in rows.chunks(block).zip(out.chunks_mut(block / n * gh)) {
                    let (q, a_scale) = quantize_block(chunk);
                    Self::rescaled(&q, o_chunk, w, *n, gh, a_scale, scales);
                }
            }
        }
    }

    /// Quantized rows `q` (scale `a_scale`) times `w` `[n, gh]`, rescaled per gate row.
    fn rescaled(q: &[f64], out: &mut [f64], w: &[f64], n: usize, gh: usize, a_scale: f32, scales: &[f32]) {
        for (row, o) in q.chunks(n).zip(out.chunks_mut(gh)) {
            for (j, oj) in o.iter_mut().enumerate() {
                let acc: f64 = row.iter().enumerate().map(|(k, a)| a * w[k * gh + j]).sum();
                let m = a_scale * scales[if scales.len() > 1 { j } else { 0 }];
                *oj += f64::from(acc as f32 * m);
            }
        }
    }
}

/// `sequence_lens` (input 4), each at most `seq`; every row full length without it.
fn sequence_lens(at: &At, ins: &[Option<&Tensor<f64>>], seq: usize, batch: usize) -> Result<Vec<usize>> {
    let Some(t) = ins.get(4).copied().flatten() else { return Ok(vec![seq; batch]) };
    t.ints()
        .ok_or_else(|| at.err("sequence_lens must be integers"))?
        .iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= seq)
                .ok_or_else(|| at.err(format!("sequence length {l} for {seq} steps")))
        })
        .collect()
}

/// Direction `d`'s weights from input `i` (1: W, 2: R) with `n` columns; for
/// `DynamicQuantizeLSTM`, `[dirs, n, gates·H]` with scale/zero point at inputs 8 + 2·(i − 1).
fn direction_weights<'a>(
    at: &At,
    r: &Rnn,
    ins: &'a [Option<&'a Tensor<f64>>],
    (d, i, n): (usize, usize, usize),
) -> Result<Weights<'a>> {
    let gh = r.kind.gates() * r.hidden;
    if !r.quantized {
        let w = at.floats(ins, i)?;
        return Ok(Weights::Float(&w[d * gh * n..(d + 1) * gh * n], n));
    }
    let t = at.tensor(ins, i)?;
    let q = t.ints().ok_or_else(|| at.err(format!("input {i} must be an 8-bit integer tensor")))?;
    let (si, zi) = (8 + 2 * (i - 1), 9 + 2 * (i - 1));
    let scale = at.floats(ins, si)?;
    let zp: Vec<i64> = match ins.get(zi).copied().flatten() {
        Some(z) => z.ints().ok_or_else(|| at.err(format!("input {zi} must be integers")))?.to_vec(),
        None => vec![0; scale.len()],
    };
    let dirs = r.dirs();
    let per = if scale.len() == dirs { 1 } else { gh };
    if scale.len() != dirs * per || zp.len() != scale.len() {
        return Err(at.err(format!("scale/zero point of {} values for {dirs} direction(s)", scale.len())));
    }
    let (s, z) = (&scale[d * per..(d + 1) * per], &zp[d * per..(d + 1) * per]);
    let w = q[d * n * gh..(d + 1) * n * gh]
        .iter()
        .enumerate()
        .map(|(e, &v)| (v - z[if per > 1 { e % gh } else { 0 }]) as f64)
        .collect();
    Ok(Weights::Quant(w, n, s.iter().map(|&v| v as f32).collect()))
}

/// Sizes of one evaluation and the flat indices of X, the states and Y in the node's layout.
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    dirs: usize,
    h: usize,
    batch_first: bool,
}

impl Dims {
    fn x(&self, t: usize, b: usize) -> usize {
        if self.batch_first {
            (b * self.seq + t) * self.input
        } else {
            (t * self.batch + b) * self.input
        }
    }

    fn state(&self, d: usize, b: usize, k: usize) -> usize {
        if self.batch_first {
            (b * self.dirs + d) * self.h + k
        } else {
            (d * self.batch + b) * self.h + k
        }
    }

    fn y(&self, t: usize, d: usize, b: usize, k: usize) -> usize {
        if self.batch_first {
            ((b * self.seq + t) * self.dirs + d) * self.h + k
        } else {
            ((t * self.dirs + d) * self.batch + b) * self.h + k
        }
    }
}

/// What one cell update reads: the direction's activations, the input and recurrent
/// products of this step, the recurrent bias, peepholes and `clip`.
struct Cell<'a> {
    r: &'a Rnn,
    d: usize,
    acts: &'a [RnnAct],
    peep: Option<&'a [f64]>,
    recurrent: &'a Weights<'a>,
    rb: &'a [f64],
}

impl Cell<'_> {
    fn clip(&self, v: f64) -> f64 {
        match self.r.clip {
            Some(c) => v.clamp(-f64::from(c), f64::from(c)),
            None => v,
        }
    }

    /// One LSTM step of a batch row: gates i, o, f, c from `xw + hr`, with peepholes.
    fn lstm(&self, xw: &[f64], hr: &[f64], hb: &mut [f64], cb: &mut [f64]) {
        let (h, acts) = (self.r.hidden, self.acts);
        let p = |gate: usize, k: usize| self.peep.map_or(0.0, |p| p[self.d * 3 * h + gate * h + k]);
        for k in 0..h {
            let pre = |gate: usize| xw[gate * h + k] + hr[gate * h + k];
            let i = acts[0].apply(self.clip(pre(0) + p(0, k) * cb[k]));
            let f = if self.r.input_forget { 1.0 - i } else { acts[0].apply(self.clip(pre(2) + p(2, k) * cb[k])) };
            let c = acts[1].apply(self.clip(pre(3)));
            cb[k] = f * cb[k] + i * c;
            let o = acts[0].apply(self.clip(pre(1) + p(1, k) * cb[k]));
            hb[k] = o * acts[2].apply(cb[k]);
        }
    }

    /// One GRU step of a batch row: gates z, r, h; the candidate from `(r ⊙ h)·Rhᵀ + Rbh`
    /// unless `linear_before_reset`.
    fn gru(&self, linear_before_reset: bool, xw: &[f64], hr: &[f64], hb: &mut [f64]) {
        let (h, acts) = (self.r.hidden, self.acts);
        let Weights::Float(rw, _) = self.recurrent else { unreachable!("GRU weights are float") };
        let reset: Vec<f64> = (0..h).map(|q| acts[0].apply(self.clip(xw[h + q] + hr[h + q]))).collect();
        let next: Vec<f64> = (0..h)
            .map(|k| {
                let z = acts[0].apply(self.clip(xw[k] + hr[k]));
                let cand = if linear_before_reset {
                    xw[2 * h + k] + reset[k] * hr[2 * h + k]
                } else {
                    let s: f64 = (0..h).map(|q| reset[q] * hb[q] * rw[(2 * h + k) * h + q]).sum();
                    xw[2 * h + k] + self.rb[2 * h + k] + s
                };
                (1.0 - z) * acts[1].apply(self.clip(cand)) + z * hb[k]
            })
            .collect();
        hb.copy_from_slice(&next);
    }
}

pub(super) fn eval(
    at: &At,
    r: &Rnn,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let xs = at.tensor(ins, 0)?.shape.clone();
    let (seq, batch) = if r.batch_first { (xs[1], xs[0]) } else { (xs[0], xs[1]) };
    let dims = Dims { seq, batch, input: xs[2], dirs: r.dirs(), h: r.hidden, batch_first: r.batch_first };
    let (dirs, h, gh) = (dims.dirs, r.hidden, r.kind.gates() * r.hidden);
    let x = at.floats(ins, 0)?;
    let opt = |i: usize| -> Result<Option<&[f64]>> {
        match ins.get(i).copied().flatten() {
            Some(_) => at.floats(ins, i).map(Some),
            None => Ok(None),
        }
    };
    let bias = opt(3)?;
    let lens = sequence_lens(at, ins, seq, batch)?;
    let (h0, c0) = (opt(5)?, if r.kind == RnnKind::Lstm { opt(6)? } else { None });
    let peep = if r.kind == RnnKind::Lstm { opt(7)? } else { None };
    let mut y = vec![0.0; seq * dirs * batch * h];
    let mut yh = vec![0.0; dirs * batch * h];
    let mut yc = vec![0.0; dirs * batch * h];
    let na = r.kind.activations();
    // X in (t, b) row order, for the input products of all steps at once.
    let x_rows: Vec<f64> = (0..seq)
        .flat_map(|t| (0..batch).map(move |b| (t, b)))
        .flat_map(|(t, b)| x[dims.x(t, b)..dims.x(t, b) + dims.input].iter().copied())
        .collect();
    let zero = vec![0.0; 2 * gh];
    for d in 0..dirs {
        let reverse = r.direction == Direction::Reverse || d == 1;
        let (wd, rd) = (direction_weights(at, r, ins, (d, 1, dims.input))?, direction_weights(at, r, ins, (d, 2, h))?);
        let bd = bias.map_or(&zero[..], |b| &b[d * 2 * gh..(d + 1) * 2 * gh]);
        let cell = Cell { r, d, acts: &r.activations[d * na..(d + 1) * na], peep, recurrent: &rd, rb: &bd[gh..] };
        // x·Wᵀ + Wb for every (t, b).
        let mut xw: Vec<f64> = (0..seq * batch).flat_map(|_| bd[..gh].to_vec()).collect();
        wd.product(&x_rows, &mut xw, gh, false);
        let initial = |v: Option<&[f64]>| -> Vec<f64> {
            (0..batch * h).map(|e| v.map_or(0.0, |v| v[dims.state(d, e / h, e % h)])).collect()
        };
        let (mut hs, mut cs) = (initial(h0), initial(c0));
        for step in 0..seq {
            // h·Rᵀ + Rb for every batch row, quantized over the whole batch: ONNX Runtime's
            // result with one thread (with more, it quantizes each row apart, and its output
            // moves by about one quantization step).
            let mut hr: Vec<f64> = (0..batch).flat_map(|_| bd[gh..].to_vec()).collect();
            rd.product(&hs, &mut hr, gh, false);
            for (b, &len) in lens.iter().enumerate().filter(|&(_, &len)| step < len) {
                let t = if reverse { len - 1 - step } else { step };
                let xw = &xw[(t * batch + b) * gh..][..gh];
                let hr = &hr[b * gh..][..gh];
                let (hb, cb) = (&mut hs[b * h..(b + 1) * h], &mut cs[b * h..(b + 1) * h]);
                match r.kind {
                    RnnKind::Lstm => cell.lstm(xw, hr, hb, cb),
                    RnnKind::Gru(linear_before_reset) => cell.gru(linear_before_reset, xw, hr, hb),
                }
                for (k, &v) in hb.iter().enumerate() {
                    y[dims.y(t, d, b, k)] = v;
                }
            }
        }
        for b in 0..batch {
            for k in 0..h {
                yh[dims.state(d, b, k)] = hs[b * h + k];
                yc[dims.state(d, b, k)] = cs[b * h + k];
            }
        }
    }
    let mut out = vec![Tensor::float(shapes[0].clone(), y)];
    if r.outputs > 1 {
        out.push(Tensor::float(shapes[1].clone(), yh));
    }
    if r.outputs > 2 {
        out.push(Tensor::float(shapes[2].clone(), yc));
    }
    Ok(out)
}

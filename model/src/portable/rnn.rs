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

    fn gates(self) -> usize {
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
}

impl Rnn {
    fn dirs(&self) -> usize {
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
    expect(1, &[d, g * h, *input])?;
    expect(2, &[d, g * h, h])?;
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

pub(super) fn eval(
    at: &At,
    r: &Rnn,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let xs = at.tensor(ins, 0)?.shape.clone();
    let (seq, batch, input) = if r.batch_first { (xs[1], xs[0], xs[2]) } else { (xs[0], xs[1], xs[2]) };
    let (dirs, h, g) = (r.dirs(), r.hidden, r.kind.gates());
    let x = at.floats(ins, 0)?;
    let (w, rw) = (at.floats(ins, 1)?, at.floats(ins, 2)?);
    let opt = |i: usize| -> Result<Option<&[f64]>> {
        match ins.get(i).copied().flatten() {
            Some(_) => at.floats(ins, i).map(Some),
            None => Ok(None),
        }
    };
    let bias = opt(3)?;
    let lens: Vec<usize> = match ins.get(4).copied().flatten() {
        Some(t) => t
            .ints()
            .ok_or_else(|| at.err("sequence_lens must be integers"))?
            .iter()
            .map(|&l| {
                usize::try_from(l)
                    .ok()
                    .filter(|&l| l <= seq)
                    .ok_or_else(|| at.err(format!("sequence length {l} for {seq} steps")))
            })
            .collect::<Result<_>>()?,
        None => vec![seq; batch],
    };
    let (h0, c0) = (opt(5)?, if r.kind == RnnKind::Lstm { opt(6)? } else { None });
    let peep = if r.kind == RnnKind::Lstm { opt(7)? } else { None };
    // Index helpers in the two layouts.
    let xi = |t: usize, b: usize, k: usize| {
        if r.batch_first {
            (b * seq + t) * input + k
        } else {
            (t * batch + b) * input + k
        }
    };
    let si =
        |d: usize, b: usize, k: usize| if r.batch_first { (b * dirs + d) * h + k } else { (d * batch + b) * h + k };
    let yi = |t: usize, d: usize, b: usize, k: usize| {
        if r.batch_first {
            ((b * seq + t) * dirs + d) * h + k
        } else {
            ((t * dirs + d) * batch + b) * h + k
        }
    };
    let mut y = vec![0.0; seq * dirs * batch * h];
    let mut yh = vec![0.0; dirs * batch * h];
    let mut yc = vec![0.0; dirs * batch * h];
    let clip = |v: f64| match r.clip {
        Some(c) => v.clamp(-f64::from(c), f64::from(c)),
        None => v,
    };
    let na = r.kind.activations();
    for d in 0..dirs {
        let reverse = r.direction == Direction::Reverse || d == 1;
        let acts = &r.activations[d * na..(d + 1) * na];
        let wd = &w[d * g * h * input..(d + 1) * g * h * input];
        let rd = &rw[d * g * h * h..(d + 1) * g * h * h];
        let zero = vec![0.0; 2 * g * h];
        let bd = bias.map_or(&zero[..], |b| &b[d * 2 * g * h..(d + 1) * 2 * g * h]);
        for b in 0..batch {
            let mut hs: Vec<f64> = (0..h).map(|k| h0.map_or(0.0, |v| v[si(d, b, k)])).collect();
            let mut cs: Vec<f64> = (0..h).map(|k| c0.map_or(0.0, |v| v[si(d, b, k)])).collect();
            let len = lens[b];
            for step in 0..len {
                let t = if reverse { len - 1 - step } else { step };
                // Gate pre-activations: x·Wᵀ + Wb and h·Rᵀ + Rb, kept apart for GRU.
                let mut xw = vec![0.0; g * h];
                let mut hr = vec![0.0; g * h];
                for j in 0..g * h {
                    let mut s = bd[j];
                    for k in 0..input {
                        s += x[xi(t, b, k)] * wd[j * input + k];
                    }
                    xw[j] = s;
                    let mut s = bd[g * h + j];
                    for k in 0..h {
                        s += hs[k] * rd[j * h + k];
                    }
                    hr[j] = s;
                }
                match r.kind {
                    RnnKind::Lstm => {
                        let p = |gate: usize, k: usize| peep.map_or(0.0, |p| p[d * 3 * h + gate * h + k]);
                        let mut next = vec![0.0; h];
                        for k in 0..h {
                            let pre = |gate: usize| xw[gate * h + k] + hr[gate * h + k];
                            let i = acts[0].apply(clip(pre(0) + p(0, k) * cs[k]));
                            let f =
                                if r.input_forget { 1.0 - i } else { acts[0].apply(clip(pre(2) + p(2, k) * cs[k])) };
                            let c = acts[1].apply(clip(pre(3)));
                            cs[k] = f * cs[k] + i * c;
                            let o = acts[0].apply(clip(pre(1) + p(1, k) * cs[k]));
                            next[k] = o * acts[2].apply(cs[k]);
                        }
                        hs = next;
                    }
                    RnnKind::Gru(linear_before_reset) => {
                        let mut next = vec![0.0; h];
                        let reset: Vec<f64> = (0..h).map(|q| acts[0].apply(clip(xw[h + q] + hr[h + q]))).collect();
                        for k in 0..h {
                            let z = acts[0].apply(clip(xw[k] + hr[k]));
                            let rr = reset[k];
                            let cand = if linear_before_reset {
                                xw[2 * h + k] + rr * hr[2 * h + k]
                            } else {
                                // (r ⊙ h)·Rhᵀ + Rbh.
                                let mut s = bd[g * h + 2 * h + k];
                                for q in 0..h {
                                    s += reset[q] * hs[q] * rd[(2 * h + k) * h + q];
                                }
                                xw[2 * h + k] + s
                            };
                            let ht = acts[1].apply(clip(cand));
                            next[k] = (1.0 - z) * ht + z * hs[k];
                        }
                        hs = next;
                    }
                }
                for k in 0..h {
                    y[yi(t, d, b, k)] = hs[k];
                }
            }
            for k in 0..h {
                yh[si(d, b, k)] = hs[k];
                yc[si(d, b, k)] = cs[k];
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

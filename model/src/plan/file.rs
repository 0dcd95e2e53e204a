//! The plan file: `EPPL`, a version, a JSON description of values and steps, then the
//! float constants and packed weights as length-prefixed binary blobs. Everything is
//! checked on load: a truncated or edited file is an error, never a panic.

use serde::{Deserialize, Serialize};

use super::{memory, Operand, Plan, PlanValue, PlannedStep, Step};
use crate::error::{ModelError, Result};

const MAGIC: &[u8; 4] = b"EPPL";
/// The version this build writes: 7 added `Step::ExpandDepthwise`, 8 `Step::Conv`'s gate
/// (which a build that does not know it would ignore), 9 `MapOp::Exact` (so that an older
/// build says which version it cannot read instead of naming an unknown variant), 10
/// `Step::GroupNorm`.
const VERSION: u32 = 10;
/// The oldest version this build reads (each later version only added to the header).
const OLDEST: u32 = 6;

#[derive(Serialize, Deserialize)]
struct Header {
    kernel_set: String,
    kernel_name: String,
    values: Vec<PlanValue>,
    steps: Vec<PlannedStep>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    slots: Vec<usize>,
    flops: u64,
    consts: usize,
    convs: usize,
    gemms: usize,
    /// Absent from files written before plans recorded it: read as the defaults.
    #[serde(default)]
    tuning: Vec<String>,
}

fn blob(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn write(plan: &Plan) -> Vec<u8> {
    let header = Header {
        kernel_set: plan.kernel_set.name().to_string(),
        kernel_name: plan.kernel_name.clone(),
        values: plan.values.clone(),
        steps: plan.steps.clone(),
        inputs: plan.inputs.clone(),
        outputs: plan.outputs.clone(),
        slots: plan.slots.clone(),
        flops: plan.flops,
        consts: plan.consts.len(),
        convs: plan.convs.len(),
        gemms: plan.gemms.len(),
        tuning: plan.tuning.clone(),
    };
    let json = serde_json::to_vec(&header).expect("plan headers serialize");
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    blob(&mut out, &json);
    for c in &plan.consts {
        blob(&mut out, &c.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    for c in &plan.convs {
        blob(&mut out, &c.to_bytes());
    }
    for g in &plan.gemms {
        blob(&mut out, &g.to_bytes());
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(ModelError::PlanFile(format!("truncated in {what}")));
        }
        let (h, t) = self.bytes.split_at(n);
        self.bytes = t;
        Ok(h)
    }

    fn blob(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| ModelError::PlanFile(format!("{what} is too long")))?;
        self.take(len, what)
    }
}

pub(crate) fn read(bytes: &[u8]) -> Result<Plan> {
    let mut r = Reader { bytes };
    if r.take(4, "the magic")? != MAGIC {
        return Err(ModelError::PlanFile("not an edgepack plan (bad magic)".into()));
    }
    let version = u32::from_le_bytes(r.take(4, "the version")?.try_into().expect("4 bytes"));
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(ModelError::PlanFile(format!("version {version}, this build reads {OLDEST} to {VERSION}")));
    }
    let h: Header =
        serde_json::from_slice(r.blob("the header")?).map_err(|e| ModelError::PlanFile(format!("header: {e}")))?;
    let kernel_set = kernels::KernelSetId::ALL
        .into_iter()
        .find(|k| k.name() == h.kernel_set)
        .ok_or_else(|| ModelError::PlanFile(format!("unknown kernel set `{}`", h.kernel_set)))?;
    let mut consts = Vec::with_capacity(h.consts.min(1 << 20));
    for i in 0..h.consts {
        let b = r.blob("a constant")?;
        if b.len() % 4 != 0 {
            return Err(ModelError::PlanFile(format!("constant {i} has {} bytes", b.len())));
        }
        consts.push(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect());
    }
    let mut convs = Vec::new();
    for i in 0..h.convs {
        convs.push(
            kernels::PackedConv::from_bytes(r.blob("a convolution")?)
                .map_err(|e| ModelError::PlanFile(format!("convolution {i}: {e}")))?,
        );
    }
    let mut gemms = Vec::new();
    for i in 0..h.gemms {
        gemms.push(
            kernels::PackedB::from_bytes(r.blob("a GEMM")?)
                .map_err(|e| ModelError::PlanFile(format!("GEMM {i}: {e}")))?,
        );
    }
    if !r.bytes.is_empty() {
        return Err(ModelError::PlanFile(format!("{} bytes after the last blob", r.bytes.len())));
    }
    let plan = Plan {
        kernel_set,
        kernel_name: h.kernel_name,
        values: h.values,
        steps: h.steps,
        inputs: h.inputs,
        outputs: h.outputs,
        slots: h.slots,
        consts,
        convs,
        gemms,
        flops: h.flops,
        tuning: h.tuning,
    };
    check(&plan)?;
    Ok(plan)
}

/// Every index in range and every buffer large enough, so that running a loaded plan
/// cannot read or write out of bounds.
fn check(plan: &Plan) -> Result<()> {
    let bad = |what: String| Err(ModelError::PlanFile(what));
    let nv = plan.values.len();
    if plan.convs.iter().map(|c| c.kernel()).chain(plan.gemms.iter().map(|g| g.kernel())).any(|k| k != plan.kernel_name)
    {
        return bad(format!("weights packed for another kernel set than `{}`", plan.kernel_name));
    }
    if plan.inputs.iter().chain(&plan.outputs).any(|&v| v >= nv) {
        return bad("an input or output index is out of range".into());
    }
    // Values no step reads or writes (intermediates a fusion removed) have no buffer.
    let mut used = vec![false; nv];
    for &v in plan.inputs.iter().chain(&plan.outputs) {
        used[v] = true;
    }
    for ps in &plan.steps {
        for v in memory::reads(&ps.step).0.into_iter().chain([memory::writes(&ps.step)]) {
            if let Some(u) = used.get_mut(v) {
                *u = true;
            }
        }
    }
    for (i, v) in plan.values.iter().enumerate().filter(|&(i, _)| used[i]) {
        if v.slot >= plan.slots.len() || plan.slots[v.slot] < v.words() {
            return bad(format!("value {i} does not fit its buffer slot"));
        }
        if v.layout == super::Layout::Nhwc && v.shape.len() != 4 {
            return bad(format!("value {i} is NHWC but not 4-D"));
        }
    }
    for (s, ps) in plan.steps.iter().enumerate() {
        let step = &ps.step;
        let (reads, _) = memory::reads(step);
        let out = memory::writes(step);
        if out >= nv || reads.iter().any(|&v| v >= nv) {
            return bad(format!("step {s} names a value out of range"));
        }
        let consts_ok = |o: &Operand| match o {
            Operand::Const(c) => *c < plan.consts.len(),
            Operand::Value(_) => true,
        };
        let ok = match step {
            Step::Conv { weights, bias, .. } => {
                *weights < plan.convs.len() && bias.is_none_or(|b| b < plan.consts.len())
            }
            Step::ExpandDepthwise { expand, depthwise, .. } => [expand, depthwise]
                .iter()
                .all(|f| f.weights < plan.convs.len() && f.bias.is_none_or(|b| b < plan.consts.len())),
            Step::Gemm { b, bias, .. } => *b < plan.gemms.len() && bias.is_none_or(|b| b < plan.consts.len()),
            Step::Map { ops, .. } => ops.iter().all(|op| match op {
                super::MapOp::Mul(k) | super::MapOp::Add(k) => *k < plan.consts.len(),
                super::MapOp::Act(_) | super::MapOp::Unary(_) | super::MapOp::Exact(_) => true,
            }),
            Step::Binary { a, b, .. } => consts_ok(&a.0) && consts_ok(&b.0),
            Step::Concat { inputs, .. } => inputs.iter().all(consts_ok),
            Step::Copy { input, .. } => consts_ok(input),
            Step::LayerNorm { scale, bias, .. } => {
                *scale < plan.consts.len() && bias.is_none_or(|b| b < plan.consts.len())
            }
            Step::GroupNorm { scale, bias, .. } => *scale < plan.consts.len() && *bias < plan.consts.len(),
            Step::Recurrence { cell, .. } => {
                cell.recurrent.iter().all(|&g| g < plan.gemms.len()) && cell.constants().all(|c| c < plan.consts.len())
            }
            Step::Eval { inputs, .. } => super::eval::consts_ok(inputs, plan.consts.len()),
            _ => true,
        };
        if !ok {
            return bad(format!("step {s} names a constant or weight out of range"));
        }
    }
    // The shapes are re-validated by the kernels on every call; the element-wise steps
    // are checked by re-deriving their extents at run time.
    Ok(())
}

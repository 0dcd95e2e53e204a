//! The `com.microsoft` quantized operators that ONNX Runtime's quantization tool writes
//! (QLinearAdd/Mul, QLinearSigmoid, QLinearConcat, QLinearGlobalAveragePool, QGemm,
//! DynamicQuantizeMatMul) and ONNX's QLinearConv and ConvInteger, run by the float64 reference on small graphs and compared element
//! by element with their definitions computed here: dequantize `(q − zp)·scale`, compute in
//! real numbers, requantize with round-half-to-even and saturation to UINT8.

mod common;

use common::Builder;
use model::tensor::DType;
use model::Tensor;
use onnx::build;
use onnx::proto::{GraphProto, TensorProto};

/// The graph input: 8 values whose halves (x / 0.5) include ties (−2.5, −0.5, 1.5).
const X: [f64; 8] = [-1.25, 0.0, 0.75, 2.0, 3.5, -0.25, 1.0, 5.0];
/// `x`'s quantization: scale and UINT8 zero point.
const XS: f64 = 0.5;
const XZ: i64 = 10;

/// UINT8 quantization as ONNX defines it.
fn quantize(v: f64, scale: f64, zp: i64) -> i64 {
    ((v / scale).round_ties_even() as i64 + zp).clamp(0, 255)
}

fn dequantize(q: i64, scale: f64, zp: i64) -> f64 {
    (q - zp) as f64 * scale
}

fn xq() -> Vec<i64> {
    X.iter().map(|&v| quantize(v, XS, XZ)).collect()
}

/// A UINT8 initializer.
fn u8_tensor(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: 2,
        raw_data: data.iter().map(|&v| u8::try_from(v).expect("a UINT8 value")).collect(),
        ..Default::default()
    }
}

/// An INT32 initializer.
fn i32_tensor(name: &str, dims: &[usize], data: &[i32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: 6,
        int32_data: data.to_vec(),
        ..Default::default()
    }
}

/// A graph on input `x` [1, 2, 2, 2] quantized to `q` (scale 0.5, zero point 10), with the
/// scales and zero points the cases use as initializers (unused ones are harmless).
fn graph() -> Builder {
    let mut b = Builder::new(&[1, 2, 2, 2]);
    for (name, v) in [("s_half", 0.5f32), ("s_quarter", 0.25), ("s_256", 1.0 / 256.0)] {
        b.constant(name, &[], &[v]);
    }
    b.inits.push(u8_tensor("z10", &[], &[10]));
    b.inits.push(u8_tensor("z5", &[], &[5]));
    b.inits.push(u8_tensor("z0", &[], &[0]));
    b.inits.push(u8_tensor("z3", &[], &[3]));
    b.inits.push(u8_tensor("z7", &[], &[7]));
    b.node("QuantizeLinear", &["x", "s_half", "z10"], "q", vec![]);
    b
}

/// Runs `b`'s graph (its `QLinear*` nodes but ONNX's QLinearConv and QLinearMatMul, its `QGemm`
/// and `DynamicQuantizeMatMul` nodes in the `com.microsoft` domain) on [`X`] with the float64 reference and returns the outputs.
fn run(mut b: Builder) -> Vec<Tensor<f64>> {
    for n in &mut b.nodes {
        let onnx_op = ["QLinearConv", "QLinearMatMul"].contains(&n.op_type.as_str());
        if (n.op_type.starts_with("QLinear") && !onnx_op)
            || ["QGemm", "DynamicQuantizeMatMul"].contains(&n.op_type.as_str())
        {
            n.domain = "com.microsoft".into();
        }
    }
    let graph = GraphProto {
        node: b.nodes.clone(),
        name: "quant".into(),
        initializer: b.inits.clone(),
        input: vec![build::value_info("x", &[Some(1), Some(2), Some(2), Some(2)])],
        output: b.outputs.iter().map(|o| build::value_info(o, &[])).collect(),
        ..Default::default()
    };
    let bytes = build::model_with_opsets(&[("", 13), ("com.microsoft", 1)], graph);
    let p = model::prepare(&bytes, &[vec![1, 2, 2, 2]]).expect("the model imports");
    let x = Tensor::float(vec![1, 2, 2, 2], X.to_vec());
    model::reference::run(&p.specialized, &[x]).expect("the reference runs")
}

fn assert_u8(t: &Tensor<f64>, shape: &[usize], want: &[i64], what: &str) {
    assert_eq!(t.shape, shape, "{what}: shape");
    assert_eq!(t.dtype, DType::U8, "{what}: type");
    assert_eq!(t.ints().expect("integers"), want, "{what}");
}

#[test]
fn the_input_quantizes_with_ties_to_even() {
    // x / 0.5 = −2.5, 0, 1.5, 4, 7, −0.5, 2, 10: the ties go to −2, 2 and −0.
    assert_eq!(xq(), [8, 10, 12, 14, 17, 10, 12, 20]);
}

#[test]
fn qlinear_add_and_mul_requantize_the_real_result() {
    let mut b = graph();
    b.node("QLinearAdd", &["q", "s_half", "z10", "q", "s_half", "z10", "s_quarter", "z5"], "add", vec![]);
    b.node("QLinearMul", &["q", "s_half", "z10", "q", "s_half", "z10", "s_quarter", "z5"], "mul", vec![]);
    b.output("add");
    b.output("mul");
    let out = run(b);
    let real: Vec<f64> = xq().iter().map(|&q| dequantize(q, XS, XZ)).collect();
    let add: Vec<i64> = real.iter().map(|&r| quantize(r + r, 0.25, 5)).collect();
    let mul: Vec<i64> = real.iter().map(|&r| quantize(r * r, 0.25, 5)).collect();
    // −1 + −1 = −2 → −8 + 5 saturates at 0; 5 · 5 = 25 → 100 + 5.
    assert_eq!((add[0], mul[7]), (0, 105));
    assert_u8(&out[0], &[1, 2, 2, 2], &add, "QLinearAdd");
    assert_u8(&out[1], &[1, 2, 2, 2], &mul, "QLinearMul");
}

#[test]
fn qlinear_sigmoid_and_global_average_pool() {
    let mut b = graph();
    b.node("QLinearSigmoid", &["q", "s_half", "z10", "s_256", "z0"], "sig", vec![]);
    b.node("QLinearGlobalAveragePool", &["q", "s_half", "z10", "s_quarter", "z5"], "gap", vec![]);
    b.output("sig");
    b.output("gap");
    let out = run(b);
    let real: Vec<f64> = xq().iter().map(|&q| dequantize(q, XS, XZ)).collect();
    let sig: Vec<i64> = real.iter().map(|&r| quantize(1.0 / (1.0 + (-r).exp()), 1.0 / 256.0, 0)).collect();
    assert_u8(&out[0], &[1, 2, 2, 2], &sig, "QLinearSigmoid");
    // Channel means of the NCHW input: (−1 + 0 + 1 + 2) / 4 and (3.5 + 0 + 1 + 5) / 4.
    let gap: Vec<i64> = real.chunks(4).map(|c| quantize(c.iter().sum::<f64>() / 4.0, 0.25, 5)).collect();
    assert_eq!(gap, [7, 15]);
    assert_u8(&out[1], &[1, 2, 1, 1], &gap, "QLinearGlobalAveragePool");
}

#[test]
fn qlinear_concat_requantizes_each_part() {
    let mut b = graph();
    // A second part on another scale: the sum, at scale 0.25 and zero point 5.
    b.node("QLinearAdd", &["q", "s_half", "z10", "q", "s_half", "z10", "s_quarter", "z5"], "add", vec![]);
    b.node(
        "QLinearConcat",
        &["s_half", "z10", "q", "s_half", "z10", "add", "s_quarter", "z5"],
        "cat",
        vec![build::int("axis", 1)],
    );
    b.output("cat");
    let out = run(b);
    let q = xq();
    let add: Vec<i64> = q.iter().map(|&v| quantize(2.0 * dequantize(v, XS, XZ), 0.25, 5)).collect();
    let requant = |v: i64| quantize(dequantize(v, 0.25, 5), XS, XZ);
    let want: Vec<i64> = q.iter().copied().chain(add.iter().map(|&v| requant(v))).collect();
    assert_u8(&out[0], &[1, 4, 2, 2], &want, "QLinearConcat");
}

#[test]
fn qgemm_with_bias_transposes_and_requantizes() {
    // A [2, 3] and Bᵀ [2, 3] (transB), zero points 3 and 7, an INT32 bias, alpha 0.5.
    let (a, bt) = ([1i64, 3, 9, 4, 0, 12], [7i64, 10, 2, 15, 5, 7]);
    let bias = [6i32, -4];
    let mut b = graph();
    b.inits.push(u8_tensor("A", &[2, 3], &a));
    b.inits.push(u8_tensor("Bt", &[2, 3], &bt));
    b.inits.push(i32_tensor("C", &[2], &bias));
    b.node(
        "QGemm",
        &["A", "s_half", "z3", "Bt", "s_quarter", "z7", "C", "s_half", "z10"],
        "y",
        vec![build::float("alpha", 0.5), build::int("transB", 1)],
    );
    b.output("y");
    let out = run(b);
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..2 {
            let dot: i64 = (0..3).map(|k| (a[i * 3 + k] - 3) * (bt[j * 3 + k] - 7)).sum();
            let real = (0.5 * dot as f64 + bias[j] as f64) * 0.5 * 0.25;
            want.push(quantize(real, XS, XZ));
        }
    }
    assert_u8(&out[0], &[2, 2], &want, "QGemm");
}

#[test]
fn dynamic_quantize_matmul_quantizes_a_on_the_fly() {
    // A = the input seen as [4, 2] (a reshape of x), B [2, 3] UINT8 with zero point 7 and
    // scale 0.25, a float bias.
    let bq = [7i64, 9, 3, 11, 0, 7];
    let bias = [0.5f32, -1.0, 2.0];
    let mut b = graph();
    b.int_constant("shape", &[2], &[4, 2]);
    b.node("Reshape", &["x", "shape"], "a", vec![]);
    b.inits.push(u8_tensor("B", &[2, 3], &bq));
    b.constant("bias", &[3], &bias);
    b.node("DynamicQuantizeMatMul", &["a", "B", "s_quarter", "z7", "bias"], "y", vec![]);
    b.output("y");
    let out = run(b);
    // DynamicQuantizeLinear in float32: the range includes 0, scale (max − min) / 255, zero
    // point round(−min / scale).
    let (lo, hi) = (-1.25f32, 5.0f32);
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round_ties_even() as i64;
    let aq: Vec<i64> = X.iter().map(|&v| ((v as f32 / scale).round_ties_even() as i64 + zp).clamp(0, 255)).collect();
    let mut want = Vec::new();
    for i in 0..4 {
        for j in 0..3 {
            let dot: i64 = (0..2).map(|k| (aq[i * 2 + k] - zp) * (bq[k * 3 + j] - 7)).sum();
            want.push(dot as f64 * f64::from(scale) * 0.25 + f64::from(bias[j]));
        }
    }
    let y = out[0].floats().expect("a float output");
    assert_eq!(out[0].shape, [4, 3]);
    for (i, (&got, &w)) in y.iter().zip(&want).enumerate() {
        assert!((got - w).abs() <= 1e-12 * w.abs().max(1.0), "y[{i}] = {got}, want {w}");
    }
    // The product is close to the float one (quantization error only).
    let exact: f64 = X[0] * dequantize(bq[0], 0.25, 7) + X[1] * dequantize(bq[3], 0.25, 7) + f64::from(bias[0]);
    assert!((y[0] - exact).abs() < 0.1, "y[0] = {}, float product {exact}", y[0]);
}

#[test]
fn qlinear_conv_and_conv_integer_shift_by_their_zero_points() {
    // Two 2×2 filters over the 2-channel 2×2 input: one output pixel per filter. ONNX's own
    // test cases of these operators are opset-10 models, which the node suite leaves out.
    let w = [3i64, 9, 7, 0, 12, 7, 5, 8, 1, 14, 7, 7, 2, 6, 11, 4];
    let bias = [-3i32, 20];
    let mut b = graph();
    b.inits.push(u8_tensor("W", &[2, 2, 2, 2], &w));
    b.inits.push(i32_tensor("B", &[2], &bias));
    b.node(
        "QLinearConv",
        &["q", "s_half", "z10", "W", "s_quarter", "z7", "s_half", "z10", "B"],
        "qc",
        vec![build::ints("kernel_shape", &[2, 2])],
    );
    b.node("ConvInteger", &["q", "W", "z10", "z7"], "ci", vec![build::ints("kernel_shape", &[2, 2])]);
    b.output("qc");
    b.output("ci");
    let out = run(b);
    let q = xq();
    let acc: Vec<i64> = (0..2).map(|o| (0..8).map(|k| (q[k] - XZ) * (w[o * 8 + k] - 7)).sum()).collect();
    let qc: Vec<i64> = (0..2).map(|o| quantize((acc[o] + bias[o] as i64) as f64 * XS * 0.25, XS, XZ)).collect();
    assert_u8(&out[0], &[1, 2, 1, 1], &qc, "QLinearConv");
    assert_eq!(out[1].shape, [1, 2, 1, 1], "ConvInteger: shape");
    assert_eq!(out[1].dtype, DType::I32, "ConvInteger: type");
    assert_eq!(out[1].ints().expect("integers"), acc, "ConvInteger");
}

//! The convolution benchmark set: the layers of a real mobile CNN at 640×640 input, and the
//! single-node ONNX models that the peers (tract, ONNX Runtime) run for the same shapes.
//!
//! Layers: MobileNetV3-Large (Howard et al. 2019, table 1) at a 640×640 input — the dense
//! stem on 3 channels, the inverted-residual blocks' pointwise expand/project convolutions and
//! their depthwise 3×3 / 5×5 convolutions at strides 1 and 2 — plus the layer types of a
//! DB-style text-detection head on that backbone (PP-OCR): dense 3×3 convolutions (the
//! PP-OCRv4 detector's FPN neck runs 96→24 at 160×160), a depthwise with
//! stride (2, 1) and (1, 2), and the 2×2 stride-2 transposed convolution that upsamples.

use kernels::{ConvKind, ConvParams};
use onnx::proto::GraphProto;

/// One benchmarked convolution.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// Short label.
    pub label: String,
    /// Which kind of layer (for grouping the targets): `stem`, `pointwise`, `depthwise`,
    /// `dense`, `transposed`.
    pub kind: &'static str,
    /// Input rows and columns.
    pub hw: [usize; 2],
    /// Attributes.
    pub params: ConvParams,
}

impl ConvLayer {
    /// Output `[oh, ow]`.
    pub fn output_hw(&self) -> [usize; 2] {
        self.params.output_hw(self.hw[0], self.hw[1]).expect("benchmark layers are valid")
    }

    /// Useful floating-point operations (2 per multiply-add; padding taps not counted twice).
    pub fn flops(&self) -> f64 {
        let [oh, ow] = self.output_hw();
        let p = &self.params;
        let per_output = p.taps() * p.c_in_per_group();
        match p.kind {
            ConvKind::Forward => 2.0 * (oh * ow * p.c_out * per_output) as f64,
            // Every input pixel meets every tap once.
            ConvKind::Transposed { .. } => {
                2.0 * (self.hw[0] * self.hw[1] * p.c_in * p.c_out_per_group() * p.taps()) as f64
            }
        }
    }

    /// Bytes a depthwise layer must move at least: input and output once each, f32.
    pub fn min_bytes(&self) -> usize {
        let [oh, ow] = self.output_hw();
        4 * (self.hw[0] * self.hw[1] * self.params.c_in + oh * ow * self.params.c_out)
    }
}

fn layer(
    kind: &'static str,
    hw: usize,
    c_in: usize,
    c_out: usize,
    k: usize,
    s: [usize; 2],
    groups: usize,
) -> ConvLayer {
    let pad = k / 2;
    let params = ConvParams { strides: s, pads: [pad; 4], groups, ..ConvParams::new(c_in, c_out, [k, k]) };
    let label = match kind {
        "depthwise" => format!(
            "dw{k}x{k}/{}{} {c_in}ch @{hw}",
            s[0],
            if s[0] == s[1] { String::new() } else { format!(",{}", s[1]) }
        ),
        "pointwise" => format!("pw {c_in}->{c_out} @{hw}"),
        _ => format!("{kind} {k}x{k}/{} {c_in}->{c_out} @{hw}", s[0]),
    };
    ConvLayer { label, kind, hw: [hw, hw], params }
}

/// The benchmark layers (see the module documentation).
pub fn mobile_cnn_640() -> Vec<ConvLayer> {
    let pw = |hw, ci, co| layer("pointwise", hw, ci, co, 1, [1, 1], 1);
    let dw = |hw, c, k, s| layer("depthwise", hw, c, c, k, s, c);
    let mut v = vec![
        layer("stem", 640, 3, 16, 3, [2, 2], 1),
        dw(320, 16, 3, [1, 1]),
        pw(320, 16, 16),
        pw(320, 16, 64),
        dw(320, 64, 3, [2, 2]),
        pw(160, 64, 24),
        pw(160, 24, 72),
        dw(160, 72, 3, [1, 1]),
        pw(160, 72, 24),
        dw(160, 72, 5, [2, 2]),
        pw(80, 72, 40),
        pw(80, 40, 120),
        dw(80, 120, 5, [1, 1]),
        pw(80, 120, 40),
        pw(80, 40, 240),
        dw(80, 240, 3, [2, 2]),
        pw(40, 240, 80),
        pw(40, 80, 480),
        dw(40, 480, 3, [1, 1]),
        pw(40, 480, 112),
        pw(40, 112, 672),
        dw(40, 672, 5, [2, 2]),
        pw(20, 672, 160),
        pw(20, 160, 960),
        dw(20, 960, 5, [1, 1]),
        pw(20, 960, 160),
        layer("dense", 80, 96, 96, 3, [1, 1], 1),
        layer("dense", 160, 96, 24, 3, [1, 1], 1),
        layer("dense", 40, 160, 160, 3, [1, 1], 1),
        dw(80, 120, 3, [2, 1]),
        dw(80, 120, 3, [1, 2]),
    ];
    let up = ConvParams {
        kind: ConvKind::Transposed { output_padding: [0, 0] },
        strides: [2, 2],
        ..ConvParams::new(64, 64, [2, 2])
    };
    v.push(ConvLayer { label: "transposed 2x2/2 64->64 @160".into(), kind: "transposed", hw: [160, 160], params: up });
    v
}

/// Deterministic weights (ONNX layout), bias and NCHW input for a layer.
pub fn layer_data(l: &ConvLayer) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gen = |len: usize, salt: usize| -> Vec<f32> {
        (0..len).map(|i| (((i * 7 + salt) % 23) as f32 - 11.0) * 0.01).collect()
    };
    let w = gen(l.params.weight_len(), 1);
    let b = gen(l.params.c_out, 5);
    let x = gen(l.hw[0] * l.hw[1] * l.params.c_in, 3);
    (w, b, x)
}

/// A one-node ONNX model (opset 13) computing the layer with bias on an NCHW input `X` of
/// batch 1: what tract and ONNX Runtime run.
pub fn single_node_model(l: &ConvLayer) -> Vec<u8> {
    use onnx::build;
    let p = &l.params;
    let (w, b, _) = layer_data(l);
    let [oh, ow] = l.output_hw();
    let (op, w_dims) = match p.kind {
        ConvKind::Forward => ("Conv", [p.c_out, p.c_in_per_group(), p.kernel[0], p.kernel[1]]),
        ConvKind::Transposed { .. } => ("ConvTranspose", [p.c_in, p.c_out_per_group(), p.kernel[0], p.kernel[1]]),
    };
    let i64s = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    let mut attribute = vec![
        build::ints("kernel_shape", &i64s(&p.kernel)),
        build::ints("strides", &i64s(&p.strides)),
        build::ints("dilations", &i64s(&p.dilations)),
        build::ints("pads", &i64s(&p.pads)),
        build::int("group", p.groups as i64),
    ];
    if let ConvKind::Transposed { output_padding } = p.kind {
        attribute.push(build::ints("output_padding", &i64s(&output_padding)));
    }
    let graph = GraphProto {
        node: vec![build::node(op, "conv", &["X", "W", "B"], &["Y"], attribute)],
        name: l.label.clone(),
        initializer: vec![build::float_tensor("W", &w_dims, &w), build::float_tensor("B", &[p.c_out], &b)],
        input: vec![build::value_info("X", &[Some(1), Some(p.c_in), Some(l.hw[0]), Some(l.hw[1])])],
        output: vec![build::value_info("Y", &[Some(1), Some(p.c_out), Some(oh), Some(ow)])],
        ..Default::default()
    };
    build::model(13, graph)
}

/// A file-name-safe form of a label.
pub fn file_stem(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

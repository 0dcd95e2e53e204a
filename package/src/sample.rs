//! Sample models this repository builds itself (no third-party files): a small defect
//! detector in the shape of the models users package: a stride-2 stem with BatchNorm, a
//! depthwise 3×3 with HardSwish, pointwise convolutions, a residual add, and either a
//! ConvTranspose decoder with a per-pixel sigmoid mask (segmentation) or global pooling, a
//! dense layer and softmax over `[normal, anomaly]` (classification). Weights are seeded
//! pseudo-random numbers: the numbers are meaningless, the computation is real.

use onnx::build::{float, float_tensor, int, int_tensor, ints, model, node, value_info};
use onnx::proto::GraphProto;

use crate::contract::{InputSpec, MaskClass, ModelContract, OutputSpec};

/// Which head the sample has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// `mask`: `[1, 1, H, W]` anomaly probability per pixel.
    Segmentation,
    /// `scores`: `[1, 2]` softmax over normal / anomaly.
    Classification,
}

struct Weights(model::rng::SplitMix);

impl Weights {
    /// `n` weights of a layer with `fan_in` inputs (scaled so activations stay O(1)).
    fn take(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let s = (3.0 / fan_in as f32).sqrt();
        self.0.vec(n, -s, s)
    }
}

/// The sample ONNX model (opset 13) for `h × w` RGB input (`h`, `w` multiples of 4).
pub fn sample_model(kind: SampleKind, h: usize, w: usize) -> Vec<u8> {
    assert!(
        h.is_multiple_of(4) && w.is_multiple_of(4) && h > 0 && w > 0,
        "sample input must be a positive multiple of 4"
    );
    let mut wt = Weights(model::rng::SplitMix::new(0xdefec7));
    let mut g = GraphProto { name: "edgepack-sample".into(), ..Default::default() };
    let mut init = |g: &mut GraphProto, name: &str, dims: &[usize], fan_in: usize| {
        let n = dims.iter().product();
        g.initializer.push(float_tensor(name, dims, &wt.take(n, fan_in)));
    };
    let conv = |pads: i64, stride: i64, group: i64| {
        vec![ints("pads", &[pads; 4]), ints("strides", &[stride, stride]), int("group", group)]
    };
    // Stem: 3→8, 3×3 stride 2, BatchNorm, Relu.
    init(&mut g, "stem.w", &[8, 3, 3, 3], 27);
    g.node.push(node("Conv", "stem", &["image", "stem.w"], &["stem"], conv(1, 2, 1)));
    for (name, v) in [("bn.scale", 1.0), ("bn.bias", 0.1), ("bn.mean", 0.05), ("bn.var", 0.9)] {
        g.initializer.push(float_tensor(name, &[8], &[v; 8]));
    }
    g.node.push(node(
        "BatchNormalization",
        "bn",
        &["stem", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
        &["stem.bn"],
        vec![float("epsilon", 1e-5)],
    ));
    g.node.push(node("Relu", "stem.relu", &["stem.bn"], &["s1"], vec![]));
    // Depthwise 3×3 with HardSwish written as x · HardSigmoid(x).
    init(&mut g, "dw.w", &[8, 1, 3, 3], 9);
    init(&mut g, "dw.b", &[8], 9);
    g.node.push(node("Conv", "dw", &["s1", "dw.w", "dw.b"], &["dw"], conv(1, 1, 8)));
    g.node.push(node(
        "HardSigmoid",
        "dw.hs",
        &["dw"],
        &["dw.gate"],
        vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
    ));
    g.node.push(node("Mul", "dw.hswish", &["dw", "dw.gate"], &["s2"], vec![]));
    // Pointwise 8→16, Relu; then 3×3 stride 2 16→16, Relu.
    init(&mut g, "pw.w", &[16, 8, 1, 1], 8);
    g.node.push(node("Conv", "pw", &["s2", "pw.w"], &["pw"], conv(0, 1, 1)));
    g.node.push(node("Relu", "pw.relu", &["pw"], &["s3"], vec![]));
    init(&mut g, "down.w", &[16, 16, 3, 3], 144);
    init(&mut g, "down.b", &[16], 144);
    g.node.push(node("Conv", "down", &["s3", "down.w", "down.b"], &["down"], conv(1, 2, 1)));
    g.node.push(node("Relu", "down.relu", &["down"], &["s4"], vec![]));
    let (output, dims) = match kind {
        SampleKind::Segmentation => {
            // Decoder: 2×2/2 transposed 16→8, residual add of the depthwise features, then
            // 2×2/2 transposed 8→1 and a sigmoid.
            init(&mut g, "up1.w", &[16, 8, 2, 2], 64);
            g.node.push(node("ConvTranspose", "up1", &["s4", "up1.w"], &["up1"], vec![ints("strides", &[2, 2])]));
            g.node.push(node("Add", "skip", &["up1", "s2"], &["u1"], vec![]));
            g.node.push(node("Relu", "up1.relu", &["u1"], &["u2"], vec![]));
            init(&mut g, "up2.w", &[8, 1, 2, 2], 32);
            init(&mut g, "up2.b", &[1], 32);
            g.node.push(node(
                "ConvTranspose",
                "up2",
                &["u2", "up2.w", "up2.b"],
                &["logits"],
                vec![ints("strides", &[2, 2])],
            ));
            g.node.push(node("Sigmoid", "mask", &["logits"], &["mask"], vec![]));
            ("mask", vec![Some(1), Some(1), Some(h), Some(w)])
        }
        SampleKind::Classification => {
            g.node.push(node("GlobalAveragePool", "gap", &["s4"], &["gap"], vec![]));
            g.initializer.push(int_tensor("flat.shape", &[2], &[1, 16]));
            g.node.push(node("Reshape", "flat", &["gap", "flat.shape"], &["flat"], vec![]));
            init(&mut g, "fc.w", &[2, 16], 16);
            init(&mut g, "fc.b", &[2], 16);
            g.node.push(node("Gemm", "fc", &["flat", "fc.w", "fc.b"], &["fc"], vec![int("transB", 1)]));
            g.node.push(node("Softmax", "scores", &["fc"], &["scores"], vec![int("axis", 1)]));
            ("scores", vec![Some(1), Some(2)])
        }
    };
    g.input.push(value_info("image", &[Some(1), Some(3), Some(h), Some(w)]));
    g.output.push(value_info(output, &dims));
    model(13, g)
}

/// The contract of the sample: 0..255 pixels scaled to 0..1 and normalized with ImageNet's
/// statistics; an anomaly mask with one class, or the anomaly score at index 1.
pub fn sample_contract(kind: SampleKind, h: usize, w: usize) -> ModelContract {
    ModelContract {
        input: InputSpec {
            name: "image".into(),
            shape: vec![1, 3, h, w],
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        },
        output: match kind {
            SampleKind::Segmentation => OutputSpec::Segmentation {
                mask_output: "mask".into(),
                classes: vec![MaskClass { name: "defect".into(), color: "#ff0000".into() }],
                threshold: 0.5,
            },
            SampleKind::Classification => {
                OutputSpec::Classification { score_output: "scores".into(), score_index: 1, threshold: 0.5 }
            }
        },
    }
}

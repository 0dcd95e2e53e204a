"""Exports the model zoo: open architectures from torchvision and timm with random weights
(BatchNorm running statistics set from a few random batches so outputs are not ~0), and a
few small networks defined here (a UNet-style segmenter, an FPN detector with box decoding
and NonMaxSuppression, a CRNN recognizer with a bidirectional LSTM).

    zoo_export.py OUT_DIR

Writes OUT_DIR/<name>.onnx and OUT_DIR/zoo.json: per model its file, the input shape it is
planned at, what it is, where it comes from, and whether its H/W are exported dynamic.
Deterministic: fixed seeds, pinned versions (ci/fetch-zoo.sh).
"""
import json
import os
import sys

import timm
import torch
import torch.nn as nn
import torchvision
import torchvision.models as tvm
import torchvision.models.segmentation as tvs


class UNet(nn.Module):
    """A small UNet: three down stages, a bottleneck, three up stages with skips."""

    def __init__(self, c=16, classes=3):
        super().__init__()

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.d1, self.d2, self.d3 = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.mid = block(4 * c, 8 * c)
        self.u3, self.u2, self.u1 = (nn.ConvTranspose2d(8 * c, 4 * c, 2, 2), nn.ConvTranspose2d(4 * c, 2 * c, 2, 2),
                                     nn.ConvTranspose2d(2 * c, c, 2, 2))
        self.c3, self.c2, self.c1 = block(8 * c, 4 * c), block(4 * c, 2 * c), block(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(nn.functional.max_pool2d(a, 2))
        c = self.d3(nn.functional.max_pool2d(b, 2))
        m = self.mid(nn.functional.max_pool2d(c, 2))
        c = self.c3(torch.cat([self.u3(m), c], 1))
        b = self.c2(torch.cat([self.u2(c), b], 1))
        a = self.c1(torch.cat([self.u1(b), a], 1))
        return torch.softmax(self.head(a), dim=1)


class FpnDetector(nn.Module):
    """MobileNetV3-Small features, a 3-level FPN, a shared anchor-free head (FCOS/YOLOX
    style: class scores, box distances), decoded to boxes and filtered by NMS."""

    def __init__(self, classes=4):
        super().__init__()
        f = tvm.mobilenet_v3_small().features
        self.s8, self.s16, self.s32 = f[:4], f[4:9], f[9:]
        self.fpn = torchvision.ops.FeaturePyramidNetwork([24, 48, 576], 64)
        self.cls = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, classes, 1))
        self.box = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 4, 1))

    def forward(self, x):
        a = self.s8(x)
        b = self.s16(a)
        c = self.s32(b)
        feats = self.fpn({"0": a, "1": b, "2": c})
        boxes, scores = [], []
        for (k, f), stride in zip(feats.items(), (8, 16, 32)):
            n, _, h, w = f.shape
            ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
            cx, cy = ((xs + 0.5) * stride).reshape(1, -1), ((ys + 0.5) * stride).reshape(1, -1)
            d = torch.exp(self.box(f).clamp(max=4.0)).reshape(n, 4, -1) * stride
            boxes.append(torch.stack([cy - d[:, 1], cx - d[:, 0], cy + d[:, 3], cx + d[:, 2]], dim=2))
            scores.append(torch.sigmoid(self.cls(f)).reshape(n, -1, h * w))
        # Whole-pixel boxes and scores in steps of 1/64: NMS then sees the same values in
        # float32 and float64 (its selection is ill-conditioned where scores nearly tie), so
        # its indices can be compared exactly.
        boxes, scores = torch.round(torch.cat(boxes, 1)), torch.round(torch.cat(scores, 2) * 64) / 64
        return boxes, scores


class NmsDetector(nn.Module):
    """The FPN detector with ONNX NonMaxSuppression on its decoded boxes."""

    def __init__(self):
        super().__init__()
        self.det = FpnDetector()

    def forward(self, x):
        boxes, scores = self.det(x)
        return boxes, scores

    @staticmethod
    def nms_graph(path):
        """Appends NonMaxSuppression (max 20 per class, IoU 0.5, score 0.3) to the export."""
        import onnx
        from onnx import helper, TensorProto
        m = onnx.load(path)
        g = m.graph
        boxes, scores = g.output[0].name, g.output[1].name
        g.initializer.extend([
            helper.make_tensor("nms_max", TensorProto.INT64, [1], [20]),
            helper.make_tensor("nms_iou", TensorProto.FLOAT, [1], [0.5]),
            helper.make_tensor("nms_score", TensorProto.FLOAT, [1], [0.3]),
        ])
        g.node.append(helper.make_node("NonMaxSuppression", [boxes, scores, "nms_max", "nms_iou", "nms_score"],
                                       ["selected"], name="nms"))
        g.output.append(helper.make_tensor_value_info("selected", TensorProto.INT64, ["n", 3]))
        onnx.save(m, path)


class Crnn(nn.Module):
    """A CRNN text recognizer: a conv stack to a 1-row feature map, a two-layer
    bidirectional LSTM over the columns, per-column class log-probabilities (CTC style)."""

    def __init__(self, classes=37, hidden=64):
        super().__init__()

        def conv(i, o, pool):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                    nn.MaxPool2d(pool)]

        self.cnn = nn.Sequential(*conv(3, 32, 2), *conv(32, 64, 2), *conv(64, 96, (2, 1)), *conv(96, 128, (4, 1)))
        self.rnn = nn.LSTM(128, hidden, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(2, 0, 1)  # [W, N, C]
        y, _ = self.rnn(f)
        return torch.log_softmax(self.fc(y), dim=2)


class SegmentationOut(nn.Module):
    """torchvision's segmentation models return a dict: keep the `out` map."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


# name, builder, input shape (N, C, H, W), about, source, dynamic H/W
ZOO = [
    ("resnet18", lambda: tvm.resnet18(), (1, 3, 224, 224), "ResNet-18 classifier", "torchvision"),
    ("mobilenet_v2", lambda: tvm.mobilenet_v2(), (1, 3, 224, 224), "MobileNetV2 classifier", "torchvision"),
    ("mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(), (1, 3, 224, 224), "MobileNetV3-Small classifier", "torchvision"),
    ("efficientnet_b0", lambda: tvm.efficientnet_b0(), (1, 3, 224, 224), "EfficientNet-B0 classifier (SiLU, squeeze-excitation)", "torchvision"),
    ("regnet_y_400mf", lambda: tvm.regnet_y_400mf(), (1, 3, 224, 224), "RegNetY-400MF classifier (grouped convolutions, SE)", "torchvision"),
    ("shufflenet_v2", lambda: tvm.shufflenet_v2_x1_0(), (1, 3, 224, 224), "ShuffleNetV2 x1.0 (channel shuffle: Reshape/Transpose, Split)", "torchvision"),
    ("squeezenet1_1", lambda: tvm.squeezenet1_1(), (1, 3, 224, 224), "SqueezeNet 1.1 (fire modules, Concat)", "torchvision"),
    ("densenet121", lambda: tvm.densenet121(), (1, 3, 224, 224), "DenseNet-121 (dense Concat blocks)", "torchvision"),
    ("convnext_tiny", lambda: tvm.convnext_tiny(), (1, 3, 224, 224), "ConvNeXt-Tiny (LayerNorm over channels, GELU, Transpose)", "torchvision"),
    ("ghostnet", lambda: timm.create_model("ghostnet_100"), (1, 3, 224, 224), "GhostNet 1.0 (ghost modules, Slice, HardSigmoid SE)", "timm"),
    ("deit_tiny", lambda: timm.create_model("deit_tiny_patch16_224"), (1, 3, 224, 224), "DeiT-Tiny vision transformer (attention MatMuls, LayerNorm, GELU)", "timm"),
    ("mobileone_s0", lambda: timm.create_model("mobileone_s0"), (1, 3, 224, 224), "MobileOne-S0 in its training form (four parallel 1x1/3x3 branches, a scale branch and a BatchNorm identity per block)", "timm"),
    ("fastvit_t8", lambda: timm.create_model("fastvit_t8"), (1, 3, 224, 224), "FastViT-T8 in its training form (RepMixer x + g*(BN + convs - BN), grouped 7x7 + 3x3 branches, GELU MLPs)", "timm"),
    ("deeplabv3_mobilenet", lambda: SegmentationOut(tvs.deeplabv3_mobilenet_v3_large(weights_backbone=None, aux_loss=False)), (1, 3, 256, 256), "DeepLabV3 with a MobileNetV3-Large backbone (dilated ASPP)", "torchvision"),
    ("deeplabv3_mobilenet_dyn", lambda: SegmentationOut(tvs.deeplabv3_mobilenet_v3_large(weights_backbone=None, aux_loss=False)), (1, 3, 256, 256), "DeepLabV3-MobileNetV3 exported with dynamic H/W (Shape/Gather chains feed Resize)", "torchvision", True),
    ("lraspp_mobilenet", lambda: SegmentationOut(tvs.lraspp_mobilenet_v3_large(weights_backbone=None)), (1, 3, 256, 256), "LR-ASPP with a MobileNetV3-Large backbone", "torchvision"),
    ("lraspp_mobilenet_dyn", lambda: SegmentationOut(tvs.lraspp_mobilenet_v3_large(weights_backbone=None)), (1, 3, 256, 256), "LR-ASPP-MobileNetV3 exported with dynamic H/W", "torchvision", True),
    ("unet_small", lambda: UNet(), (1, 3, 128, 128), "UNet-style segmenter (ConvTranspose up-sampling, skip Concats, Softmax)", "edgepack"),
    ("fpn_detector", lambda: NmsDetector(), (1, 3, 256, 256), "FPN detector: MobileNetV3-Small, 3-level FPN, anchor-free head, box decoding, NonMaxSuppression", "edgepack"),
    ("crnn_bilstm", lambda: Crnn(), (1, 3, 32, 128), "CRNN text recognizer: conv stack, 2-layer bidirectional LSTM, log-softmax", "edgepack"),
]


def dynamic_quantize_lstm(out, name, direction, signed, per_column):
    """A com.microsoft DynamicQuantizeLSTM node (what ONNX Runtime's dynamic quantization
    makes of an LSTM): 8-bit weights [dirs, input, 4H], scales and zero points per tensor or
    per column, sequence 5, batch 2, input 6, hidden 4."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.RandomState(7)
    seq, batch, inp, hid = 5, 2, 6, 4
    dirs = 2 if direction == "bidirectional" else 1
    dtype = np.int8 if signed else np.uint8
    # Signed weights in 7 bits, as ONNX Runtime's quantize_dynamic writes them with
    # reduce_range: its u8×s8 kernels on x86 CPUs without VNNI (AVX2) sum pairs of products in
    # 16 bits with saturation (VPMADDUBSW), so full-range int8 weights make ORT itself inexact
    # there (2e-2 against float64 on Zen 3), while this model's reference stays exact.
    lo, hi = (-64, 64) if signed else (0, 255)
    w = rng.randint(lo, hi, (dirs, inp, 4 * hid)).astype(dtype)
    r = rng.randint(lo, hi, (dirs, hid, 4 * hid)).astype(dtype)
    b = (rng.randn(dirs, 8 * hid) * 0.1).astype(np.float32)
    shape = (dirs, 4 * hid) if per_column else (dirs,)
    ws = (rng.rand(*shape) * 0.01 + 0.001).astype(np.float32)
    rs = (rng.rand(*shape) * 0.01 + 0.001).astype(np.float32)
    wz = np.full(shape, 0 if signed else 128, dtype)
    rz = np.full(shape, 0 if signed else 120, dtype)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w, "W"), (r, "R"), (b, "B"), (ws, "ws"), (wz, "wz"), (rs, "rs"), (rz, "rz")]]
    node = helper.make_node("DynamicQuantizeLSTM", ["X", "W", "R", "B", "", "", "", "", "ws", "wz", "rs", "rz"],
                            ["Y", "Y_h", "Y_c"], domain="com.microsoft", hidden_size=hid, direction=direction, name="lstm")
    g = helper.make_graph([node], name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, inp])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ["Y", "Y_h", "Y_c"]], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    onnx.save(m, os.path.join(out, name + ".onnx"))
    print(f"zoo: {name} [{seq}, {batch}, {inp}]", flush=True)
    return {"name": name, "file": name + ".onnx", "shape": [seq, batch, inp], "dynamic_hw": False, "source": "edgepack",
            "about": f"DynamicQuantizeLSTM ({direction}, {'INT8' if signed else 'UINT8'} weights, "
                     f"{'per-column' if per_column else 'per-tensor'} scales), as ONNX Runtime's dynamic quantization writes it"}


def calibrate(model, shape):
    """Sets BatchNorm running statistics from a few random batches (train mode, no grad)."""
    model.train()
    n = 4 if shape[0] == 1 else shape[0]
    with torch.no_grad():
        for k in range(3):
            g = torch.Generator().manual_seed(100 + k)
            model(torch.randn((n,) + tuple(shape[1:]), generator=g))
    model.eval()


def main():
    out = sys.argv[1]
    only = set(sys.argv[2:])
    os.makedirs(out, exist_ok=True)
    entries = []
    for row in ZOO:
        name, build, shape, about, source = row[:5]
        dynamic = len(row) > 5 and row[5]
        if only and name not in only:
            continue
        torch.manual_seed(0)
        model = build()
        calibrate(model, shape)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        path = os.path.join(out, name + ".onnx")
        names = ["boxes", "scores"] if name == "fpn_detector" else ["output"]
        axes = {"input": {2: "height", 3: "width"}} if dynamic else None
        torch.onnx.export(model, (x,), path, opset_version=17, input_names=["input"], output_names=names,
                          dynamic_axes=axes, dynamo=False)
        if name == "fpn_detector":
            NmsDetector.nms_graph(path)
        entries.append({"name": name, "file": name + ".onnx", "shape": list(shape), "about": about,
                        "source": source, "dynamic_hw": bool(dynamic)})
        print(f"zoo: {name} {list(shape)} ({os.path.getsize(path)} bytes)", flush=True)
    if not only:
        entries.append(dynamic_quantize_lstm(out, "dq_lstm_int8", "forward", True, False))
        entries.append(dynamic_quantize_lstm(out, "dq_lstm_uint8_bidir", "bidirectional", False, True))
    with open(os.path.join(out, "zoo.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
                   "opset": 17, "models": entries}, f, indent=1)


main()

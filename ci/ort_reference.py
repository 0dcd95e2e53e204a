"""Inputs and ONNX Runtime outputs for the model parity tests (harness/tests/models.rs).

    ort_reference.py MODELS_DIR OUT_DIR

For each model: a deterministic synthetic input (a light page with dark text-like bars,
normalised the way PP-OCR preprocesses: det mean/std of ImageNet, cls (x - 0.5) / 0.5),
written as OUT_DIR/<model>/input_0.npy, and ORT's outputs (CPU provider, 1 thread) as
output_<k>.npy.
"""
import os, sys

import numpy as np
import onnxruntime as ort

CASES = [
    ("ch_PP-OCRv4_det_infer", (640, 640), "imagenet"),
    ("ch_ppocr_mobile_v2.0_cls_infer", (48, 192), "half"),
]


def page(h, w, seed):
    rng = np.random.RandomState(seed)
    img = np.full((h, w, 3), 235.0) + rng.normal(0, 6, (h, w, 3))
    for _ in range(max(2, h * w // 10000)):
        bh, bw = rng.randint(max(2, h // 40), max(3, h // 12)), rng.randint(w // 12, w // 2)
        y, x = rng.randint(0, h - bh), rng.randint(0, w - bw)
        img[y : y + bh, x : x + bw] = rng.uniform(10, 80)
    return np.clip(img, 0, 255) / 255.0


def main():
    models, out = sys.argv[1], sys.argv[2]
    for name, (h, w), norm in CASES:
        img = page(h, w, seed=h * 1000 + w)
        if norm == "imagenet":
            img = (img - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        else:
            img = (img - 0.5) / 0.5
        x = img.transpose(2, 0, 1)[None].astype(np.float32)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(models, name + ".onnx"), so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input_0.npy"), x)
        for k, o in enumerate(outs):
            np.save(os.path.join(d, f"output_{k}.npy"), o.astype(np.float32))
        print(f"ort reference: {name} input {list(x.shape)} -> " + ", ".join(str(list(o.shape)) for o in outs))


main()

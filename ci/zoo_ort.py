"""ONNX Runtime's outputs for the model zoo (ci/fetch-zoo.sh).

    zoo_ort.py ZOO_DIR OUT_DIR

For each model of ZOO_DIR/zoo.json: a fixed pseudo-random image (uniform in [0, 1), seeded
by the model's name, normalised with ImageNet's mean and std; standard normal values for
sequence models) at the manifest's shape, as
OUT_DIR/<name>/input_0.npy, and ORT's outputs (CPU provider, 1 thread) as output_<k>.npy
(float32; integer outputs such as NMS indices are exact in it).
"""
import json
import os
import sys
import zlib

import numpy as np
import onnxruntime as ort


def main():
    zoo, out = sys.argv[1], sys.argv[2]
    manifest = json.load(open(os.path.join(zoo, "zoo.json")))
    for m in manifest["models"]:
        rng = np.random.RandomState(zlib.crc32(m["name"].encode()))
        if len(m["shape"]) == 4:
            n, c, h, w = m["shape"]
            img = rng.uniform(0, 1, (n, h, w, c))
            img = (img - [0.485, 0.456, 0.406][:c]) / [0.229, 0.224, 0.225][:c]
            x = img.transpose(0, 3, 1, 2).astype(np.float32)
        else:
            # Sequence models: standard normal values.
            x = rng.randn(*m["shape"]).astype(np.float32)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(zoo, m["file"]), so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        d = os.path.join(out, m["name"])
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input_0.npy"), x)
        for k, o in enumerate(outs):
            np.save(os.path.join(d, f"output_{k}.npy"), o.astype(np.float32))
        print(f"zoo ort: {m['name']} {list(x.shape)} -> " + ", ".join(str(list(o.shape)) for o in outs), flush=True)


main()

"""ONNX Runtime's CUDA execution provider on the real models, for the GPU check (issue 30):
median wall time of 20 runs after 3 warm-ups, batch 1 and 8, host input to host output (what
edgepack's cuda-bench --models measures). Prints one Markdown row per case, or says why the
provider is not there (the GPU machine's image decides; nothing is installed here).

usage: python3 ci/ort_cuda_bench.py CACHE_DIR
"""
import glob
import os
import statistics
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"ort-cuda: not run: {e}")
    sys.exit(0)

providers = ort.get_available_providers()
print(f"onnxruntime {ort.__version__}, providers {providers}")
if "CUDAExecutionProvider" not in providers:
    print("ort-cuda: not run: this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu is not installed)")
    sys.exit(0)

cache = sys.argv[1]
models = sorted(glob.glob(os.path.join(cache, "models", "*", "*.onnx")))
print("| model | batch | ORT CUDA ms (median of 20) |\n|---|---:|---:|")
for path in models:
    sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider"])
    inp = sess.get_inputs()[0]
    name = os.path.basename(path)
    fixed = {"ch_PP-OCRv4_det_infer.onnx": [3, 640, 640], "ch_ppocr_mobile_v2.0_cls_infer.onnx": [3, 48, 192]}
    if name not in fixed:
        continue
    for batch in (1, 8):
        x = np.random.default_rng(0).standard_normal([batch] + fixed[name]).astype(np.float32)
        try:
            for _ in range(3):
                sess.run(None, {inp.name: x})
            times = []
            for _ in range(20):
                t = time.perf_counter()
                sess.run(None, {inp.name: x})
                times.append((time.perf_counter() - t) * 1e3)
            print(f"| {name} | {batch} | {statistics.median(times):.3f} |")
        except Exception as e:  # a model without a batch axis
            print(f"| {name} | {batch} | not run: {e} |")

"""ONNX Runtime timings of the single-node convolution models that `conv-table --export`
writes: median seconds per model on one intra-op thread (sequential execution, all graph
optimisations on), written as {label: seconds} JSON. Run by ci/conv-bench.sh."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def median_secs(run, min_time=0.3):
    run()
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main(model_dir, out_path):
    layers = json.load(open(f"{model_dir}/layers.json"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    result = {}
    for layer in layers:
        sess = ort.InferenceSession(f"{model_dir}/{layer['file']}", opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).uniform(-1, 1, layer["input"]).astype(np.float32)
        result[layer["label"]] = median_secs(lambda: sess.run(None, {"X": x}))
        print(f"ORT {ort.__version__}: {layer['label']}: {result[layer['label']] * 1e3:.3f} ms", flush=True)
    json.dump(result, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""ONNX Runtime (CPU provider) on a whole model: outputs for given inputs, and latency.

    ort_model.py MODEL --input x.npy [--input ...] [--outputs DIR] [--threads N]
                 [--runs N] [--json FILE] [--serve]

Writes each output as DIR/<index>.npy; with --runs times that many runs after one warm-up
and prints median/min latency in ms (JSON with --json). With --serve, prints `ready` after
one warm-up run and then, for each line N read from standard input, runs once untimed and N
times timed, and prints the seconds the N runs took (bench-check's interleaved peer; it exits
at end of input). Before it prints, it waits for its intra-op threads to stop spinning: ORT's
helpers spin for about 40 ms after a run (measured on Zen 4), and a helper spinning through
the other engine's timed block takes a core from it (ResNet-18 on two threads read 180 instead
of 288 GFLOP/s beside it). intra_op_num_threads = N, inter_op = 1, sequential execution, all
graph optimisations on (ORT's default; spinning stays on while ORT itself is timed).
"""
import argparse, json, os, sys, time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--input", action="append", required=True)
p.add_argument("--outputs")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--runs", type=int, default=0)
p.add_argument("--json")
p.add_argument("--serve", action="store_true")
a = p.parse_args()

so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
feeds = {i.name: np.load(f).astype(np.float32) for i, f in zip(sess.get_inputs(), a.input)}
outs = sess.run(None, feeds)


def settle():
    """Returns once this process has used under 1 ms of CPU in a 10 ms window (at most 1 s)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        used = time.process_time()
        time.sleep(0.01)
        if time.process_time() - used < 0.001:
            return


if a.serve:
    settle()
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        sess.run(None, feeds)
        t = time.perf_counter()
        for _ in range(n):
            sess.run(None, feeds)
        seconds = time.perf_counter() - t
        settle()
        print(f"{seconds:.9f}", flush=True)
    sys.exit(0)
if a.outputs:
    os.makedirs(a.outputs, exist_ok=True)
    for k, o in enumerate(outs):
        np.save(os.path.join(a.outputs, f"{k}.npy"), o.astype(np.float32))
result = {"onnxruntime": ort.__version__, "threads": a.threads}
if a.runs:
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)

    result.update(median_ms=sorted(times)[len(times) // 2], min_ms=min(times), runs=len(times), times_ms=times)
print(json.dumps(result))
if a.json:
    with open(a.json, "w") as f:
        json.dump(result, f)

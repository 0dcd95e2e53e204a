#!/usr/bin/env python3
"""Where a model's time goes in edgepack against ONNX Runtime, block by block.

Runs the release CLI's `edgepack bench --breakdown --top 100000` and ORT 1.32 with its profiler
on the same model, input shape and thread count, groups both engines' per-node times by the
first DEPTH-1 components of the node name (`/features/features.2/...` → `features/features.2`
at depth 3), and prints the blocks by how much slower edgepack is there. ORT's fused and
layout-reorder nodes get its own names, so they land in their own rows.

    .cache/venv-ort-1.32.0/bin/python ci/zoo_block_compare.py MODEL.onnx 1x3x224x224 THREADS [DEPTH]
"""
import collections, json, os, re, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
path, shape, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 4
runs = 40


def block(name):
    return '/'.join(name.strip('/').split('/')[:depth - 1])


opts = ort.SessionOptions()
opts.intra_op_num_threads, opts.inter_op_num_threads, opts.enable_profiling = threads, 1, True
# ORT writes its profile where the prefix says; keep it out of the working tree.
tmp = tempfile.TemporaryDirectory()
opts.profile_file_prefix = os.path.join(tmp.name, 'ort')
session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
x = np.random.rand(*[int(v) for v in shape.split('x')]).astype(np.float32)
for _ in range(runs):
    session.run(None, {session.get_inputs()[0].name: x})
ort_ms = collections.defaultdict(float)
for e in json.load(open(session.end_profiling())):
    if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
        ort_ms[block(e['name'][:-len('_kernel_time')])] += e['dur'] / runs / 1000
out = subprocess.run([root + '/target/release/edgepack', 'bench', path, '--shape', shape, '--runs', str(runs),
                      '--threads', str(threads), '--breakdown', '--top', '100000'],
                     capture_output=True, text=True, check=True).stdout
ep_ms = collections.defaultdict(float)
for line in out.splitlines():
    m = re.match(r'\s+([0-9.]+) ms\s+\S+\s+(\S+)\s+->', line)
    if m:
        ep_ms[block(m.group(2))] += float(m.group(1))
print(f"{'block':50s} {'edgepack':>9s} {'ORT':>9s} {'diff':>8s}")
for k in sorted(set(ort_ms) | set(ep_ms), key=lambda k: ort_ms.get(k, 0) - ep_ms.get(k, 0)):
    e, o = ep_ms.get(k, 0), ort_ms.get(k, 0)
    print(f"{k[:50]:50s} {e:9.3f} {o:9.3f} {e - o:+8.3f}")
print(f"{'total (ms per run)':50s} {sum(ep_ms.values()):9.3f} {sum(ort_ms.values()):9.3f}")

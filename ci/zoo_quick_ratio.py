#!/usr/bin/env python3
"""Quick edgepack / ONNX Runtime latency ratios over the zoo without building `model-bench`.

Per model and thread count, interleaved: `edgepack bench` (the release CLI, median of RUNS),
ORT 1.32 through its Python API (median of RUNS), ROUNDS times each (default 2), one after the
other; the smallest median of each engine is kept (on a shared host, more rounds let both
engines miss the same stalls). Needs `cargo build --release -p edgepack-cli`, ci/fetch-models.sh and
ci/fetch-zoo.sh. `model-bench` (benches/) remains the full tool (tract too, several rounds).

    .cache/venv-ort-1.32.0/bin/python ci/zoo_quick_ratio.py [MODEL,...] [RUNS] [ROUNDS]
"""
import json, os, subprocess, sys, time, re, math, numpy as np, onnxruntime as ort
root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))); E=root+'/target/release/edgepack'
z=json.load(open(root+'/.cache/zoo-v1/zoo.json'))
models=[(m['name'], root+'/.cache/zoo-v1/'+m['file'], m['shape']) for m in z['models'] if not m['name'].startswith('dq_')]
models.insert(0,('ch_ppocr_mobile_v2.0_cls_infer', root+'/.cache/models/rapidocr-1.4.4/ch_ppocr_mobile_v2.0_cls_infer.onnx',[1,3,48,192]))
models.insert(0,('ch_PP-OCRv4_det_infer', root+'/.cache/models/rapidocr-1.4.4/ch_PP-OCRv4_det_infer.onnx',[1,3,640,640]))
if len(sys.argv)>1 and sys.argv[1]: models=[m for m in models if m[0] in sys.argv[1].split(',')]
runs=int(sys.argv[2]) if len(sys.argv)>2 else 15
rounds=int(sys.argv[3]) if len(sys.argv)>3 else 2
def ep(path, shape, t):
    out=subprocess.run([E,'bench',path,'--shape','x'.join(map(str,shape)),'--runs',str(runs),'--threads',str(t)],capture_output=True,text=True).stdout
    return float(re.search(r'median ([0-9.]+) ms',out).group(1))
def ox(path, shape, t):
    o=ort.SessionOptions(); o.intra_op_num_threads=t; o.inter_op_num_threads=1
    s=ort.InferenceSession(path,o,providers=['CPUExecutionProvider'])
    x=np.random.rand(*shape).astype(np.float32); feed={s.get_inputs()[0].name:x}
    for _ in range(3): s.run(None,feed)
    ts=[]
    for _ in range(runs):
        a=time.perf_counter(); s.run(None,feed); ts.append(time.perf_counter()-a)
    return float(np.median(ts))*1e3
rows=[]; logs={1:[],2:[]}
for name,path,shape in models:
    for t in (1,2):
        es,os_=[],[]
        for _ in range(rounds):
            es.append(ep(path,shape,t)); os_.append(ox(path,shape,t))
        e,o=min(es),min(os_)
        r=e/o; logs[t].append(math.log(r)); rows.append((name,'×'.join(map(str,shape[1:])) if shape[0]==1 else shape,t,e,o,r))
        print(f'| {name} | {rows[-1][1]} | {t} | {e:.2f} | {o:.2f} | {r:.2f} |', flush=True)
for t in (1,2):
    print(f'geomean t{t}: {math.exp(sum(logs[t])/len(logs[t])):.2f}; above 1.10: {sum(1 for x in logs[t] if x>math.log(1.10))} of {len(logs[t])}')
# Two-thread scaling (2T / 1T latency), ours and ORT's, where ORT's is within the 0.62.
ms={(r[0],r[2]):r for r in rows}
misses=[f'{n} {ms[n,2][3]/ms[n,1][3]:.2f} (ORT {ms[n,2][4]/ms[n,1][4]:.2f})' for n,_,_ in models
        if ms[n,2][4]/ms[n,1][4]<=0.62 and ms[n,2][3]/ms[n,1][3]>0.62]
print('2T/1T above 0.62 where ORT is within it:', ', '.join(misses) or 'none')

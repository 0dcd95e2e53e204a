"""A client of the edge agent that nobody here wrote by hand: its stubs are generated from
agent/proto/edge-agent.proto by grpcio-tools (as a factory application would), and it drives a
running agent over its Unix socket: ListModels, DescribeModel, StartModel, DetectAnomalies with
byte data and with POSIX shared memory (image in, mask out), concurrent calls from threads, the
spec's status codes, StopModel.

    python ci/agent_client.py STUBS_DIR SOCKET MODEL_COMPONENT

Prints one line per check and a libtest-style total (`test result: ok. N passed; ...`) that
ci/test.sh counts; exits 1 on the first failed check.
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import shared_memory

stubs, socket, model = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, stubs)
import grpc  # noqa: E402
import edge_agent_pb2 as pb  # noqa: E402
import edge_agent_pb2_grpc as pb_grpc  # noqa: E402

passed = 0


def check(what, ok, detail=""):
    global passed
    if not ok:
        print(f"test {what} ... FAILED {detail}")
        print("test result: FAILED. %d passed; 1 failed; 0 ignored" % passed)
        sys.exit(1)
    passed += 1
    print(f"test {what} ... ok")


def code_of(call, *args):
    try:
        call(*args)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def image(w, h, seed):
    # A textured background with darker strokes; deterministic.
    out = bytearray(w * h * 3)
    for y in range(h):
        for x in range(w):
            v = 40 if (y // 8) % 6 == 2 and (x // 5) % 7 < 5 else 180 + (x * 7 + y * 13 + seed) % 64
            i = (y * w + x) * 3
            out[i:i + 3] = bytes((v, v, min(255, v + 10)))
    return bytes(out)


options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
channel = grpc.insecure_channel(f"unix://{socket}", options=options)
agent = pb_grpc.EdgeAgentStub(channel)

models = agent.ListModels(pb.ListModelsRequest()).models
names = [m.model_component for m in models]
check("ListModels lists the component", model in names, names)
d = agent.DescribeModel(pb.DescribeModelRequest(model_component=model)).model_description
print("   DescribeModel:", pb.ModelStatus.Name(d.status), "-", d.status_message)
check("DescribeModel quotes the device parity report", "device parity PASSED" in d.status_message, d.status_message)
code, _ = code_of(agent.DescribeModel, pb.DescribeModelRequest(model_component="no.such.Model"))
check("DescribeModel of an unknown component is NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, code)

w, h = 320, 240
px = image(w, h, 1)
req = pb.DetectAnomaliesRequest(model_component=model, bitmap=pb.Bitmap(width=w, height=h, byte_data=px))
if d.status != pb.RUNNING:
    code, _ = code_of(agent.DetectAnomalies, req)
    check("DetectAnomalies before StartModel is FAILED_PRECONDITION", code == grpc.StatusCode.FAILED_PRECONDITION, code)
    r = agent.StartModel(pb.StartModelRequest(model_component=model))
    check("StartModel answers STARTING", r.status == pb.STARTING, r.status)
deadline = time.time() + 60
while True:
    d = agent.DescribeModel(pb.DescribeModelRequest(model_component=model)).model_description
    if d.status != pb.STARTING or time.time() > deadline:
        break
    time.sleep(0.05)
check("the model becomes RUNNING", d.status == pb.RUNNING, d.status_message)
code, _ = code_of(agent.StartModel, pb.StartModelRequest(model_component=model))
check("StartModel of a RUNNING model is FAILED_PRECONDITION", code == grpc.StatusCode.FAILED_PRECONDITION, code)

r = agent.DetectAnomalies(req).detect_anomaly_result
mask = r.anomaly_mask
check("byte data: the mask has the image's size", (mask.width, mask.height) == (w, h) and len(mask.byte_data) == w * h * 3)
check("byte data: confidence in [0, 1]", 0.0 <= r.confidence <= 1.0, r.confidence)
areas = {a.name: (a.pixel_anomaly.total_percentage_area, a.pixel_anomaly.hex_color) for a in r.anomalies}
check("byte data: every class has an area and a color", len(areas) >= 1 and all(0 <= v[0] <= 100 and v[1].startswith("#") for v in areas.values()), areas)
colors = {bytes(mask.byte_data[i:i + 3]) for i in range(0, len(mask.byte_data), 3)}
claimed = sum(v[0] for v in areas.values())
check("byte data: is_anomalous agrees with the areas", r.is_anomalous == (claimed > 0), (r.is_anomalous, areas))
print(f"   is_anomalous={r.is_anomalous} confidence={r.confidence:.4f} anomalies={areas} mask colors={len(colors)}")

# Shared memory: the image at an offset in one object, the mask written into another.
src = shared_memory.SharedMemory(create=True, size=len(px) + 64)
dst = shared_memory.SharedMemory(create=True, size=len(px) + 16)
try:
    src.buf[64:64 + len(px)] = px
    dst.buf[:16] = bytes(range(16))
    shm_req = pb.DetectAnomaliesRequest(
        model_component=model,
        bitmap=pb.Bitmap(width=w, height=h, shared_memory_handle=pb.SharedMemoryHandle(name=src.name, size=len(px), offset=64)),
        anomaly_mask_params=pb.AnomalyMaskParams(shared_memory_handle=pb.SharedMemoryHandle(name=dst.name, size=len(px), offset=16)),
    )
    s = agent.DetectAnomalies(shm_req).detect_anomaly_result
    check("shared memory: same answer as byte data", (s.is_anomalous, s.confidence) == (r.is_anomalous, r.confidence))
    check("shared memory: the answer names the caller's mask buffer", s.anomaly_mask.shared_memory_handle.name == dst.name)
    check("shared memory: the mask written at the offset equals the byte-data mask", bytes(dst.buf[16:16 + len(px)]) == mask.byte_data)
    check("shared memory: bytes before the offset untouched", bytes(dst.buf[:16]) == bytes(range(16)))
    bad = pb.DetectAnomaliesRequest(
        model_component=model,
        bitmap=pb.Bitmap(width=w, height=h, shared_memory_handle=pb.SharedMemoryHandle(name=src.name, size=len(px), offset=65)),
    )
    code, msg = code_of(agent.DetectAnomalies, bad)
    check("shared memory: a range past the object is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT and "past the end" in msg, msg)
finally:
    for m in (src, dst):
        m.close()
        m.unlink()

code, msg = code_of(agent.DetectAnomalies, pb.DetectAnomaliesRequest(model_component=model, bitmap=pb.Bitmap(width=w, height=h, byte_data=px[:-1])))
check("a wrong byte count is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, msg)
code, msg = code_of(agent.DetectAnomalies, pb.DetectAnomaliesRequest(model_component=model, bitmap=pb.Bitmap(width=5000, height=5000, byte_data=b"x")))
check("a 5000x5000 bitmap is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, msg)
code, msg = code_of(agent.DetectAnomalies, pb.DetectAnomaliesRequest(model_component=model, bitmap=pb.Bitmap(width=64, height=64, shared_memory_handle=pb.SharedMemoryHandle(name="/no-such-object", size=12288))))
check("an unknown shared memory name is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, msg)
code, _ = code_of(agent.DetectAnomalies, pb.DetectAnomaliesRequest(model_component="no.such.Model", bitmap=pb.Bitmap(width=w, height=h, byte_data=px)))
check("DetectAnomalies of an unknown component is NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, code)

# Concurrent calls: 8 threads, each its own images; every call answered or refused for load.
def worker(seed):
    img = image(w, h, seed)
    stub = pb_grpc.EdgeAgentStub(grpc.insecure_channel(f"unix://{socket}", options=options))
    results = []
    for _ in range(3):
        try:
            out = stub.DetectAnomalies(pb.DetectAnomaliesRequest(model_component=model, bitmap=pb.Bitmap(width=w, height=h, byte_data=img)))
            results.append(("ok", out.detect_anomaly_result.confidence))
        except grpc.RpcError as e:
            results.append((e.code().name, e.details()))
    return seed, results


with ThreadPoolExecutor(8) as pool:
    runs = list(pool.map(worker, range(8)))
answers = [r for _, rs in runs for r in rs]
ok = [r for r in answers if r[0] == "ok"]
refused = [r for r in answers if r[0] == "RESOURCE_EXHAUSTED"]
check("8 concurrent clients: every call answered or refused as RESOURCE_EXHAUSTED", len(ok) + len(refused) == len(answers), answers)
check("8 concurrent clients: most calls answered", len(ok) >= len(answers) // 2, (len(ok), len(refused)))
by_seed = {seed: {c for k, c in rs if k == "ok"} for seed, rs in runs}
check("8 concurrent clients: repeated calls on one image agree", all(len(v) <= 1 for v in by_seed.values()), by_seed)
print(f"   concurrent: {len(ok)} answered, {len(refused)} refused")

r = agent.StopModel(pb.StopModelRequest(model_component=model))
check("StopModel answers STOPPING", r.status == pb.STOPPING, r.status)
deadline = time.time() + 30
while agent.DescribeModel(pb.DescribeModelRequest(model_component=model)).model_description.status != pb.STOPPED:
    check("the model stops within 30 s", time.time() < deadline)
    time.sleep(0.05)
code, _ = code_of(agent.StopModel, pb.StopModelRequest(model_component=model))
check("StopModel of a STOPPED model is FAILED_PRECONDITION", code == grpc.StatusCode.FAILED_PRECONDITION, code)
print("test result: ok. %d passed; 0 failed; 0 ignored; 0 measured; 0 filtered out" % passed)

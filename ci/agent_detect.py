"""The main job's device-side demo: renders a label (dark text on a textured light background,
a 5x7 pixel font scaled up), sends it to a running edge agent with a client generated from
agent/proto/edge-agent.proto, and writes the returned anomaly mask as a PPM image.

    python ci/agent_detect.py STUBS_DIR SOCKET MODEL_COMPONENT WIDTH HEIGHT OUT_DIR
"""
import json
import os
import random
import sys
import time

stubs, socket, model, width, height, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
sys.path.insert(0, stubs)
import grpc  # noqa: E402
import edge_agent_pb2 as pb  # noqa: E402
import edge_agent_pb2_grpc as pb_grpc  # noqa: E402

FONT = {  # 5x7 glyphs, one string per row
    "L": ["10000"] * 6 + ["11111"], "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
    "T": ["11111"] + ["00100"] * 6, "4": ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    "7": ["11111", "00001", "00010", "00100", "01000", "01000", "01000"], "1": ["00100", "01100"] + ["00100"] * 4 + ["01110"],
    "K": ["10001", "10010", "10100", "11000", "10100", "10010", "10001"], " ": ["00000"] * 7,
}


def render(lines, w, h, scale):
    rng = random.Random(4711)
    px = bytearray(w * h * 3)
    for y in range(h):  # a light, grainy, slightly shaded background
        for x in range(w):
            v = 200 + (x + 2 * y) % 24 + rng.randrange(12)
            i = (y * w + x) * 3
            px[i:i + 3] = bytes((min(v, 255), min(v + 4, 255), min(v - 6, 255)))
    for row, text in enumerate(lines):
        y0 = h // 4 + row * 10 * scale
        for k, ch in enumerate(text):
            x0 = w // 10 + k * 6 * scale
            for gy, bits in enumerate(FONT[ch]):
                for gx, bit in enumerate(bits):
                    if bit == "1":
                        for yy in range(y0 + gy * scale, y0 + (gy + 1) * scale):
                            for xx in range(x0 + gx * scale, x0 + (gx + 1) * scale):
                                if 0 <= xx < w and 0 <= yy < h:
                                    i = (yy * w + xx) * 3
                                    px[i:i + 3] = bytes((30, 30, 40))
    return bytes(px)


image = render(["LOT 4711", "OK"], width, height, max(2, width // 100))
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "label.ppm"), "wb") as f:
    f.write(b"P6 %d %d 255\n" % (width, height) + image)
opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
agent = pb_grpc.EdgeAgentStub(grpc.insecure_channel(f"unix://{socket}", options=opts))
if agent.DescribeModel(pb.DescribeModelRequest(model_component=model)).model_description.status != pb.RUNNING:
    agent.StartModel(pb.StartModelRequest(model_component=model))
    while agent.DescribeModel(pb.DescribeModelRequest(model_component=model)).model_description.status == pb.STARTING:
        time.sleep(0.05)
r = agent.DetectAnomalies(pb.DetectAnomaliesRequest(
    model_component=model, bitmap=pb.Bitmap(width=width, height=height, byte_data=image))).detect_anomaly_result
mask_path = os.path.join(out, "mask.ppm")
with open(mask_path, "wb") as f:
    f.write(b"P6 %d %d 255\n" % (r.anomaly_mask.width, r.anomaly_mask.height) + r.anomaly_mask.byte_data)
print(json.dumps({
    "IsAnomalous": r.is_anomalous, "Confidence": round(r.confidence, 4),
    "Anomalies": [{"Name": a.name, "TotalPercentageArea": round(a.pixel_anomaly.total_percentage_area, 3),
                   "HexColor": a.pixel_anomaly.hex_color} for a in r.anomalies],
    "Image": os.path.join(out, "label.ppm"), "Mask": mask_path,
}, indent=2))

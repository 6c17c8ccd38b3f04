"""Independent safetensors check using only json/struct/numpy (the format spec, not our code).

  write  : writes mlp_small.safetensors next to this script (F32, F16, BF16, F64 tensors plus __metadata__),
           read by SafetensorsTests without Python.
  verify FILE : parses FILE (written by the C# engine) per the format and prints every tensor, failing loudly on
           any violation (header length, alignment of nothing assumed, contiguous offsets, dtype sizes).
"""
import json
import os
import struct
import sys

import numpy as np

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def write(path):
    w0 = np.array([[0.5, -1.25, 3.0], [1e-3, -0.0, 65504.0]], dtype=np.float32)
    b0 = np.array([0.1, -0.2], dtype=np.float16)
    bf = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)
    w1 = np.array([[1.0 / 3.0, -2.0]], dtype=np.float64)
    tensors = [("layers.0.weight", "F32", w0.shape, w0.tobytes()), ("layers.0.bias", "F16", b0.shape, b0.astype("<f2").tobytes()),
               ("extra.bf16", "BF16", bf.shape, bf_bits.astype("<u2").tobytes()), ("layers.1.weight", "F64", w1.shape, w1.astype("<f8").tobytes())]
    header, data, off = {"__metadata__": {"format": "pt", "written_by": "mlp_safetensors.py"}}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    os.replace(path + ".tmp", path)


def verify(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header length beyond file"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata values must be strings"
    end = 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, t = e["data_offsets"]
        assert b == end, f"{name}: gap or overlap at {b} (expected {end})"
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        assert t - b == count * SIZES[e["dtype"]], f"{name}: size mismatch"
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(data[b:t], dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(e["shape"])
        else:
            arr = np.frombuffer(data[b:t], dtype={"F32": "<f4", "F64": "<f8", "F16": "<f2"}[e["dtype"]]).reshape(e["shape"])
        print(name, e["dtype"], e["shape"], arr.reshape(-1)[:6].tolist())
        end = t
    assert end == len(data), "trailing bytes"
    print("metadata", meta)
    print("OK", path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["verify"]:
        verify(sys.argv[2])
    else:
        write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_small.safetensors"))
        print("wrote mlp_small.safetensors")

"""PyTorch peer for `./pipeline bench mlp-epoch`: one training epoch of the 784-128-64-10 ReLU MLP on the 60,000
FashionMNIST training images, batch 128, SGD(momentum 0.9, weight decay 5e-4), lr 0.05 with per-step cosine decay,
data already in memory as a normalised float32 tensor. Prints one JSON line with the per-epoch seconds.

usage: torch_mlp_epoch.py --threads N --epochs E [--data DIR]
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = ap.parse_args()
# Same thread count for every pool torch may use, set before torch initialises them.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)

with gzip.open(os.path.join(args.data, "train-images-idx3-ubyte.gz"), "rb") as f:
    raw = f.read()
with gzip.open(os.path.join(args.data, "train-labels-idx1-ubyte.gz"), "rb") as f:
    lab = f.read()
x = torch.from_numpy(((np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0) - 0.2860) / 0.3530)
y = torch.from_numpy(np.frombuffer(lab, np.uint8, offset=8).astype(np.int64))
n, bs = x.shape[0], 128
steps_per_epoch = (n + bs - 1) // bs
total = steps_per_epoch * args.epochs

model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
loss_fn = torch.nn.CrossEntropyLoss()
times, step = [], 0
for epoch in range(args.epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for s in range(0, n, bs):
        idx = perm[s:s + bs]
        for g in opt.param_groups:
            g["lr"] = 0.05 * 0.5 * (1 + math.cos(math.pi * step / total))
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    times.append(time.perf_counter() - t0)
    print(f"torch epoch {epoch + 1}: {times[-1]:.3f} s, last loss {loss.item():.4f}", file=sys.stderr)
print(json.dumps({"epoch_seconds": times, "threads": args.threads, "torch": torch.__version__}))

"""Reference values for MlpReferenceTests: a tiny 6-5-4-3 ReLU MLP with fixed weights and inputs, through PyTorch.

Regenerate with /usr/bin/python3 tests/Engine.Tests/reference/mlp_reference.py (writes mlp_reference.json next to
this script). Everything is float32 in torch; values are written as JSON numbers (the float32 values, exactly).
"""
import json
import math
import os

import torch

widths = [6, 5, 4, 3]
batch = 4
labels = [0, 2, 1, 2]

params = []  # in MlpLayout order: W0 [out,in], b0, W1, b1, ...
for l in range(len(widths) - 1):
    fin, fout = widths[l], widths[l + 1]
    w = torch.tensor([[0.7 * math.sin(1.3 * (o * fin + i) + l) for i in range(fin)] for o in range(fout)], dtype=torch.float32)
    b = torch.tensor([0.2 * math.cos(0.9 * o + l) for o in range(fout)], dtype=torch.float32)
    params += [w.requires_grad_(), b.requires_grad_()]
x = torch.tensor([[math.cos(0.37 * (r * widths[0] + c)) * (1 + r) for c in range(widths[0])] for r in range(batch)], dtype=torch.float32)
y = torch.tensor(labels)


def forward(ps, inp):
    h = inp
    n = len(ps) // 2
    for l in range(n):
        h = h @ ps[2 * l].T + ps[2 * l + 1]
        if l < n - 1:
            h = torch.relu(h)
    return h


def margins_of(z):
    mask = torch.nn.functional.one_hot(y, z.shape[1]).bool()
    others = z.masked_fill(mask, float("-inf"))
    return z.gather(1, y[:, None])[:, 0] - torch.logsumexp(others, dim=1)


logits = forward(params, x)
losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
loss = losses.mean()
margins = margins_of(logits)
grads = torch.autograd.grad(loss, params)
flat_grad = torch.cat([g.reshape(-1) for g in grads])

# Per-example gradient of the margin of example 1, flat.
m1_grad = torch.autograd.grad(margins_of(forward(params, x))[1], params)
flat_m1 = torch.cat([g.reshape(-1) for g in m1_grad])

# JVP of the logits and margins along a fixed direction v (flat, MlpLayout order).
flat_params = torch.cat([p.detach().reshape(-1) for p in params])
v = torch.tensor([math.sin(0.61 * i + 0.3) for i in range(flat_params.numel())], dtype=torch.float32)


def unflatten(flat):
    out, off = [], 0
    for p in params:
        out.append(flat[off:off + p.numel()].reshape(p.shape))
        off += p.numel()
    return out


_, jvp_logits = torch.autograd.functional.jvp(lambda f: forward(unflatten(f), x), flat_params, v)
_, jvp_margins = torch.autograd.functional.jvp(lambda f: margins_of(forward(unflatten(f), x)), flat_params, v)


def flat(t):
    return [float(a) for a in t.detach().reshape(-1).tolist()]


out = {
    "widths": widths,
    "batch": batch,
    "labels": labels,
    "parameters": flat(flat_params),
    "inputs": flat(x),
    "logits": flat(logits),
    "losses": flat(losses),
    "loss": float(loss),
    "margins": flat(margins),
    "gradient": flat(flat_grad),
    "margin_gradient_example": 1,
    "margin_gradient": flat(flat_m1),
    "direction": flat(v),
    "jvp_logits": flat(jvp_logits),
    "jvp_margins": flat(jvp_margins),
    "torch_version": torch.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_reference.json")
with open(path + ".tmp", "w") as f:
    json.dump(out, f, indent=1)
os.replace(path + ".tmp", path)
print("wrote", path)

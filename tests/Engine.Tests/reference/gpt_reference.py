"""Reference values for GptTests: a tiny GPT in PyTorch, same structure and parameter names as Attribution.Engine.Models.Gpt.

Weights are drawn in float32 (seeded), then everything is computed in float64 so the C# float32 results are compared with
accurate numbers. Writes gpt_reference.json next to this script:
  config, params {name: [values]} (float32, C# order), inputs/targets [B*T] (-1 = ignored), logits [B*T*V], loss,
  grads {name: [...]}, direction {name: [...]}, loss_jvp (= grad . direction), logits_jvp (central differences in float64).
Run: /usr/bin/python3 tests/Engine.Tests/reference/gpt_reference.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

V, CTX, C, H, L, B, T = 11, 6, 8, 2, 2, 2, 5
HIDDEN = 4 * C


def names():
    out = [("wte.weight", (V, C)), ("wpe.weight", (CTX, C))]
    for l in range(L):
        p = f"blocks.{l}."
        out += [(p + "ln1.weight", (C,)), (p + "ln1.bias", (C,)),
                (p + "attn.c_attn.weight", (3 * C, C)), (p + "attn.c_attn.bias", (3 * C,)),
                (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
                (p + "ln2.weight", (C,)), (p + "ln2.bias", (C,)),
                (p + "mlp.c_fc.weight", (HIDDEN, C)), (p + "mlp.c_fc.bias", (HIDDEN,)),
                (p + "mlp.c_proj.weight", (C, HIDDEN)), (p + "mlp.c_proj.bias", (C,))]
    out += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return out  # tied head: logits = x @ wte.T


def forward(P, inputs):
    x = P["wte.weight"][inputs] + P["wpe.weight"][:T].unsqueeze(0)
    for l in range(L):
        p = f"blocks.{l}."
        h = F.layer_norm(x, (C,), P[p + "ln1.weight"], P[p + "ln1.bias"], 1e-5)
        qkv = F.linear(h, P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"])
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        s = s.masked_fill(~mask, float("-inf"))
        a = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(a, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), P[p + "ln2.weight"], P[p + "ln2.bias"], 1e-5)
        h = F.gelu(F.linear(h, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(h, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], 1e-5)
    return F.linear(x, P["wte.weight"])


def main():
    g = torch.Generator().manual_seed(1234)
    params32 = {}
    for name, shape in names():
        if name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif ".ln" in name or name.startswith("ln_f"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.3 * torch.randn(shape, generator=g)
        params32[name] = t.float()
    inputs = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[1, 2] = -1
    direction32 = {n: torch.randn(s, generator=g).float() for n, s in names()}

    P = {n: t.double().requires_grad_(True) for n, t in params32.items()}
    logits = forward(P, inputs)
    loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    loss_jvp = sum((P[n].grad * direction32[n].double()).sum() for n in P).item()

    eps = 1e-6
    with torch.no_grad():
        plus = forward({n: P[n] + eps * direction32[n].double() for n in P}, inputs)
        minus = forward({n: P[n] - eps * direction32[n].double() for n in P}, inputs)
    logits_jvp = (plus - minus) / (2 * eps)

    flat = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
    out = {
        "config": {"vocab": V, "context": CTX, "d_model": C, "heads": H, "layers": L, "batch": B, "seq": T, "tied": True},
        "order": [n for n, _ in names()],
        "params": {n: flat(t) for n, t in params32.items()},
        "inputs": inputs.reshape(-1).tolist(),
        "targets": targets.reshape(-1).tolist(),
        "logits": flat(logits),
        "loss": loss.item(),
        "grads": {n: flat(P[n].grad) for n in P},
        "direction": {n: flat(t) for n, t in direction32.items()},
        "loss_jvp": loss_jvp,
        "logits_jvp": flat(logits_jvp),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt_reference.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {path}: loss {loss.item():.6f}, loss_jvp {loss_jvp:.6f}")


if __name__ == "__main__":
    main()

"""Reference files for GptTests, written by the PyTorch GPT-2 of bench/peers/gpt2_torch.py (Hugging Face layout).

A tiny GPT-2 (vocab 11, 6 positions, width 8, 2 heads, 2 layers, tied head) with seeded float32 weights is saved as:
  gpt2_tiny_config.json        its Hugging Face config.json
  gpt2_tiny.safetensors        F32, names with 'transformer.', the attn.bias / attn.masked_bias buffers, no lm_head
                               (what save_pretrained writes)
  gpt2_tiny_f16.safetensors    F16, the same names without buffers
  gpt2_tiny_bf16.safetensors   BF16, names without the 'transformer.' prefix plus the tied lm_head.weight
  gpt2_tiny_direction.safetensors  a random parameter direction (F32, HF layout) for the forward-mode checks
and gpt_reference.json holds, computed in float64 from exactly the stored (rounded) weights:
  inputs/targets [B*T] (-1 = ignored), logits [B*T*V] of each file, loss, grads {HF name: [...] in HF orientation},
  loss_jvp (= grad . direction), logits_jvp (central differences).
Run: /usr/bin/python3 tests/Engine.Tests/reference/gpt_reference.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "bench", "peers"))
import gpt2_torch as g2  # noqa: E402

CFG = {"model_type": "gpt2", "vocab_size": 11, "n_positions": 6, "n_embd": 8, "n_head": 2, "n_layer": 2, "n_inner": None,
       "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
B, T = 2, 5


def params(model):
    return [(n, p) for n, p in model.named_parameters()]  # lm_head.weight is wte (tied): named once


def main():
    gen = torch.Generator().manual_seed(1234)
    model = g2.GPT2LMHeadModel(CFG)
    with torch.no_grad():
        for name, p in params(model):
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    inputs = torch.randint(0, CFG["vocab_size"], (B, T), generator=gen)
    targets = torch.randint(0, CFG["vocab_size"], (B, T), generator=gen)
    targets[1, 2] = -1
    direction = {n: torch.randn(p.shape, generator=gen) for n, p in params(model)}

    sd = model.state_dict()
    names = [n for n in sd if n != "lm_head.weight"]
    meta = {"format": "pt", "written_by": "gpt_reference.py"}
    g2.write_safetensors(os.path.join(HERE, "gpt2_tiny.safetensors"), [(n, sd[n]) for n in names], meta)
    weights = [n for n, _ in params(model)]
    g2.write_safetensors(os.path.join(HERE, "gpt2_tiny_f16.safetensors"), [(n, sd[n].half()) for n in weights], meta)
    g2.write_safetensors(os.path.join(HERE, "gpt2_tiny_bf16.safetensors"),
                         [(n[len("transformer."):] if n.startswith("transformer.") else n, sd[n].bfloat16()) for n in weights]
                         + [("lm_head.weight", sd["lm_head.weight"].bfloat16())], meta)
    g2.write_safetensors(os.path.join(HERE, "gpt2_tiny_direction.safetensors"), [(n, direction[n]) for n in weights], meta)
    with open(os.path.join(HERE, "gpt2_tiny_config.json"), "w") as f:
        json.dump(CFG, f, indent=2)

    def logits_of(dtype):
        m = g2.GPT2LMHeadModel(CFG).double()
        with torch.no_grad():
            for n, p in params(m):
                p.copy_(dict(params(model))[n].detach().to(dtype).double())
        return m

    m64 = logits_of(torch.float32)
    logits = m64(inputs)
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    grads = {n: p.grad for n, p in params(m64)}
    loss_jvp = sum((grads[n] * direction[n].double()).sum() for n in grads).item()

    eps = 1e-6
    with torch.no_grad():
        base = {n: p.detach().clone() for n, p in params(m64)}
        for n, p in params(m64):
            p.copy_(base[n] + eps * direction[n].double())
        plus = m64(inputs)
        for n, p in params(m64):
            p.copy_(base[n] - eps * direction[n].double())
        minus = m64(inputs)
    logits_jvp = (plus - minus) / (2 * eps)

    with torch.no_grad():
        logits_f16 = logits_of(torch.float16)(inputs)
        logits_bf16 = logits_of(torch.bfloat16)(inputs)

    flat = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
    out = {
        "batch": B, "seq": T,
        "inputs": inputs.reshape(-1).tolist(),
        "targets": targets.reshape(-1).tolist(),
        "logits": flat(logits),
        "logits_f16": flat(logits_f16),
        "logits_bf16": flat(logits_bf16),
        "loss": loss.item(),
        "grads": {n: flat(g) for n, g in grads.items()},
        "loss_jvp": loss_jvp,
        "logits_jvp": flat(logits_jvp),
    }
    path = os.path.join(HERE, "gpt_reference.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {path}: loss {loss.item():.6f}, loss_jvp {loss_jvp:.6f}")


if __name__ == "__main__":
    main()

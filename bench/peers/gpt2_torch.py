"""GPT-2 in plain PyTorch, in the Hugging Face layout: the PyTorch peer of Attribution.Engine.Models.Gpt.

The module tree and state-dict names are those of `transformers`' GPT2LMHeadModel (transformer.wte / wpe / h.{i}.ln_1 /
attn.c_attn / attn.c_proj / ln_2 / mlp.c_fc / mlp.c_proj / ln_f, lm_head tied to wte) with Conv1D weights stored
[in, out]; GELU is the tanh approximation ("gelu_new"), LayerNorm epsilon comes from config.json (1e-5 for GPT-2),
attention scores are scaled by 1/sqrt(head size) under a causal mask. `transformers` itself is not needed (it is not
installed here): this file follows its layout so the same safetensors files open in both. Safetensors is read and
written with json/struct/numpy from the format spec (F32, F16, BF16, F64; integer and BOOL buffers are skipped).

usage:
  gpt2_torch.py logits DIR --tokens 1,2,3 [--expect FILE.json]
      loads DIR/config.json + DIR/model.safetensors, prints the logits of one sequence as JSON; with --expect compares
      them with {"tokens": [...], "logits": [...]} written by `pipeline bench gpt` and fails above 1e-4.
  gpt2_torch.py serve --threads N --config demo|gpt2-small --batch B --seq T --mode train|forward
      times training steps (AdamW, as GptTrainer) or forward passes in one persistent process (what `pipeline bench gpt`
      uses, so both sides are warm and measured in alternating windows): builds the model, prints {"ready": ...}, then per
      stdin line "run R" times R repetitions and prints one JSON line {"seconds": [...], "cpu_seconds": [...]} (per-rep
      wall-clock and process CPU seconds); "quit" or end of input exits.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: y = x @ W + b with W [in, out]."""

    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, ctx = cfg["n_embd"], cfg["n_positions"]
        self.heads = cfg["n_head"]
        self.c_attn = Conv1D(c, 3 * c)
        self.c_proj = Conv1D(c, c)
        # The causal-mask buffers older transformers versions keep in the state dict (readers must skip them).
        self.register_buffer("bias", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)).view(1, 1, ctx, ctx))
        self.register_buffer("masked_bias", torch.tensor(-1e4))

    def forward(self, x):
        b, t, c = x.shape
        hd = c // self.heads
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~self.bias[:, :, :t, :t], torch.finfo(s.dtype).min)
        a = F.softmax(s, dim=-1) @ v
        return self.c_proj(a.transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg["n_embd"]
        inner = cfg.get("n_inner") or 4 * c
        self.c_fc = Conv1D(c, inner)
        self.c_proj = Conv1D(inner, c)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, eps = cfg["n_embd"], cfg.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(c, eps=eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(c, eps=eps)
        self.mlp = Mlp(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_positions"], cfg["n_embd"])
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg.get("layer_norm_epsilon", 1e-5))

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg["n_embd"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings", True):
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids):
        return self.lm_head(self.transformer(ids))

    def init_gpt2(self, generator):
        """GPT-2's initialisation: N(0, 0.02) weights, residual projections / sqrt(2 n_layer), zero biases, unit norms."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 1:
                    p.copy_(torch.ones_like(p) if ".ln_" in name or "ln_f" in name else torch.zeros_like(p))
                else:
                    std = 0.02 / math.sqrt(2 * self.config["n_layer"]) if name.endswith("c_proj.weight") else 0.02
                    p.copy_(torch.randn(p.shape, generator=generator) * std)


# ---- safetensors from the format spec -------------------------------------------------------------------------------
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2,
          "BOOL": 1, "U8": 1, "I8": 1}


def read_safetensors(path):
    """{name: float32 tensor} for the float tensors of the file; integer and BOOL buffers are skipped."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        b, t = e["data_offsets"]
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        assert t - b == count * _SIZES[e["dtype"]], f"{name}: size mismatch"
        buf = data[b:t]
        if e["dtype"] == "F32":
            arr = np.frombuffer(buf, "<f4").astype(np.float32)
        elif e["dtype"] == "F16":
            arr = np.frombuffer(buf, "<f2").astype(np.float32)
        elif e["dtype"] == "F64":
            arr = np.frombuffer(buf, "<f8").astype(np.float32)
        elif e["dtype"] == "BF16":
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            continue
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).copy())
    return out


def write_safetensors(path, tensors, metadata=None):
    """tensors: [(name, torch tensor)] written in order with the tensor's dtype (float32/16, bfloat16, float64, bool)."""
    codes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.bool: "BOOL"}
    header, chunks, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors:
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        elif t.dtype == torch.bool:
            raw = t.numpy().astype(np.uint8).tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
    os.replace(path + ".tmp", path)


def load_pretrained(directory):
    """GPT2LMHeadModel from DIR/config.json + DIR/model.safetensors, strict like from_pretrained: every parameter present,
    names with or without 'transformer.', mask buffers ignored, a tied lm_head.weight accepted."""
    cfg = json.load(open(os.path.join(directory, "config.json")))
    cfg.setdefault("n_positions", cfg.get("n_ctx"))
    model = GPT2LMHeadModel(cfg)
    sd = read_safetensors(os.path.join(directory, "model.safetensors"))
    sd = {("transformer." + k if not k.startswith(("transformer.", "lm_head.")) else k): v for k, v in sd.items()}
    expected = {k for k in model.state_dict() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    if cfg.get("tie_word_embeddings", True):
        expected.discard("lm_head.weight")
        sd.pop("lm_head.weight", None)
    missing, extra = expected - sd.keys(), sd.keys() - expected
    if missing or extra:
        raise SystemExit(f"{directory}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    model.load_state_dict(sd, strict=False)
    return model.eval()


# ---- commands ---------------------------------------------------------------------------------------------------------
def cmd_logits(args):
    model = load_pretrained(args.dir)
    if args.expect:
        ref = json.load(open(args.expect))
        tokens = ref["tokens"]
    else:
        tokens = [int(t) for t in args.tokens.split(",")]
    with torch.no_grad():
        logits = model(torch.tensor([tokens]))[0]
    if not args.expect:
        print(json.dumps({"tokens": tokens, "logits": logits.reshape(-1).tolist()}))
        return 0
    ours = torch.tensor(ref["logits"]).view_as(logits)
    diff = (ours - logits).abs().max().item()
    print(json.dumps({"tokens": len(tokens), "vocab": logits.shape[-1], "max_abs_diff": diff, "torch": torch.__version__}))
    return 0 if diff <= 1e-4 else 1


CONFIGS = {
    # GptRecipe's default model (the demo's): byte tokenizer, context 64, width 64, 4 heads, 2 layers, tied head.
    "demo": {"vocab_size": 259, "n_positions": 64, "n_embd": 64, "n_head": 4, "n_layer": 2},
    # GPT-2 small: 124M parameters.
    "gpt2-small": {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12},
}


class Workload:
    """One repetition of the timed work: a training step (GptTrainer's: windows of seq+1 tokens, next-token
    cross-entropy, AdamW(0.9, 0.999, eps 1e-8, wd 0.01)) or a forward pass (no grad), on GPT-2-initialised weights."""

    def __init__(self, args):
        torch.manual_seed(0)
        self.cfg = dict(CONFIGS[args.config])
        self.model = GPT2LMHeadModel(self.cfg)
        self.model.init_gpt2(torch.Generator().manual_seed(0))
        self.g = torch.Generator().manual_seed(1)
        self.args = args
        if args.mode == "forward":
            self.model.eval()
            self.ids = torch.randint(0, self.cfg["vocab_size"], (args.batch, args.seq), generator=self.g)
        else:
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def run(self, reps):
        """Wall-clock and process CPU seconds of each of reps repetitions."""
        times, cpu = [], []
        v = self.cfg["vocab_size"]
        for _ in range(reps):
            if self.args.mode == "forward":
                t0, c0 = time.perf_counter(), time.process_time()
                with torch.no_grad():
                    self.model(self.ids)
            else:
                tokens = torch.randint(0, v, (self.args.batch, self.args.seq + 1), generator=self.g)
                t0, c0 = time.perf_counter(), time.process_time()
                logits = self.model(tokens[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, v), tokens[:, 1:].reshape(-1))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return times, cpu

    def info(self):
        return {"threads": torch.get_num_threads(), "torch": torch.__version__,
                "parameters": sum(p.numel() for p in self.model.parameters())}


def cmd_serve(args):
    work = Workload(args)
    print(json.dumps({"ready": True, **work.info()}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] != "run" or len(parts) != 2 or not parts[1].isdigit():
            print(json.dumps({"error": f"unknown command {line.strip()!r}: expected 'run N' or 'quit'"}), flush=True)
            continue
        times, cpu = work.run(int(parts[1]))
        print(json.dumps({"seconds": times, "cpu_seconds": cpu}), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("logits")
    a.add_argument("dir")
    a.add_argument("--tokens", default="0")
    a.add_argument("--expect")
    a.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("serve")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    b.add_argument("--mode", choices=["train", "forward"], default="train")
    b.add_argument("--batch", type=int, default=16)
    b.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(getattr(args, "threads", 1))
    return cmd_logits(args) if args.cmd == "logits" else cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""torch_peer.py - the PyTorch peer of `amalgam bench`: the same encoder and training step in torch.nn.

`amalgam bench encode|train` times the C encoder and then runs this script with the same shapes
and thread count; it prints ONE JSON line on stdout (the last line starting with '{' is parsed).

  /usr/bin/python3 tools/bench/torch_peer.py --mode train --config tiny --threads 2
  /usr/bin/python3 tools/bench/torch_peer.py --mode both --config small --threads 1 --steps 8

Needs Debian's python3-torch (`./amalgam bench` installs it). Run it with /usr/bin/python3:
Debian's torch is not visible to a virtualenv's python.

Model (the C presets, src/model/model.h): BERT-style post-LN encoder, vocab 30522, 512 positions,
2 token types, GELU (erf), LayerNorm eps 1e-12, dropout 0.1, attention mask added as
(1 - mask) * -10000, mean pooling over the mask.
  tiny  hidden 128, 2 layers, 2 heads, FFN 512   (BERT-tiny shape,  ~4.4 M parameters)
  mini  hidden 256, 4 layers, 4 heads, FFN 1024  (BERT-mini shape, ~11.2 M)
  small hidden 384, 6 layers, 6 heads, FFN 1536  (MiniLM-L6 shape, ~22.7 M)
Inputs: token ids uniform in [1000, vocab), no padding; four batches drawn up front and cycled.

--mode train: one step = zero_grad, encode the query batch and the positive batch (--batch pairs,
  2 x batch sequences of --seq tokens), mean pooling, multiple-negatives ranking loss (cosine
  similarity x 20, in-batch negatives, cross-entropy on the diagonal), backward, AdamW (lr 5e-5,
  weight decay 0.01 on every tensor, dense embedding gradients). Forward, backward and AdamW are
  timed separately as well.
--mode encode: eval mode under torch.no_grad, one call per batch of --encode-batch sentences.

Threads: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set before torch is imported (Debian's
torch runs fp32 GEMMs in OpenBLAS, whose thread pool torch.set_num_threads does not reach), then
torch.set_num_threads.

--env tuned (default) re-executes the script once with
  OPENBLAS_CORETYPE=SkylakeX   only where the CPU has avx512f (the kernels `amalgam bench` uses too),
  OMP_WAIT_POLICY=passive      OpenMP workers sleep rather than spin against OpenBLAS's threads,
  GLIBC_TUNABLES=...           malloc keeps and reuses freed memory on huge pages (fresh 4 KiB page
                               faults are expensive in VMs),
because glibc reads its tunables only at start-up and OpenBLAS its core type only when loaded.
--env asis runs in the environment as found. The JSON line reports what was in effect.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

PRESETS = {
    "tiny": {"hidden": 128, "layers": 2, "heads": 2, "ffn": 512},
    "mini": {"hidden": 256, "layers": 4, "heads": 4, "ffn": 1024},
    "small": {"hidden": 384, "layers": 6, "heads": 6, "ffn": 1536},
}
TRAIN_STEPS = {"tiny": 30, "mini": 15, "small": 10}
ENCODE_STEPS = {"tiny": 60, "mini": 30, "small": 20}
TUNED_ENV = {
    "OMP_WAIT_POLICY": "passive",
    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:"
                      "glibc.malloc.trim_threshold=4294967296",
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", choices=["train", "encode", "both"], default="both")
    p.add_argument("--batch", type=int, default=32, help="pairs per training step")
    p.add_argument("--encode-batch", type=int, default=64, help="sentences per encode call")
    p.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--steps", type=int, default=0, help="timed training steps (0: tiny 30, mini 15, small 10)")
    p.add_argument("--encode-steps", type=int, default=0, help="timed encode calls (0: tiny 60, mini 30, small 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", choices=["asis", "tuned"], default="tuned")
    return p.parse_args(argv)


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


ARGS = parse_args(sys.argv[1:])
if ARGS.env == "tuned" and os.environ.get("AM_TORCH_PEER_REEXEC") != "1":
    env = dict(os.environ, AM_TORCH_PEER_REEXEC="1", **TUNED_ENV)
    if cpu_has_avx512():
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402  (only after the thread variables are set)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)


class Block(nn.Module):
    """One post-LN transformer layer: self-attention + residual + LN, FFN + residual + LN."""

    def __init__(self, hidden, heads, ffn, dropout):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        # creation order fixes the initial weights for a given seed: q, k, v, o, ln1, f1, f2, ln2
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.f1, self.f2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def split(self, t):  # [B, S, H] -> [B, heads, S, head_dim]
        b, s, _ = t.shape
        return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask_bias):
        b, s, h = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = q @ k.transpose(-1, -2) * self.head_dim ** -0.5 + mask_bias
        probs = self.drop(torch.softmax(scores, dim=-1))
        ctx = (probs @ v).transpose(1, 2).reshape(b, s, h)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.f2(F.gelu(self.f1(x)))))


class Encoder(nn.Module):
    """Embeddings (word + position + token type 0), LN, dropout, the layers, mean pooling."""

    def __init__(self, vocab, hidden, layers, heads, ffn, positions=512, dropout=0.1):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(positions, hidden)
        self.typ = nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(Block(hidden, heads, ffn, dropout) for _ in range(layers))

    def forward(self, ids, mask):  # ids [B, S] int64, mask [B, S] float 1/0
        x = self.word(ids) + self.pos(torch.arange(ids.shape[1]))[None] + self.typ.weight[0]
        x = self.drop(self.ln(x))
        bias = (1.0 - mask)[:, None, None, :] * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        m = mask[..., None]
        return (x * m).sum(1) / m.sum(1).clamp_min(1e-9)


def ranking_loss(queries, positives, scale=20.0):
    """Multiple-negatives ranking loss: row i's positive is column i, the other columns are negatives."""
    sim = F.normalize(queries, dim=-1) @ F.normalize(positives, dim=-1).t() * scale
    return F.cross_entropy(sim, torch.arange(sim.shape[0]))


def stats(ms):
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "n": len(ms)}


def bench_train(model, draw, out, flops_attn_per_token, nonemb):
    steps = ARGS.steps or TRAIN_STEPS[ARGS.config]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    batches = [(draw(ARGS.batch), draw(ARGS.batch)) for _ in range(4)]
    total, fwd, bwd, upd = [], [], [], []
    loss = None
    for i in range(ARGS.warmup + steps):
        (q_ids, q_mask), (p_ids, p_mask) = batches[i % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = ranking_loss(model(q_ids, q_mask), model(p_ids, p_mask))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= ARGS.warmup:
            total.append((t3 - t0) * 1e3)
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            upd.append((t3 - t2) * 1e3)
    tokens = 2 * ARGS.batch * ARGS.seq
    flops = 6 * nonemb * tokens + 3 * flops_attn_per_token * tokens  # forward 1x + backward 2x
    st = stats(total)
    out["train"] = {
        "batch_pairs": ARGS.batch, "seqs_per_step": 2 * ARGS.batch, "tokens_per_step": tokens,
        "warmup": ARGS.warmup, "ms_per_step": st,
        "seqs_per_s_median": 2 * ARGS.batch / (st["median"] / 1e3),
        "pairs_per_s_median": ARGS.batch / (st["median"] / 1e3),
        "ms_forward_median": statistics.median(fwd),
        "ms_backward_median": statistics.median(bwd),
        "ms_adamw_median": statistics.median(upd),
        "model_flops_per_step": flops,
        "achieved_gflops_median": flops / (st["median"] / 1e3) / 1e9,
        "final_loss": float(loss),
    }


def bench_encode(model, draw, out, flops_attn_per_token, nonemb):
    steps = ARGS.encode_steps or ENCODE_STEPS[ARGS.config]
    model.eval()
    batches = [draw(ARGS.encode_batch) for _ in range(4)]
    times = []
    with torch.no_grad():
        for i in range(ARGS.warmup + steps):
            ids, mask = batches[i % len(batches)]
            t0 = time.perf_counter()
            model(ids, mask)
            if i >= ARGS.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    tokens = ARGS.encode_batch * ARGS.seq
    flops = 2 * nonemb * tokens + flops_attn_per_token * tokens
    st = stats(times)
    out["encode"] = {
        "batch": ARGS.encode_batch, "ms_per_batch": st,
        "sentences_per_s_median": ARGS.encode_batch / (st["median"] / 1e3),
        "model_flops_per_batch": flops,
        "achieved_gflops_median": flops / (st["median"] / 1e3) / 1e9,
    }


def main():
    cfg = PRESETS[ARGS.config]
    hidden, layers, seq = cfg["hidden"], cfg["layers"], ARGS.seq
    torch.manual_seed(ARGS.seed)
    model = Encoder(ARGS.vocab, hidden, layers, cfg["heads"], cfg["ffn"])
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for m in (model.word, model.pos, model.typ) for p in m.parameters())
    gen = torch.Generator().manual_seed(ARGS.seed + 1)

    def draw(n):
        return torch.randint(1000, ARGS.vocab, (n, seq), generator=gen), torch.ones(n, seq)

    out = {
        "config": ARGS.config, "hidden": hidden, "layers": layers, "heads": cfg["heads"], "ffn": cfg["ffn"],
        "vocab": ARGS.vocab, "seq": seq, "threads": ARGS.threads, "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__, "python": platform.python_version(), "env": ARGS.env,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(unset: autodetect)"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "(unset)"),
        "params_total": total, "params_embedding": emb, "params_nonembedding": total - emb,
    }
    # attention products QK^T and PV: 2 * S * head_dim multiply-adds each per head -> 4 * S * H per token and layer
    attn = 4 * layers * seq * hidden
    if ARGS.mode in ("train", "both"):
        bench_train(model, draw, out, attn, total - emb)
    if ARGS.mode in ("encode", "both"):
        bench_encode(model, draw, out, attn, total - emb)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

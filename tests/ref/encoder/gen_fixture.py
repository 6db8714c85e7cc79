#!/usr/bin/python3
"""gen_fixture.py - reference forward/backward of a small BERT encoder for tests/unit/test_encoder.c.

Run with Debian's PyTorch:  /usr/bin/python3 tests/ref/encoder/gen_fixture.py
Writes encoder_tiny.bin next to this script (see README.md for the format).

The model is a plain torch.nn re-implementation of transformers' BertModel (no pooler) whose
module tree reproduces Hugging Face parameter names exactly ("embeddings.word_embeddings.weight",
"encoder.layer.0.attention.self.query.weight", ...): word + position + token-type embeddings,
LayerNorm(eps 1e-12), post-LN layers with multi-head self-attention and the additive padding
mask (1 - mask) * -10000, exact erf GELU. Dropout is OFF (eval): the C side cannot reproduce
torch's RNG, and its dropout is tested separately.

Everything is computed in float64 from float32-representable parameters and inputs, so the
reference is exact to ~1e-15 and the C float32 implementation is compared with ~1e-6 error.

Loss (touches every layer, every parameter, both poolings, L2 norm, padding):
  e_l   = normalize(meanpool(h_l, mask))                      for every layer l = 0..L
  loss  = sum_l sum(e_l * R_l)                                 fixed random projections
        + InfoNCE(e_L[:B/2], e_L[B/2:], scale 20)              cross-entropy on the diagonal
        + sum(h_L[:, 0, :] * Rc)                               CLS pooling term
        + 0.01 * sum(h_1 * Rh)                                 every token of layer 1, padding included
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "encoder_tiny.bin")

V, C, L, NH, FF, P, TV = 100, 64, 2, 4, 128, 20, 2
EPS = 1e-12
B, T = 4, 16
LENGTHS = [16, 13, 7, 3]


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x, bias):
        Bq, Tq, _ = x.shape
        hs = C // NH

        def split(t):
            return t.view(Bq, Tq, NH, hs).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / (hs ** 0.5) + bias
        probs = torch.softmax(scores, dim=-1)
        return (probs @ v).transpose(1, 2).reshape(Bq, Tq, C)


class SelfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(C, C)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()
        self.output = SelfOutput()

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(C, FF)

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf GELU (approximate='none')


class Output(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(FF, C)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = Output()

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(a), a)


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, C, padding_idx=0)
        self.position_embeddings = nn.Embedding(P, C)
        self.token_type_embeddings = nn.Embedding(TV, C)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)

    def forward(self, ids, tt):
        pos = torch.arange(ids.shape[1])
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings(tt)
        return self.LayerNorm(x)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(L))


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()

    def forward(self, ids, tt, mask):
        bias = (1.0 - mask)[:, None, None, :] * -10000.0
        hs = [self.embeddings(ids, tt)]
        for layer in self.encoder.layer:
            hs.append(layer(hs[-1], bias))
        return hs


def f32(x):
    """round to float32, keep as float64 (so C and torch see the same numbers)"""
    return torch.as_tensor(np.asarray(x, dtype=np.float32), dtype=torch.float64)


def main():
    rng = np.random.default_rng(20240501)
    model = Bert().double()
    # weights large enough that attention is far from uniform and GELU is nonlinear
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                v = 1.0 + 0.2 * rng.standard_normal(p.shape)
            elif "LayerNorm.bias" in name or name.endswith(".bias"):
                v = 0.1 * rng.standard_normal(p.shape)
            elif "embeddings" in name:
                v = 0.5 * rng.standard_normal(p.shape)
            else:
                v = rng.standard_normal(p.shape) / np.sqrt(p.shape[1]) * 1.5
            p.copy_(f32(v))
    model.eval()

    ids = np.zeros((B, T), dtype=np.int32)
    tt = np.zeros((B, T), dtype=np.int32)
    mask = np.zeros((B, T), dtype=np.float32)
    for b, n in enumerate(LENGTHS):
        ids[b, 0] = 2  # "[CLS]"
        ids[b, 1:n] = rng.integers(3, V, n - 1)
        if n >= 4 and b % 2 == 0:  # a sentence pair: second segment has type 1
            tt[b, n // 2:n] = 1
        mask[b, :n] = 1.0
    R = [f32(rng.standard_normal((B, C))) for _ in range(L + 1)]
    Rc = f32(rng.standard_normal((B, C)))
    Rh = f32(rng.standard_normal((B, T, C)))

    hs = model(torch.as_tensor(ids, dtype=torch.long), torch.as_tensor(tt, dtype=torch.long),
               torch.as_tensor(mask, dtype=torch.float64))
    for h in hs:
        h.retain_grad()
    m = torch.as_tensor(mask, dtype=torch.float64)[..., None]
    loss = torch.zeros((), dtype=torch.float64)
    es = []
    for l, h in enumerate(hs):
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        e = F.normalize(pooled, dim=-1)
        es.append(e)
        loss = loss + (e * R[l]).sum()
    half = B // 2
    sim = es[L][:half] @ es[L][half:].t() * 20.0
    loss = loss + F.cross_entropy(sim, torch.arange(half))
    loss = loss + (hs[L][:, 0, :] * Rc).sum()
    loss = loss + 0.01 * (hs[1] * Rh).sum()
    loss.backward()

    arrays = []

    def add(name, a, dtype):
        a = np.ascontiguousarray(np.asarray(a, dtype=dtype))
        arrays.append((name, a))

    add("config", [V, C, L, NH, FF, P, TV, B, T], np.int32)
    add("input_ids", ids, np.int32)
    add("token_type_ids", tt, np.int32)
    add("attention_mask", mask, np.float32)
    for l in range(L + 1):
        add(f"loss.R.{l}", R[l].numpy(), np.float32)
    add("loss.Rc", Rc.numpy(), np.float32)
    add("loss.Rh", Rh.numpy(), np.float32)
    add("loss", [loss.item()], np.float32)
    for l, h in enumerate(hs):
        add(f"hidden.{l}", h.detach().numpy(), np.float32)
    for name, p in model.named_parameters():
        add(f"param.{name}", p.detach().numpy(), np.float32)
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        add(f"grad.{name}", g.numpy(), np.float32)

    with open(OUT, "wb") as f:
        f.write(b"AMFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, a in arrays:
            nb = name.encode()
            dtype = 0 if a.dtype == np.float32 else 1
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", dtype, a.ndim))
            f.write(struct.pack("<" + "I" * a.ndim, *a.shape))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
    size = os.path.getsize(OUT)
    print(f"wrote {OUT}: {len(arrays)} arrays, {size} bytes, loss {loss.item():.9f}, torch {torch.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()

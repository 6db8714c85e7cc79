#!/usr/bin/python3
"""gen_fixture.py - PyTorch references for src/train (tests/unit/test_loss.c, test_train.c).

Run with Debian's PyTorch:  /usr/bin/python3 tests/ref/train/gen_fixture.py [fidelity]
Writes, next to this script (format: see README.md, the same AMFX container as tests/ref/encoder):

  losses.bin   every loss of src/train/loss.h on random float32 embeddings, computed in float64 by
               code that follows the reference implementations (sentence-transformers
               MultipleNegativesRankingLoss / MultipleNegativesSymmetricRankingLoss / CoSENTLoss /
               MatryoshkaLoss, CoDiEmb loss.py ContrastiveLoss / MultiPositiveInfoNCELoss /
               PearsonCorrelationLoss / RankKLDivergenceLoss / PROLoss, Starbucks' SRL loss):
               the loss value and its gradient w.r.t. every input embedding matrix.
  mlm_head.bin BertOnlyMLMHead (dense, GELU, LayerNorm, decoder tied to the word embeddings + bias)
               on random hidden states with a fixed mask: loss, d hidden, every head gradient and
               the word-embedding gradient of the tied decoder.
  adamw.bin    5 steps of torch.optim.AdamW (float32) with LambdaLR warm-up + linear / cosine decay
               (transformers' formulas) and clip_grad_norm_, on 4 tensors (2 with no weight decay)
               with given gradients: the parameters after every step.
  lora.bin     a small BERT (HF parameter names) with PEFT-style LoRA on query, value,
               attention.output.dense, intermediate.dense and output.dense (not key): hidden states,
               the loss, every LoRA gradient and every base gradient (full fine-tuning + LoRA).
  fidelity.bin ports of the authors' code (Starbucks' StarbucksLoss, sentence-transformers'
               Matryoshka2dLoss, CoDiEmb's STS composite) with their hyper-parameters and realistic
               gold (STS-B-like in [0, 1]; a sample of the project's wn-sts): loss and gradients.
  pairs64.txt  64 made-up query/positive pairs, pre-tokenized with a tiny word vocabulary in which
               the positive uses SYNONYMS of the query's words (so a random model cannot match them
               and training has something to learn).

Everything random comes from numpy's default_rng with fixed seeds; inputs are rounded to float32
so the C side sees exactly the same numbers.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import rankdata

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)


def f32(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float32), dtype=torch.float64)


def write_fixture(path, arrays):
    with open(path, "wb") as f:
        f.write(b"AMFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, a in arrays:
            nb = name.encode()
            dtype = 0 if a.dtype == np.float32 else 1
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", dtype, a.ndim))
            f.write(struct.pack("<" + "I" * a.ndim, *a.shape))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
    print(f"wrote {path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes", file=sys.stderr)


class Out:
    def __init__(self):
        self.arrays = []

    def add(self, name, a, dtype=np.float32):
        if isinstance(a, torch.Tensor):
            a = a.detach().numpy()
        a = np.array(a, dtype=dtype, copy=True, order="C")  # a copy: tensors may change later
        if a.ndim == 0:
            a = a.reshape(1)
        self.arrays.append((name, a))


# ---------------------------------------------------------------- reference losses

def cos_sim(a, b):
    return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).t()


def dot_sim(a, b):
    return a @ b.t()


def mnrl(q, cand, scale, sim):
    """sentence-transformers MultipleNegativesRankingLoss: anchors vs cat(positives, negatives)"""
    scores = sim(q, cand) * scale
    return F.cross_entropy(scores, torch.arange(q.shape[0]))


def split_rows(e, n, P, K):
    q = e[:n]
    pos = e[n:n + n * P].reshape(n, P, -1)
    neg = e[n + n * P:].reshape(n * K, -1) if K else e[:0]
    return q, pos, neg


def infonce_ref(e, n, P, K, scale, sim, symmetric=False, mode="avg"):
    """P = 1: ST MNRL / MNSRL. P > 1, avg: CoDiEmb ContrastiveLoss(ir_mode='all') (+ symmetric
    term per slot); lse: CoDiEmb MultiPositiveInfoNCELoss (temperature = 1/scale)."""
    q, pos, neg = split_rows(e, n, P, K)
    if mode == "lse" and P > 1:
        # CoDiEmb layout: p_reps (n * group) with group = P positives then K negatives of query i
        negs = neg.reshape(n, K, -1) if K else pos[:, :0]
        p_reps = torch.cat([pos, negs], dim=1).reshape(n * (P + K), -1)
        logits = sim(q, p_reps) * scale
        mask = torch.zeros_like(logits, dtype=torch.bool)
        for i in range(n):
            mask[i, i * (P + K):i * (P + K) + P] = True
        ex = logits.exp()
        loss = (torch.log(ex.sum(1) + 1e-8) - torch.log((ex * mask).sum(1) + 1e-8)).mean()
    else:
        loss = 0
        for j in range(P):
            cand = torch.cat([pos[:, j], neg], dim=0)
            loss = loss + mnrl(q, cand, scale, sim)
        loss = loss / P
    if symmetric:
        back = 0
        for j in range(P):
            scores = sim(q, pos[:, j]) * scale
            back = back + F.cross_entropy(scores.t(), torch.arange(n))
        loss = 0.5 * (loss + back / P)
    return loss


def cosent_ref(e, n, y, scale, sim):
    """sentence-transformers CoSENTLoss"""
    s = torch.diagonal(sim(e[:n], e[n:2 * n])) * scale
    s = s[:, None] - s[None, :]
    labels = (y[:, None] < y[None, :]).double()
    s = s - (1 - labels) * 1e12
    s = torch.cat((torch.zeros(1), s.view(-1)), dim=0)
    return torch.logsumexp(s, dim=0)


def pair_cos(e, n):
    return torch.sum(F.normalize(e[:n], dim=-1) * F.normalize(e[n:2 * n], dim=-1), dim=-1)


def pearson_ref(x, y):  # CoDiEmb PearsonCorrelationLoss
    mx, my = x.mean(), y.mean()
    vx, vy = torch.var(x, unbiased=False), torch.var(y, unbiased=False)
    return 1 - torch.mean((x - mx) * (y - my)) / (torch.sqrt(vx) * torch.sqrt(vy))


def rankkl_ref(x, y, T):  # CoDiEmb RankKLDivergenceLoss
    ranks = torch.from_numpy(rankdata(-y.numpy().astype(np.float32), method="average") - 1)
    n = y.numel()
    ideal = (n - 1 - ranks).double() / (n - 1)
    return F.kl_div(F.log_softmax(x / T, dim=0), F.softmax(ideal / T, dim=0), reduction="batchmean")


def pro_ref(x, y, T, eps=1e-8):  # CoDiEmb PROLoss
    x = x / T
    idx = torch.argsort(y, descending=True)
    ys, xs = y[idx], x[idx]
    total, count = 0.0, 0
    for k in range(len(ys) - 1):
        m = (ys[k] - ys[k + 1:]) > eps
        if not m.any():
            continue
        wn = ys[k] - ys[k + 1:][m]
        logits = torch.cat([(xs[k] * wn.max()).unsqueeze(0), xs[k + 1:][m] * wn])
        total = total + F.log_softmax(logits, dim=0)[0]
        count += 1
    return -total / count


def mid_ref(e, n, y, T, thr):  # CoDiEmb ContrastiveLoss(task_type="sts")
    q, p = F.normalize(e[:n], dim=-1), F.normalize(e[n:2 * n], dim=-1)
    scores = q @ p.t() / T
    valid = y >= thr
    return F.cross_entropy(scores[valid], torch.arange(n)[valid])


def kl_scores_ref(te, st, n, T, sim):
    St = sim(te[:n], te[n:]) / T
    Ss = sim(st[:n], st[n:]) / T
    return F.kl_div(F.log_softmax(Ss, dim=-1), F.softmax(St.detach(), dim=-1), reduction="batchmean")


def kl_emb_ref(te, st, T):
    d = st.shape[1]
    a = F.normalize(te[:, :d], dim=-1).detach()
    b = F.normalize(st, dim=-1)
    return F.kl_div(F.log_softmax(b / T, dim=-1), F.softmax(a / T, dim=-1), reduction="batchmean")


def gen_losses(rng):
    out = Out()

    def leaf(name, a):
        t = f32(a).requires_grad_(True)
        out.add(name, t)
        return t

    def emit(name, loss, *inputs):
        for t in inputs:
            t.grad = None
        loss.backward()
        out.add(f"{name}.loss", loss.item())
        for k, t in enumerate(inputs):
            out.add(f"{name}.grad{k}", t.grad if t.grad is not None else torch.zeros_like(t))

    D = 24
    # A: n=5, P=1, K=0
    eA = leaf("A.emb", rng.standard_normal((10, D)))
    emit("infA", infonce_ref(eA, 5, 1, 0, 20.0, cos_sim), eA)
    emit("infA_sym", infonce_ref(eA, 5, 1, 0, 20.0, cos_sim, symmetric=True), eA)
    emit("infA_dot", infonce_ref(eA, 5, 1, 0, 0.5, dot_sim), eA)
    # B: n=4, P=2, K=2 -> 20 rows
    eB = leaf("B.emb", rng.standard_normal((20, D)))
    emit("infB_avg", infonce_ref(eB, 4, 2, 2, 20.0, cos_sim), eB)
    emit("infB_avg_sym", infonce_ref(eB, 4, 2, 2, 20.0, cos_sim, symmetric=True), eB)
    emit("infB_lse", infonce_ref(eB, 4, 2, 2, 20.0, cos_sim, mode="lse"), eB)
    # H: n=4, P=1, K=3 (ST hard negatives appended as extra columns)
    eH = leaf("H.emb", rng.standard_normal((20, D)))
    emit("infH", infonce_ref(eH, 4, 1, 3, 20.0, cos_sim), eH)
    emit("infH_sym", infonce_ref(eH, 4, 1, 3, 20.0, cos_sim, symmetric=True), eH)
    # G: graded, n=8, gold on CoDiEmb's 0..5 scale with ties
    n = 8
    y = np.array([4.5, 0.5, 2.5, 2.5, 5.0, 0.0, 1.5, 4.5], dtype=np.float32)
    out.add("G.gold", y)
    yt = torch.as_tensor(y, dtype=torch.float64)
    eG = leaf("G.emb", rng.standard_normal((16, D)) + 0.3 * np.tile(rng.standard_normal((1, D)), (16, 1)))
    eM = leaf("G.mid", rng.standard_normal((16, D)))
    emit("cosent", cosent_ref(eG, n, yt, 20.0, cos_sim), eG)
    emit("pearson", pearson_ref(pair_cos(eG, n), yt), eG)
    emit("rankkl", rankkl_ref(pair_cos(eG, n), yt, 0.05), eG)
    emit("pro", pro_ref(pair_cos(eG, n), yt, 0.05), eG)
    emit("mid", mid_ref(eM, n, yt, 0.02, 1.0), eM)
    c = pair_cos(eG, n)
    comp = mid_ref(eM, n, yt, 0.02, 1.0) + 0.5 * pro_ref(c, yt, 0.05) + 2 * pearson_ref(c, yt) + 5 * rankkl_ref(c, yt, 0.05)
    emit("codiemb", comp, eG, eM)
    # KL between distributions: teacher 24 dims, student 16 dims, layout of H (n=4, P=1, K=3)
    eT = leaf("K.teacher", rng.standard_normal((20, D)))
    eS = leaf("K.student", rng.standard_normal((20, 16)))
    emit("kl_scores", kl_scores_ref(eT, eS, 4, 0.05, cos_sim), eS)
    emit("kl_emb", kl_emb_ref(eT, eS, 0.3), eS)
    # Matryoshka (ST MatryoshkaLoss) over dims 8, 16, 24 with weights 1, 0.5, 2 on A's layout
    loss = 0
    for d, w in ((8, 1.0), (16, 0.5), (24, 2.0)):
        loss = loss + w * infonce_ref(eA[:, :d], 5, 1, 0, 20.0, cos_sim)
    emit("mrl", loss, eA)
    # Starbucks: layers 0..2 of pooled embeddings (n=4, P=1, K=1 -> 12 rows), pairs
    # (1,8) (1,16) (2,16) (2,24), inner InfoNCE scale 20 (+ symmetric off), KL scores T 0.05, weight 1
    E = [leaf(f"S.emb{l}", rng.standard_normal((12, D))) for l in range(3)]
    pairs = [(1, 8), (1, 16), (2, 16), (2, 24)]
    loss = 0
    for (l, d) in pairs:
        loss = loss + infonce_ref(E[l][:, :d], 4, 1, 1, 20.0, cos_sim)
        if (l, d) != (2, 24):
            loss = loss + kl_scores_ref(E[2], E[l][:, :d], 4, 0.05, cos_sim)
    emit("starbucks", loss, *E)
    # Starbucks with CoSENT inside on the graded layout, KL on embeddings (T 0.3, weight 0.3)
    EG = [leaf(f"SG.emb{l}", rng.standard_normal((16, D))) for l in range(3)]
    loss = 0
    for (l, d) in pairs:
        loss = loss + cosent_ref(EG[l][:, :d], n, yt, 20.0, cos_sim)
        if (l, d) != (2, 24):
            loss = loss + 0.3 * kl_emb_ref(EG[2], EG[l][:, :d], 0.3)
    emit("starbucks_cosent", loss, *EG)
    write_fixture(os.path.join(HERE, "losses.bin"), out.arrays)


# ---------------------------------------------------------------- MLM head

def gen_mlm(rng):
    out = Out()
    V, C, N = 50, 16, 24
    h = f32(rng.standard_normal((N, C))).requires_grad_(True)
    W = f32(rng.standard_normal((C, C)) / math.sqrt(C) * 1.5).requires_grad_(True)
    b = f32(0.1 * rng.standard_normal(C)).requires_grad_(True)
    lnw = f32(1 + 0.2 * rng.standard_normal(C)).requires_grad_(True)
    lnb = f32(0.1 * rng.standard_normal(C)).requires_grad_(True)
    wte = f32(0.5 * rng.standard_normal((V, C))).requires_grad_(True)
    bias = f32(0.1 * rng.standard_normal(V)).requires_grad_(True)
    labels = np.full(N, -100, dtype=np.int64)
    for i in (1, 4, 5, 9, 13, 17, 22):
        labels[i] = rng.integers(5, V)
    t = F.layer_norm(F.gelu(h @ W.t() + b), (C,), lnw, lnb, eps=1e-12)
    logits = t @ wte.t() + bias
    loss = F.cross_entropy(logits, torch.as_tensor(labels), ignore_index=-100)
    loss.backward()
    out.add("config", [V, C, N], np.int32)
    out.add("labels", labels, np.int32)
    for name, x in (("hidden", h), ("dense.weight", W), ("dense.bias", b), ("ln.weight", lnw), ("ln.bias", lnb),
                    ("wte", wte), ("bias", bias)):
        out.add(f"in.{name}", x)
        out.add(f"grad.{name}", x.grad)
    out.add("loss", loss.item())
    write_fixture(os.path.join(HERE, "mlm_head.bin"), out.arrays)


# ---------------------------------------------------------------- AdamW + schedules + clipping

def linear_lambda(warm, total):
    def f(step):
        if step < warm:
            return float(step) / float(max(1, warm))
        return max(0.0, float(total - step) / float(max(1, total - warm)))
    return f


def cosine_lambda(warm, total, cycles=0.5):
    def f(step):
        if step < warm:
            return float(step) / float(max(1, warm))
        progress = float(step - warm) / float(max(1, total - warm))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))
    return f


def gen_adamw(rng):
    out = Out()
    shapes = [("dense.weight", (6, 5), True), ("dense.bias", (5,), False), ("LayerNorm.weight", (5,), False),
              ("proj.weight", (4, 3), True)]
    init = [rng.standard_normal(s).astype(np.float32) for _, s, _ in shapes]
    steps = 5
    grads = [[(rng.standard_normal(s) * (0.3 + 0.6 * k)).astype(np.float32) for _, s, _ in shapes]
             for k in range(steps)]
    for i, (name, s, _) in enumerate(shapes):
        out.add(f"init.{i}", init[i])
        for k in range(steps):
            out.add(f"grad.{k}.{i}", grads[k][i])
    for sched, lam in (("linear", linear_lambda(2, 5)), ("cosine", cosine_lambda(1, 5))):
        params = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in init]
        decay = [p for p, (_, _, d) in zip(params, shapes) if d]
        nodecay = [p for p, (_, _, d) in zip(params, shapes) if not d]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                                lr=0.05, betas=(0.9, 0.999), eps=1e-8)
        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        norms, lrs = [], []
        for k in range(steps):
            for p, g in zip(params, grads[k]):
                p.grad = torch.tensor(g, dtype=torch.float32)
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, 1.0)))
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            lr_sched.step()
            for i, p in enumerate(params):
                out.add(f"{sched}.step{k}.{i}", p.detach().numpy())
        out.add(f"{sched}.norms", np.array(norms))
        out.add(f"{sched}.lrs", np.array(lrs))
    write_fixture(os.path.join(HERE, "adamw.bin"), out.arrays)


# ---------------------------------------------------------------- LoRA on a small BERT

V, C, L, NH, FF, P, TV = 30, 16, 2, 2, 32, 16, 2
EPS = 1e-12
RANK, ALPHA = 4, 8.0


class LoraLinear(nn.Module):
    """nn.Linear with HF names (weight, bias) plus PEFT's lora_A / lora_B (no dropout)."""

    def __init__(self, i, o, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(o, i))
        self.bias = nn.Parameter(torch.zeros(o))
        self.lora = lora
        if lora:
            self.lora_A = nn.Linear(i, RANK, bias=False)
            self.lora_B = nn.Linear(RANK, o, bias=False)

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.lora:
            y = y + self.lora_B(self.lora_A(x)) * (ALPHA / RANK)
        return y


class Dense(nn.Module):
    def __init__(self, i, o, lora):
        super().__init__()
        self.dense = LoraLinear(i, o, lora)


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = LoraLinear(C, C, True), LoraLinear(C, C, False), LoraLinear(C, C, True)

    def forward(self, x, bias):
        Bq, Tq, _ = x.shape
        hs = C // NH

        def split(t):
            return t.view(Bq, Tq, NH, hs).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) / hs ** 0.5 + bias, dim=-1)
        return (probs @ v).transpose(1, 2).reshape(Bq, Tq, C)


class SelfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = LoraLinear(C, C, True)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()
        self.output = SelfOutput()

    def forward(self, x, bias):
        return self.output.LayerNorm(self.output.dense(self.self(x, bias)) + x)


class Output(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = LoraLinear(FF, C, True)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Dense(C, FF, True)
        self.output = Output()

    def forward(self, x, bias):
        a = self.attention(x, bias)
        h = F.gelu(self.intermediate.dense(a))
        return self.output.LayerNorm(self.output.dense(h) + a)


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, C, padding_idx=0)
        self.position_embeddings = nn.Embedding(P, C)
        self.token_type_embeddings = nn.Embedding(TV, C)
        self.LayerNorm = nn.LayerNorm(C, eps=EPS)

    def forward(self, ids, tt):
        pos = torch.arange(ids.shape[1])
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)[None] +
                              self.token_type_embeddings(tt))


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(L))


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Enc()

    def forward(self, ids, tt, mask):
        bias = (1.0 - mask)[:, None, None, :] * -10000.0
        hs = [self.embeddings(ids, tt)]
        for layer in self.encoder.layer:
            hs.append(layer(hs[-1], bias))
        return hs


def gen_lora(rng):
    out = Out()
    model = Bert()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                bound = 1.0 / math.sqrt(p.shape[1])  # PEFT kaiming_uniform(a=sqrt(5))
                v = rng.uniform(-bound, bound, p.shape)
            elif "lora_B" in name:
                v = 0.3 * rng.standard_normal(p.shape)  # non-zero so the test means something
            elif "LayerNorm.weight" in name:
                v = 1.0 + 0.2 * rng.standard_normal(p.shape)
            elif name.endswith(".bias"):
                v = 0.1 * rng.standard_normal(p.shape)
            elif "embeddings" in name:
                v = 0.5 * rng.standard_normal(p.shape)
            else:
                v = rng.standard_normal(p.shape) / np.sqrt(p.shape[1]) * 1.5
            p.copy_(f32(v))
    B, T = 4, 6
    lengths = [6, 4, 5, 3]
    ids = np.zeros((B, T), dtype=np.int32)
    mask = np.zeros((B, T), dtype=np.float32)
    for b, n in enumerate(lengths):
        ids[b, 0] = 2
        ids[b, 1:n] = rng.integers(3, V, n - 1)
        mask[b, :n] = 1
    R1 = f32(rng.standard_normal((B, C)))
    hs = model(torch.as_tensor(ids, dtype=torch.long), torch.zeros((B, T), dtype=torch.long),
               torch.as_tensor(mask, dtype=torch.float64))
    m = torch.as_tensor(mask, dtype=torch.float64)[..., None]

    def pool(h):
        return (h * m).sum(1) / m.sum(1).clamp_min(1e-9)

    e = pool(hs[L])
    loss = mnrl(e[:2], e[2:], 20.0, cos_sim) + (F.normalize(pool(hs[1]), dim=-1) * R1).sum()
    loss.backward()
    out.add("config", [V, C, L, NH, FF, P, TV, B, T, RANK], np.int32)
    out.add("alpha", ALPHA)
    out.add("input_ids", ids, np.int32)
    out.add("attention_mask", mask)
    out.add("R1", R1)
    out.add("loss", loss.item())
    out.add("hidden", hs[L])
    for name, p in model.named_parameters():  # HF / PEFT names, e.g. ...query.lora_A.weight
        out.add(f"param.{name}", p)
        out.add(f"grad.{name}", p.grad if p.grad is not None else torch.zeros_like(p))
    write_fixture(os.path.join(HERE, "lora.bin"), out.arrays)


# ---------------------------------------------------------------- the pair set

def gen_pairs(rng):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    func = ["the", "near", "that", "is", "by", "a"]
    slots_a = [["red", "blue", "green", "black", "white", "brown", "gray", "pink"],
               ["dog", "cat", "horse", "bird", "fish", "mouse", "sheep", "goat"],
               ["runs", "sleeps", "eats", "jumps", "sings", "waits", "hides", "plays"],
               ["river", "house", "field", "road", "hill", "lake", "barn", "tree"]]
    slots_b = [["crimson", "azure", "emerald", "ebony", "ivory", "tan", "ashen", "rosy"],
               ["hound", "kitten", "stallion", "sparrow", "trout", "rodent", "lamb", "kid"],
               ["sprints", "naps", "feeds", "leaps", "chirps", "lingers", "lurks", "romps"],
               ["stream", "home", "meadow", "street", "mound", "pond", "stable", "oak"]]
    vocab = specials + func + [w for s in slots_a for w in s] + [w for s in slots_b for w in s]
    vid = {w: i for i, w in enumerate(vocab)}
    tuples = set()
    while len(tuples) < 64:
        tuples.add(tuple(int(x) for x in rng.integers(0, 8, 4)))
    tuples = sorted(tuples, key=lambda t: rng.random())
    lines = ["# pairs64.txt - made by gen_fixture.py: 64 query / positive pairs as token ids of the vocab",
             "# below ([CLS] ... [SEP]); the positive uses synonyms of the query's words. Format per pair:",
             "# ids of the query <TAB> ids of the positive. Vocab (id = position, from 0):",
             "# " + " ".join(vocab)]
    for a, b, c, d in tuples:
        q = ["[CLS]", "the", slots_a[0][a], slots_a[1][b], slots_a[2][c], "near", "the", slots_a[3][d], "[SEP]"]
        p = ["[CLS]", "a", slots_b[1][b], "that", "is", slots_b[0][a], slots_b[2][c], "by", slots_b[3][d], "[SEP]"]
        lines.append(" ".join(str(vid[w]) for w in q) + "\t" + " ".join(str(vid[w]) for w in p))
    path = os.path.join(HERE, "pairs64.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}: 64 pairs, vocab {len(vocab)}", file=sys.stderr)


# ---------------------------------------------------------------- the authors' code, ported

# Ports of the training losses as their authors' repositories run them, on pooled embeddings per
# layer (the encoder is not needed: every wrapper only re-pools cached hidden states). Each keeps
# the structure of the original so a reader can put them side by side:
#   ielab/Starbucks sts/starbucks_loss.py (StarbucksLoss) + sts/matryoshkaloss_modified.py
#   sentence-transformers 3.x-5.1 losses/AdaptiveLayerLoss.py + Matryoshka2dLoss.py (the 2DMSE
#     baseline Starbucks compared with; random.sample replaced by the given draw)
#   TencentCloudADP/youtu-embedding training/CoDiEmb/train/model.py (STS branch) + loss.py

def st_cosent(a, b, labels, scale=20.0):  # sentence-transformers CoSENTLoss on (already shrunk) embeddings
    s = torch.sum(F.normalize(a, dim=-1) * F.normalize(b, dim=-1), dim=-1) * scale
    s = s[:, None] - s[None, :]
    lab = (labels[:, None] < labels[None, :]).double()
    s = s - (1 - lab) * 1e12
    s = torch.cat((torch.zeros(1), s.view(-1)), dim=0)
    return torch.logsumexp(s, dim=0)


def st_mnrl(a, p, neg, scale=20.0):  # MultipleNegativesRankingLoss(anchor, positive, negative)
    cand = torch.cat([p, neg], dim=0)
    scores = F.normalize(a, dim=-1) @ F.normalize(cand, dim=-1).t() * scale
    return F.cross_entropy(scores, torch.arange(a.shape[0]))


def split_features(e, n, parts):  # the sentence_features list: one (n, C) block per column
    return [e[k * n:(k + 1) * n] for k in range(parts)]


def inner_loss(kind, feats, labels):
    if kind == "cosent":
        return st_cosent(feats[0], feats[1], labels)
    return st_mnrl(feats[0], feats[1], feats[2])


def starbucks_port(E, n, parts, kind, labels, matryoshka_layers, matryoshka_dims, kl_div_weight=1.0,
                   kl_temperature=0.3):
    """StarbucksLoss.forward: E[l] = pooled embeddings of hidden layer l (l = 0..L), rows = the
    concatenated sentence features. MatryoshkaLoss(dim) shrinks AND normalises the features the
    inner loss sees; the ForwardDecorator of StarbucksLoss sees the raw pooled rows."""
    num_layers = len(E) - 1                      # transformer_decorator.num_layers
    layers0 = [l - 1 for l in matryoshka_layers]  # self.matryoshka_layers (0-based into hidden_states[1:-1])
    C = E[-1].shape[1]

    def matryoshka(e, dim):  # MatryoshkaLoss.forward(features, labels, dim)
        feats = [F.normalize(f[:, :dim], p=2, dim=-1) for f in split_features(e, n, parts)]
        return inner_loss(kind, feats, labels)

    loss = matryoshka(E[num_layers], C) * 1.0    # self.loss(..., 768) * last_layer_weight
    final_embeddings = E[num_layers]              # raw, not detached
    layer_indices = [i for i in layers0 if i < num_layers - 1]
    dim_indices = [matryoshka_dims[i] for i in range(len(layer_indices))]
    for layer_idx, dim_idx in zip(layer_indices, dim_indices):
        emb = E[layer_idx + 1]
        loss = loss + matryoshka(emb, dim_idx) * 1   # prior_layers_weight
        p, q = emb[:, :dim_idx], final_embeddings.clone()[:, :dim_idx]
        kl = F.kl_div(F.log_softmax(p, dim=-1), F.softmax(q, dim=-1), reduction="batchmean")
        loss = loss + kl * kl_temperature * kl_div_weight
    return loss


def starbucks_retrieval_port(E, n, K, layer_list, embedding_dim_list, temperature=1.0, kl_divergence_weight=1.0,
                             normalize=False):
    """SrlDenseModel.forward (retrieval/modeling.py, sub_model_sampling=False, one device): E[l] =
    pooled hidden_states[l] rows in amalgam's layout (n queries, n positives, n*K negatives); the
    passages are put in Tevatron's order (each query's positive, then its K negatives)."""
    idx = []
    for i in range(n):
        idx += [n + i] + [2 * n + i * K + k for k in range(K)]
    reps = [F.normalize(e, p=2, dim=-1) if normalize else e for e in E]
    q_reps = torch.stack([reps[l][:n] for l in layer_list])
    p_reps = torch.stack([reps[l][idx] for l in layer_list])
    num_layers, batch_size, embedding_dim = q_reps.shape
    target = torch.arange(q_reps.size(1), dtype=torch.long)
    target = target * (p_reps.size(1) // q_reps.size(1))
    all_scores = torch.einsum('lqh,ldh -> lqdh', q_reps, p_reps)
    last_layer_index = num_layers - 1
    full_layer_scores = all_scores[last_layer_index, :, :].sum(dim=-1)
    total_loss = F.cross_entropy(full_layer_scores / temperature, target)
    target_scores = full_layer_scores.detach() if kl_divergence_weight > 0 else None
    layer_dim_tuples = [(layer_idx, dim) for layer_idx, dim in zip(range(num_layers), embedding_dim_list)]
    for layer_idx, dim in layer_dim_tuples:
        if layer_idx == last_layer_index and dim == embedding_dim:
            continue
        layer_scores = all_scores[layer_idx, :, :, :dim].sum(dim=-1)
        total_loss += F.cross_entropy(layer_scores / temperature, target)
        if kl_divergence_weight > 0:
            kl_loss = F.kl_div(F.log_softmax(layer_scores / temperature, dim=1),
                               F.softmax(target_scores / temperature, dim=1), reduction='batchmean')
            total_loss += kl_divergence_weight * kl_loss
    return total_loss


def matryoshka2d_port(E, n, parts, kind, labels, layer_idx, dim_last, dim_layer, kl_div_weight=1.0,
                      kl_temperature=0.3, weighting="linear"):
    """Matryoshka2dLoss = AdaptiveLayerLoss(MatryoshkaLoss(n_dims_per_step=1), n_layers_per_step=1):
    the draws (layer_idx in range(num_layers - 1), one dim per MatryoshkaLoss call) are given."""
    num_layers = len(E) - 1

    def matryoshka(e, dim):
        feats = [F.normalize(f[:, :dim], p=2, dim=-1) for f in split_features(e, n, parts)]
        return inner_loss(kind, feats, labels)

    loss = matryoshka(E[num_layers], dim_last) * 1.0        # last_layer_weight
    final_embeddings = F.softmax(E[num_layers] / kl_temperature, dim=-1)
    layer_indices = [layer_idx]
    for li in layer_indices:
        layer_loss = matryoshka(E[li + 1], dim_layer)
        if weighting == "linear":                           # ST <= 5.1: / (1 + layer_idx) / len(...)
            loss = loss + layer_loss / (1 + li) / len(layer_indices) * 1.0
        else:
            loss = loss + layer_loss * 1.0
        kl = F.kl_div(F.log_softmax(E[li + 1] / kl_temperature, dim=-1), final_embeddings, reduction="batchmean")
        loss = loss + kl * kl_temperature * kl_div_weight
    return loss


def codiemb_sts_port(q_reps, p_reps, certain_q, certain_p, scores, threshold, temperature=0.02):
    """model.py forward, task_type "sts", multi_layer_loss on, normalized: ContrastiveLoss(sts,
    threshold) on the middle layer + 2 Pearson + 0.5 PRO + 5 RankKL on the last layer."""
    q_reps, p_reps = F.normalize(q_reps, dim=-1), F.normalize(p_reps, dim=-1)
    certain_q, certain_p = F.normalize(certain_q, dim=-1), F.normalize(certain_p, dim=-1)
    # ContrastiveLoss._loss_sts (group_size 1)
    sc = (certain_q @ certain_p.t()) / temperature
    valid = scores >= threshold
    if valid.sum() == 0:
        loss_infonce = torch.tensor(0.0)
    else:
        loss_infonce = F.cross_entropy(sc[valid], torch.arange(q_reps.size(0))[valid])
    sim = torch.sum(q_reps * p_reps, dim=-1)
    loss_pearson = 2 * pearson_ref(sim, scores)
    loss_pro = 0.5 * pro_ref(sim, scores, 0.05)
    loss_kl = 5 * rankkl_ref(sim, scores, 0.05)
    return loss_infonce + loss_pearson + loss_pro + loss_kl, (loss_infonce, loss_pro, loss_pearson, loss_kl)


def gen_fidelity(rng):
    out = Out()

    def leaf(name, a):
        t = f32(a).requires_grad_(True)
        out.add(name, t)
        return t

    def emit(name, loss, inputs):
        for t in inputs:
            t.grad = None
        loss.backward()
        out.add(f"{name}.loss", loss.item())
        for k, t in enumerate(inputs):
            out.add(f"{name}.grad{k}", t.grad if t.grad is not None else torch.zeros_like(t))

    L, C, n = 3, 24, 8
    # STS-B as sentence-transformers/stsb ships it: gold in [0, 1], with ties
    y = np.array([0.76, 0.2, 0.52, 0.52, 1.0, 0.0, 0.36, 0.76], dtype=np.float32)
    out.add("sts.gold", y)
    yt = torch.as_tensor(y, dtype=torch.float64)
    # pooled embeddings of hidden_states[0..L] (raw BERT-like scale), a shared component so KL is not trivial
    base = rng.standard_normal((2 * n, C))
    Eg = [leaf(f"sts.emb{l}", base + 0.8 * rng.standard_normal((2 * n, C))) for l in range(L + 1)]
    # Starbucks sts, CoSENT (train_starbucks.py "low"): layers [1, 2, 3], dims [8, 16, 24], 0.3 x KL
    emit("sb_cosent", starbucks_port(Eg, n, 2, "cosent", yt, [1, 2, 3], [8, 16, 24]), Eg)
    # Starbucks sts, MNRL on (anchor, positive, negative) triplets (train_starbucks.py "full")
    En = [leaf(f"nli.emb{l}", rng.standard_normal((3 * 6, C)) * 0.7 + 0.3) for l in range(L + 1)]
    emit("sb_mnrl", starbucks_port(En, 6, 3, "mnrl", None, [1, 2, 3], [8, 16, 24]), En)
    # 2DMSE (Matryoshka2dLoss, CoSENT on STS-B gold), every draw: layer_idx 0..L-2 (hidden 1..L-1),
    # dims from [8, 24] for the last layer and for the drawn layer
    for li in range(L - 1):
        for dl in (8, 24):
            for ds in (8, 24):
                emit(f"m2d.l{li + 1}.f{dl}.s{ds}", matryoshka2d_port(Eg, n, 2, "cosent", yt, li, dl, ds), Eg)
    # CoDiEmb on a sample of the project's wn-sts (real gold, range of the whole train split
    # 0.0625..0.9677): the authors' composite with the relative threshold 0.2 of that range,
    # and with their literal threshold 1.0 (no pair reaches it: L_mid = 0)
    import json
    rows = [json.loads(l) for l in open(os.path.join(HERE, "wn_sts_sample.jsonl"))]
    g = np.array([r["score"] for r in rows], dtype=np.float32)
    m = len(rows)
    out.add("wn.gold", g)
    lo, hi = 0.0625, 0.9677
    out.add("wn.range", np.array([lo, hi], dtype=np.float32))
    gt = torch.as_tensor(g, dtype=torch.float64)
    last = leaf("wn.last", rng.standard_normal((2 * m, C)) + 0.5 * np.tile(rng.standard_normal((1, C)), (2 * m, 1)))
    mid = leaf("wn.mid", rng.standard_normal((2 * m, C)))
    thr = float(np.float32(lo + np.float32(0.2) * np.float32(hi - lo)))
    out.add("wn.threshold", np.array([thr], dtype=np.float32))
    tot, parts = codiemb_sts_port(last[:m], last[m:], mid[:m], mid[m:], gt, thr)
    out.add("wn.terms", np.array([p.item() for p in parts], dtype=np.float32))
    emit("wn.codiemb", tot, [last, mid])
    tot1, parts1 = codiemb_sts_port(last[:m], last[m:], mid[:m], mid[m:], gt, 1.0)
    out.add("wn.terms_thr1", np.array([p.item() for p in parts1], dtype=np.float32))
    # Starbucks retrieval (am.preset.starbucks): dot product of unnormalised rows, T = 1 for the CE
    # and the KL, KL weight 1 with the full-size scores detached; 4 queries, 1 positive + 3 negatives
    Er = [leaf(f"ret.emb{l}", rng.standard_normal((4 * 5, C)) * 0.25) for l in range(L + 1)]
    emit("sb_retrieval", starbucks_retrieval_port(Er, 4, 3, [1, 2, 3], [8, 16, 24]), Er)
    write_fixture(os.path.join(HERE, "fidelity.bin"), out.arrays)


def main():
    if sys.argv[1:] == ["fidelity"]:  # only fidelity.bin (the others are unchanged)
        gen_fidelity(np.random.default_rng(20260101))
        return
    gen_losses(np.random.default_rng(20250101))
    gen_mlm(np.random.default_rng(20250102))
    gen_adamw(np.random.default_rng(20250103))
    gen_lora(np.random.default_rng(20250104))
    gen_pairs(np.random.default_rng(20250105))
    gen_fidelity(np.random.default_rng(20260101))
    print(f"torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()

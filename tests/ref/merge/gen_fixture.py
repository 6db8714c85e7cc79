#!/usr/bin/python3
"""Reference fixture for src/merge (tests/unit/test_merge.c), written in NumPy (float64) from
the papers' and mergekit's formulas (arcee-ai/mergekit: mergekit/merge_methods/*.py and
mergekit/sparsify.py), independent of the C code. Run with Debian's /usr/bin/python3 +
python3-numpy:   /usr/bin/python3 tests/ref/merge/gen_fixture.py

Writes merge.bin (the AMFX container of tests/fixture.h) next to this script:
  tensor:<name>   i32 shape of each tensor of a small BERT-named table, in buffer order
  models          (K, total) float32 fine-tuned models, base + random task vectors
  base            (total,) float32
  case:<label>    (total,) float32 merged output of one case (the cases are listed in CASES;
                  test_merge.c builds the same MergeSpec for each label)

Seeded DARE / DELLA masks use the C random stream: xorshift64* seeded by splitmix64
(src/base am_rng_seed / am_rng_u32 / am_rng_uniform), one stream per (model k, tensor i) seeded
with merge_stream_seed(seed, k, i) (src/merge/merge.h), one draw per element in element order,
keep iff uniform < p. Departures from mergekit kept on purpose (documented in merge.h):
breadcrumbs keeps ranks [n_bot, n - n_top) (mergekit's slice [n_bot:-0] keeps nothing when
gamma*n < 1); DELLA ranks ties by position.
"""
import os
import struct
import sys

import numpy as np

M64 = (1 << 64) - 1
LAYERS = 3
TABLE = [
    ("embeddings.word_embeddings.weight", (20, 8)),
    ("embeddings.LayerNorm.weight", (8,)),
    ("encoder.layer.0.attention.self.query.weight", (8, 8)),
    ("encoder.layer.0.attention.output.LayerNorm.weight", (8,)),
    ("encoder.layer.1.intermediate.dense.weight", (12, 8)),
    ("encoder.layer.1.intermediate.dense.bias", (12,)),
    ("encoder.layer.2.output.dense.weight", (8, 12)),
    ("encoder.layer.2.output.dense.bias", (8,)),
    ("pooler.dense.weight", (8, 8)),
]


class Rng:
    """src/base/base.c am_rng_*"""

    def __init__(self, seed):
        z = (seed + 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        self.s = (z ^ (z >> 31)) | 1

    def u32(self):
        s = self.s
        s ^= s >> 12
        s ^= (s << 25) & M64
        s ^= s >> 27
        self.s = s
        return ((s * 0x2545F4914F6CDD1D) & M64) >> 32

    def uniform(self):
        return (self.u32() >> 8) / 16777216.0


def stream_seed(seed, k, i):
    return (seed ^ ((0x9E3779B97F4A7C15 * (k + 1)) & M64) ^ ((0xC2B2AE3D27D4EB4F * (i + 1)) & M64)) & M64


def layer_of(name):
    p = "encoder.layer."
    return int(name[len(p):].split(".")[0]) if name.startswith(p) else -1


def cls_of(name):
    if "LayerNorm" in name: return "layernorm"
    if name.startswith("embeddings."): return "embeddings"
    if name.startswith("pooler."): return "pooler"
    if ".attention." in name: return "attention"
    return "ffn"


def gradient(vals, layer):
    """mergekit config.evaluate_setting for a list: t = layer/(L-1), t = 0 outside the layers"""
    if not isinstance(vals, list): return vals
    t = 0.0 if layer < 0 else layer / (LAYERS - 1)
    x = t * (len(vals) - 1)
    i0 = int(x); i1 = min(len(vals) - 1, i0 + 1); f = x - i0
    return (1 - f) * vals[i0] + f * vals[i1]


def param(case, key, k, name):
    """a case's parameter: scalar, per-model list, per-layer gradient (dict 'grad'), or per class"""
    v = case.get(key)
    if isinstance(v, dict):  # {"models": [...], "class": {cls: value}}
        c = v.get("class", {})
        if cls_of(name) in c: return float(np.float32(c[cls_of(name)]))
        v = v["models"]
    if isinstance(v, list) and k is not None and isinstance(v[0], (list, float, int)) and len(v) == case["K"]:
        v = v[k]
    return float(np.float32(gradient(v, layer_of(name))))


# ------------------------------------------------------------- sparsification (mergekit)

def l1_rescale(delta, kept):
    before = np.abs(delta).sum(); after = np.abs(kept).sum()
    if before < 1e-7 or after < 1e-7: return kept
    return kept * (before / after)


def magnitude(d32, density):
    n = d32.size
    k = max(1, int(density * n))
    order = np.argsort(-np.abs(d32).ravel(), kind="stable")
    mask = np.zeros(n); mask[order[:k]] = 1
    return mask.reshape(d32.shape)


def outliers(d32, density, gamma):
    n = d32.size
    target = int(density * n); n_top = int(gamma * n); n_bot = n - target - n_top
    if n_bot < 0: n_top += n_bot; n_bot = 0
    idx = np.argsort(np.abs(d32).ravel(), kind="stable")
    mask = np.zeros(n); mask[idx[n_bot:n - n_top]] = 1
    return mask.reshape(d32.shape)


def bernoulli(d32, density, rng):
    dd = float(np.float32(density))
    return np.array([1.0 if rng.uniform() < dd else 0.0 for _ in range(d32.size)]).reshape(d32.shape)


def della_probs(d32, density, eps):
    rows = d32.reshape(1, -1) if d32.ndim < 2 else d32.reshape(d32.shape[0], -1)
    cols = rows.shape[1]
    p = np.zeros(rows.shape)
    for r in range(rows.shape[0]):
        order = np.argsort(np.abs(rows[r]), kind="stable")
        ranks = np.empty(cols); ranks[order] = np.arange(cols)
        rn = ranks / (cols - 1) if cols > 1 else np.full(cols, 0.5)
        p[r] = (density - eps) + rn * 2 * eps
    return p.reshape(d32.shape)


def gta(case, xs, b, name, ti):
    m = case["method"]
    sp = {"ties": "mag", "dare_linear": "rand", "dare_ties": "rand", "della": "della",
          "della_linear": "della", "breadcrumbs": "out", "breadcrumbs_ties": "out"}.get(m)
    cons = m in ("ties", "dare_ties", "della", "breadcrumbs_ties")
    defaults = {"task_arithmetic": (0, 0), "ties": (1, 0), "dare_linear": (0, 1), "dare_ties": (0, 1),
                "della": (1, 1), "della_linear": (0, 1), "breadcrumbs": (0, 0), "breadcrumbs_ties": (0, 0)}
    norm = case.get("normalize", defaults[m][0]); rescale = case.get("rescale", defaults[m][1])
    paper = case.get("paper", 0); seed = case.get("seed", 0)
    lam = param(case, "lambda", None, name) if "lambda" in case else 1.0
    ds, ws = [], []
    for k, x in enumerate(xs):
        d32 = (x - b).astype(np.float32)
        d = d32.astype(np.float64)
        w = param(case, "weight", k, name) if "weight" in case else 1.0
        dens = param(case, "density", k, name) if "density" in case else 1.0
        if sp and dens < 1:
            if sp == "mag":
                mask = magnitude(d32, dens); prob = None
            elif sp == "out":
                g = param(case, "gamma", k, name) if "gamma" in case else 0.01
                mask = outliers(d32, dens, g); prob = None
            elif sp == "rand":
                mask = bernoulli(d32, dens, Rng(stream_seed(seed, k, ti))); prob = np.full(d.shape, dens)
            else:
                e = param(case, "epsilon", k, name) if "epsilon" in case else float(np.float32(0.15))
                prob = della_probs(d32, dens, e)
                rng = Rng(stream_seed(seed, k, ti))
                u = np.array([rng.uniform() for _ in range(d.size)]).reshape(d.shape)
                mask = (u < prob).astype(np.float64)
            kept = d * mask
            if rescale:
                kept = kept / prob * mask if (paper and prob is not None) else (kept if paper else l1_rescale(d, kept))
                kept = np.nan_to_num(kept)
            d = kept
        ds.append(d); ws.append(w)
    D = np.stack(ds); W = np.array(ws).reshape((-1,) + (1,) * b.ndim)
    if "elem" in case:
        W = W * np.stack([case["elem_w"][k][name] for k in range(len(xs))])
    WD = D * W
    if cons:
        vote = (D if paper else WD).sum(0)
        maj = np.where(vote >= 0, 1.0, -1.0)
        mask = np.sign(D if paper else WD) == maj
        mixed = (WD * mask).sum(0)
        div = (W * mask).sum(0)
        div = np.where(div == 0, 1.0, div)
    else:
        mixed = WD.sum(0)
        div = np.broadcast_to(W.sum(0), mixed.shape).copy()
        div = np.where(np.abs(div) < 1e-8, 1.0, div)
    if norm: mixed = mixed / div
    return b + lam * mixed


# --------------------------------------------------------------------- other methods

def slerp(t, v0, v1, DOT=0.9995, eps=1e-8):
    c0, c1 = v0.copy(), v1.copy()
    n0 = np.linalg.norm(v0); n1 = np.linalg.norm(v1)
    if n0 > eps: v0 = v0 / n0
    if n1 > eps: v1 = v1 / n1
    dot = np.sum(v0 * v1)
    if abs(dot) > DOT: return (1 - t) * c0 + t * c1
    th0 = np.arccos(dot); s = np.sin(th0); tht = th0 * t
    return np.sin(th0 - tht) / s * c0 + np.sin(tht) / s * c1


def nuslerp(t, v0, v1, dim=-1, eps=1e-8, flatten=False):
    shape = v0.shape
    if flatten: v0 = v0.reshape(-1); v1 = v1.reshape(-1)
    elif dim != -1: v0 = v0.T; v1 = v1.T
    nz = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-7)
    cos = np.sum(nz(v0) * nz(v1), axis=-1, keepdims=True)
    th = np.arccos(np.clip(cos, -1, 1)); s = np.sin(th)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (np.sin((1 - t) * th) * v0 + np.sin(t * th) * v1) / s
    col = np.abs(s) < eps
    res = np.where(col, (1 - t) * v0 + t * v1, res)
    if dim != -1 and not flatten: res = res.T
    return res.reshape(shape)


def multislerp(xs, w, base=None, normalize=True, eps=1e-8):
    T = np.stack(xs)
    if base is not None: T = T - base
    F = T.reshape(len(xs), -1)
    w = np.array(w)
    if normalize: w = w / w.sum()
    norms = np.linalg.norm(F, axis=-1, keepdims=True)
    U = F / (norms + eps)
    mean = (U * w[:, None]).sum(0); mn = np.linalg.norm(mean)
    if mn < eps:
        res = (T[0] * w[0] + T[1] * w[1])
        return res + base if base is not None else res
    mean = mean / mn
    dots = (U * mean).sum(-1, keepdims=True)
    tang = U - dots * mean
    tr = (tang * w[:, None]).sum(0)
    tn = np.linalg.norm(tr) + eps
    r = mean * np.cos(tn) + tr * (np.sin(tn) / tn)
    r = (r * (norms[:, 0] * w).sum()).reshape(T.shape[1:])
    return r + base if base is not None else r


def karcher(xs, max_iter=10, tol=1e-5):
    al = [1.0 / len(xs)] * len(xs)
    norms, units = [], []
    for t in xs:
        n = np.linalg.norm(t)
        norms.append(n); units.append(t / n if n > 0 else np.zeros_like(t))
    valid = [i for i, n in enumerate(norms) if n > tol]
    va = [al[i] for i in valid]; va = [a / sum(va) for a in va]; vu = [units[i] for i in valid]
    u = sum(a * x for a, x in zip(va, vu)); nu = np.linalg.norm(u)
    u = vu[0].copy() if nu < tol else u / nu
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for a, x in zip(va, vu):
            dot = np.clip(np.sum(u * x), -1, 1); th = np.arccos(dot)
            if th < tol: continue
            T += a * (th / np.sin(th)) * (x - dot * u)
        nt = np.linalg.norm(T)
        if nt < tol: break
        u = np.cos(nt) * u + np.sin(nt) * (T / nt)
        un = np.linalg.norm(u)
        if un > tol: u = u / un
    return sum(a * n for a, n in zip(al, norms)) * u


def model_stock(xs, b, filter_wise=False):
    shape = b.shape
    if filter_wise:
        w0 = b.reshape(1, -1) if b.ndim == 1 else b
        ws = [x.reshape(1, -1) if x.ndim == 1 else x for x in xs]
    else:
        w0 = b.reshape(-1); ws = [x.reshape(-1) for x in xs]
    off = [w - w0 for w in ws]
    cs = []
    for i in range(len(off)):
        for j in range(i + 1, len(off)):
            npd = np.linalg.norm(off[i], axis=-1) * np.linalg.norm(off[j], axis=-1)
            cs.append(np.clip((off[i] * off[j]).sum(-1) / np.maximum(npd, 1e-6), -1, 1))
    c = np.mean(np.stack(cs), axis=0)[..., None] if filter_wise else np.mean(cs)
    N = len(ws)
    t = N * c / (1 + (N - 1) * c)
    return (t * (sum(ws) / N) + (1 - t) * w0).reshape(shape)


def linear(case, xs, name):
    ws = [param(case, "weight", k, name) if "weight" in case else 1.0 for k in range(len(xs))]
    r = sum(w * x for w, x in zip(ws, xs))
    return r / sum(ws) if case.get("normalize", 1) else r


# The cases: test_merge.c's `cases` table builds the same MergeSpec for each label.
CASES = [
    dict(label="linear", method="linear", K=3, weight=[1.0, 2.0, 0.5]),
    dict(label="linear_layers", method="linear", K=3, weight=[[0.0, 1.0], 1.0, 0.5]),
    dict(label="linear_nonorm", method="linear", K=2, weight=[0.3, 0.4], normalize=0),
    dict(label="task_arithmetic", method="task_arithmetic", K=3, weight=[0.5, 1.0, -0.3], **{"lambda": 0.8}),
    dict(label="ties", method="ties", K=3, weight=[1.0, 0.7, 0.4], density=0.5),
    dict(label="ties_paper", method="ties", K=3, weight=[1.0, 0.7, 0.4], density=0.5, paper=1),
    dict(label="ties_layers", method="ties", K=3, density=[0.3, 0.9],
         weight={"models": [1.0, 1.0, 1.0], "class": {"attention": 2.0}}),
    dict(label="dare_linear", method="dare_linear", K=3, weight=[0.6, 0.3, 0.5], density=0.6, seed=7),
    dict(label="dare_ties", method="dare_ties", K=3, weight=[1.0, 0.5, 0.8], density=0.5, seed=11),
    dict(label="dare_ties_paper", method="dare_ties", K=3, weight=[1.0, 0.5, 0.8], density=0.5, seed=11, paper=1),
    dict(label="della", method="della", K=3, weight=[1.0, 0.6, 0.4], density=0.5, epsilon=0.2, seed=3),
    dict(label="della_linear_paper", method="della_linear", K=3, weight=[0.5, 0.5, 0.5], density=0.6,
         epsilon=0.1, seed=5, paper=1),
    dict(label="breadcrumbs", method="breadcrumbs", K=3, weight=[0.5, 0.5, 0.5], density=0.7, gamma=0.05),
    dict(label="breadcrumbs_ties", method="breadcrumbs_ties", K=3, weight=[1.0, 0.6, 0.4], density=0.6, gamma=0.1),
    dict(label="slerp", method="slerp", K=2, t=0.3),
    dict(label="slerp_layers", method="slerp", K=2, t=[0.0, 0.5, 1.0]),
    dict(label="nuslerp_flat", method="nuslerp", K=2, weight=[1.0, 3.0], base=1),
    dict(label="nuslerp_rows", method="nuslerp", K=2, weight=[2.0, 1.0], flatten=0),
    dict(label="nuslerp_cols", method="nuslerp", K=2, weight=[1.0, 1.0], flatten=0, row_wise=1, base=1),
    dict(label="multislerp", method="multislerp", K=3, weight=[1.0, 2.0, 3.0], base=1),
    dict(label="multislerp_nobase", method="multislerp", K=3, weight=[1.0, 1.0, 2.0]),
    dict(label="karcher", method="karcher", K=3),
    dict(label="model_stock", method="model_stock", K=3),
    dict(label="model_stock_filter", method="model_stock", K=3, filter_wise=1),
]


def run_case(case, models, base):
    out = []
    K = case["K"]
    for ti, (name, shape) in enumerate(TABLE):
        xs = [m[name].astype(np.float64) for m in models[:K]]
        b = base[name].astype(np.float64)
        b32 = base[name]
        meth = case["method"]
        if meth == "linear":
            r = linear(case, xs, name)
        elif meth == "slerp":
            r = slerp(param(case, "t", None, name), xs[0], xs[1])
        elif meth == "nuslerp":
            w = [param(case, "weight", k, name) for k in range(2)]
            t = 0.5 if abs(sum(w)) < 1e-6 else w[1] / sum(w)
            fl = bool(case.get("flatten", 1)); dim = 0 if case.get("row_wise", 0) else -1
            if case.get("base"):
                r = b + nuslerp(t, xs[0] - b, xs[1] - b, dim=dim, flatten=fl)
            else:
                r = nuslerp(t, xs[0], xs[1], dim=dim, flatten=fl)
        elif meth == "multislerp":
            w = [param(case, "weight", k, name) for k in range(K)]
            r = multislerp(xs, w, b if case.get("base") else None)
        elif meth == "karcher":
            r = karcher(xs)
        elif meth == "model_stock":
            r = model_stock(xs, b, bool(case.get("filter_wise", 0)))
        else:
            xs32 = [m[name] for m in models[:K]]
            r = gta(case, xs32, b32, name, ti)
        out.append(np.asarray(r, dtype=np.float64).reshape(-1))
    return np.concatenate(out).astype(np.float32)


def main():
    rng = np.random.default_rng(20261207)
    base = {n: rng.normal(0, 0.5, s).astype(np.float32) for n, s in TABLE}
    K = 3
    models = []
    for k in range(K):
        # task vectors partly shared (so signs agree often) and partly model-specific
        models.append({n: (base[n] + 0.05 * rng.normal(0, 1, s) + 0.1 * rng.normal(0, 1, s) * (k + 1) / 2
                           + 0.03 * np.sin(np.arange(np.prod(s)).reshape(s) + k)).astype(np.float32)
                       for n, s in TABLE})
    arrays = [("tensor:" + n, np.array(s, dtype=np.int32)) for n, s in TABLE]
    arrays.append(("models", np.stack([np.concatenate([m[n].ravel() for n, _ in TABLE]) for m in models])))
    arrays.append(("base", np.concatenate([base[n].ravel() for n, _ in TABLE])))
    for case in CASES:
        arrays.append(("case:" + case["label"], run_case(case, models, base)))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "merge.bin")
    with open(path, "wb") as f:
        f.write(b"AMFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, a in arrays:
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", 0 if a.dtype == np.float32 else 1, a.ndim))
            f.write(struct.pack("<" + "I" * a.ndim, *a.shape))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
    print(f"wrote {path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference fixture for the data-driven merges (src/merge/merge_data.h, tests/unit/test_merge_data.c),
written in NumPy (float64) from the papers' formulas, independent of the C code:
  Fisher merging (Matena & Raffel; bloomberg/dataless-model-merging avg_merger.py, fisher_smooth),
  RegMean (Jin et al.; same repository: reduce_non_diag, W = (sum G)^-1 sum G W^T),
  LM-Cocktail weights (FlagEmbedding LM_Cocktail: softmax(-loss / T)),
  CoDiEmb delta-guided fusion (our reading of arXiv 2508.11442; g and axis are options).
Run with Debian's /usr/bin/python3 + python3-numpy:  /usr/bin/python3 tests/ref/merge/gen_data_fixture.py

Writes merge_data.bin (AMFX, tests/fixture.h): tensor:<name> shapes, models (K, total), base,
fisher (K, total), gram:<tensor>:<k> (in, in) float32, losses (K,), and case:<label> outputs.
"""
import os
import struct
import sys

import numpy as np

TABLE = [
    ("embeddings.word_embeddings.weight", (10, 6)),
    ("embeddings.LayerNorm.weight", (6,)),
    ("encoder.layer.0.attention.self.query.weight", (6, 6)),
    ("encoder.layer.0.attention.self.query.bias", (6,)),
    ("encoder.layer.0.intermediate.dense.weight", (8, 6)),
    ("encoder.layer.1.output.dense.weight", (6, 8)),
    ("pooler.dense.weight", (6, 6)),
]
LINEAR = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight",
          "encoder.layer.1.output.dense.weight", "pooler.dense.weight"]
K = 3


def flat(d):
    return np.concatenate([d[n].ravel() for n, _ in TABLE])


def fisher(models, F, w, eps):
    num = sum(w[k] * (F[k].astype(np.float64) + eps) * models[k] for k in range(K))
    den = sum(w[k] * (F[k].astype(np.float64) + eps) for k in range(K))
    return num / den


def regmean(models, grams, alpha, w):
    out = {}
    for n, s in TABLE:
        if n in LINEAR:
            Gs = []
            for k in range(K):
                G = grams[n][k].astype(np.float64)
                G = G * (alpha + np.eye(G.shape[0]) * (1 - alpha))  # reduce_non_diag
                Gs.append(w[k] * G)
            A = sum(Gs)
            B = sum(Gs[k] @ models[k][n].astype(np.float64).T for k in range(K))
            out[n] = np.linalg.solve(A, B).T
        else:
            out[n] = sum(w[k] * models[k][n].astype(np.float64) for k in range(K)) / sum(w)
    return flat(out)


def fusion(models, base, g, T, axis):
    out = {}
    for n, s in TABLE:
        b = base[n].astype(np.float64)
        d = np.stack([models[k][n].astype(np.float64) - b for k in range(K)])  # (K, ...)
        a = np.abs(d)
        if axis == "row" and len(s) >= 2:
            sc = np.repeat(a.mean(axis=-1, keepdims=True), s[-1], axis=-1)
        elif axis == "element":
            sc = a
        else:
            sc = np.broadcast_to(a.reshape(K, -1).mean(axis=1).reshape((K,) + (1,) * len(s)), a.shape)
        if g == "softmax":
            e = np.exp(sc / T - (sc / T).max(axis=0, keepdims=True))
            w = e / e.sum(axis=0, keepdims=True)
        else:
            gv = sc if g == "abs" else sc * sc
            tot = gv.sum(axis=0, keepdims=True)
            w = np.where(tot > 0, gv / np.where(tot > 0, tot, 1), 1.0 / K)
        out[n] = b + (w * d).sum(axis=0)
    return flat(out)


def main():
    rng = np.random.default_rng(20261208)
    base = {n: rng.normal(0, 0.5, s).astype(np.float32) for n, s in TABLE}
    models = [{n: (base[n] + 0.1 * rng.normal(0, 1, s) * (k + 1)).astype(np.float32) for n, s in TABLE}
              for k in range(K)]
    # one delta exactly zero in model 0 and 1 at the same elements: the uniform fallback
    for k in range(2):
        models[k]["embeddings.LayerNorm.weight"][0] = base["embeddings.LayerNorm.weight"][0]
    models[2]["embeddings.LayerNorm.weight"][0] = base["embeddings.LayerNorm.weight"][0]
    F = [(rng.normal(0, 1, flat(base).shape) ** 2 * (k + 1)).astype(np.float32) for k in range(K)]
    grams = {}
    for n, s in TABLE:
        if n in LINEAR:
            grams[n] = []
            for k in range(K):
                X = rng.normal(0, 1, (40, s[1])) * (1 + 0.5 * np.arange(s[1])) + 0.3 * k
                grams[n].append((X.T @ X / 40).astype(np.float32))
    losses = np.array([0.9, 0.4, 1.7], dtype=np.float32)
    arrays = [("tensor:" + n, np.array(s, dtype=np.int32)) for n, s in TABLE]
    arrays.append(("models", np.stack([flat(m) for m in models])))
    arrays.append(("base", flat(base)))
    arrays.append(("fisher", np.stack(F)))
    for n in LINEAR:
        for k in range(K):
            arrays.append((f"gram:{n}:{k}", grams[n][k]))
    arrays.append(("losses", losses))
    m64 = [{n: m[n].astype(np.float64) for n, _ in TABLE} for m in models]
    fm = [flat(m).astype(np.float64) for m in models]
    cases = [
        ("fisher", fisher(fm, F, [1, 1, 1], 1e-10)),
        ("fisher_w", fisher(fm, F, [1.0, 2.0, 0.5], 1e-10)),
        ("fisher_eps", fisher(fm, F, [1, 1, 1], 0.5)),
        ("regmean", regmean(m64, grams, 0.9, [1, 1, 1])),
        ("regmean_a1", regmean(m64, grams, 1.0, [1, 1, 1])),
        ("regmean_w", regmean(m64, grams, 0.5, [1.0, 2.0, 0.5])),
    ]
    lw = np.exp(-losses.astype(np.float64) / 5.0)
    lw /= lw.sum()
    cases.append(("lm_cocktail_w", lw))
    lw2 = np.exp(-losses.astype(np.float64) / 0.1)
    lw2 /= lw2.sum()
    cases.append(("lm_cocktail_w_t01", lw2))
    cases.append(("lm_cocktail", sum(lw[k] * fm[k] for k in range(K))))
    for g, T, axis in [("abs", 1, "element"), ("square", 1, "element"), ("square", 1, "row"), ("abs", 1, "tensor"),
                       ("softmax", 0.05, "element"), ("softmax", 0.1, "row")]:
        cases.append((f"fusion:{g}:{axis}:{T}", fusion(models, base, g, T, axis)))
    for label, a in cases:
        arrays.append(("case:" + label, np.asarray(a, dtype=np.float32)))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "merge_data.bin")
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

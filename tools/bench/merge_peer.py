#!/usr/bin/python3
"""NumPy peer of `amalgam bench merge` (src/cli/cmd_bench_merge.c).

Builds K+1 models as dicts of float32 arrays with the tensor sizes given by --sizes (model 0 is
the base, the others base + a perturbation, as the C side), then times the same merges as the
C benchmark, per tensor as mergekit does (mergekit/merge_methods/*.py, here in NumPy):

  linear         mergekit's form: stack, weight, sum, divide by Σw
  linear_inplace the same merge written for NumPy speed: accumulate into one output buffer
  task_arithmetic base + λ Σ w_m (θ_m − θ_base)
  ties           density 0.5: per model the top-k |δ| by np.partition (O(n), faster than
                 mergekit's argsort), sign election on the weighted δ, disjoint mean
  multislerp     mergekit's multislerp.py, no base

Prints one JSON line per (method, K): {"method", "k", "ms"} (best of --reps), and a first line
with the NumPy version and thread count. Run with Debian's /usr/bin/python3 + python3-numpy.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def linear(ts, w):
    st = np.stack(ts)
    wv = np.asarray(w, dtype=np.float32).reshape((-1,) + (1,) * (st.ndim - 1))
    return (wv * st).sum(0) / wv.sum(0)


def linear_inplace(ts, w):
    c = np.asarray(w, dtype=np.float64) / sum(w)
    out = np.multiply(ts[0], np.float32(c[0]))
    tmp = np.empty_like(out)
    for t, cm in zip(ts[1:], c[1:]):
        np.multiply(t, np.float32(cm), out=tmp)
        out += tmp
    return out


def task_arithmetic(ts, w, base, lam=1.0):
    d = np.stack([t - base for t in ts])
    wv = np.asarray(w, dtype=np.float32).reshape((-1,) + (1,) * (d.ndim - 1))
    return base + np.float32(lam) * (wv * d).sum(0)


def ties(ts, w, base, density=0.5):
    ds = []
    for t in ts:
        d = t - base
        a = np.abs(d).ravel()
        k = max(1, int(density * a.size))
        thr = np.partition(a, a.size - k)[a.size - k]
        ds.append(np.where(np.abs(d) >= thr, d, np.float32(0)))
    d = np.stack(ds)
    wv = np.asarray(w, dtype=np.float32).reshape((-1,) + (1,) * (d.ndim - 1))
    wd = d * wv
    maj = np.where(wd.sum(0) >= 0, np.float32(1), np.float32(-1))
    mask = np.sign(wd) == maj
    mixed = (wd * mask).sum(0)
    div = (wv * mask).sum(0)
    div[div == 0] = 1
    return base + mixed / div


def multislerp(ts, w, eps=1e-8):
    st = np.stack(ts)
    flat = st.reshape(st.shape[0], -1)
    wv = np.asarray(w, dtype=np.float32)
    wv = wv / wv.sum()
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    unit = flat / (norms + eps)
    mean = (unit * wv[:, None]).sum(0)
    mean = mean / np.linalg.norm(mean)
    dots = (unit * mean).sum(-1, keepdims=True)
    tang = unit - dots * mean
    tr = (tang * wv[:, None]).sum(0)
    tn = np.linalg.norm(tr) + eps
    res = mean * np.cos(tn) + tr * (np.sin(tn) / tn)
    return (res * (norms[:, 0] * wv).sum()).reshape(st.shape[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", required=True, help="comma-separated tensor sizes (floats)")
    ap.add_argument("--ks", default="2,4,8")
    ap.add_argument("--methods", default="linear,linear_inplace,task_arithmetic,ties,multislerp")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    ks = [int(x) for x in a.ks.split(",")]
    print(json.dumps({"numpy": np.__version__, "threads": os.environ.get("OPENBLAS_NUM_THREADS", "")}), flush=True)
    rng = np.random.default_rng(1)
    kmax = max(ks)
    base = [rng.standard_normal(n, dtype=np.float32) * np.float32(0.02) for n in sizes]
    models = [[b + rng.standard_normal(n, dtype=np.float32) * np.float32(0.002) for b, n in zip(base, sizes)]
              for _ in range(kmax)]
    for k in ks:
        w = [1.0 + 0.1 * i for i in range(k)]
        for meth in a.methods.split(","):
            best = None
            for _ in range(a.reps):
                t0 = time.perf_counter()
                for ti in range(len(sizes)):
                    ts = [models[m][ti] for m in range(k)]
                    if meth == "linear": linear(ts, w)
                    elif meth == "linear_inplace": linear_inplace(ts, w)
                    elif meth == "task_arithmetic": task_arithmetic(ts, w, base[ti])
                    elif meth == "ties": ties(ts, w, base[ti])
                    elif meth == "multislerp": multislerp(ts, w)
                    else: sys.exit(f"unknown method {meth}")
                dt = time.perf_counter() - t0
                best = dt if best is None or dt < best else best
            print(json.dumps({"method": meth, "k": k, "ms": best * 1e3}), flush=True)


if __name__ == "__main__":
    main()

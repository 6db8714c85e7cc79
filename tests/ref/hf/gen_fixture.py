#!/usr/bin/python3
"""Generate the small Hugging Face model directories under tests/ref/hf/.

Run with Debian's PyTorch:   /usr/bin/python3 tests/ref/hf/gen_fixture.py
(needs python3-torch and python3-numpy; transformers / safetensors are NOT needed:
safetensors files are written by hand -- u64 header length, JSON header padded with
spaces to a multiple of 8 as the safetensors library does, raw little-endian data).

The model is BERT written with torch.nn modules whose state_dict names are exactly
Hugging Face BertModel's (embeddings.word_embeddings.weight, encoder.layer.N.attention.
self.query.weight, ..., pooler.dense.weight), so the files are what
BertModel.save_pretrained(safe_serialization=True) would write.

Fixtures (each directory is self-contained):
  bert_tiny/          F32, BertModel names, pooler; 2 layers, hidden 32, 2 heads, FFN 64,
                      32 positions; tokenizer_config.json (uncased).
  bert_mlm_f16/       F16, BertForMaskedLM checkpoint: "bert." prefix, NO pooler, extra
                      cls.predictions.* tensors; 1 layer; tokenizer_config.json cased with
                      the "no limit" model_max_length 1e30.
  bert_pretrain_bf16/ BF16, BertForPreTraining checkpoint: "bert." prefix, TF-era LayerNorm
                      gamma/beta names, pooler, cls.predictions.* and cls.seq_relationship.*,
                      and an I64 bert.embeddings.position_ids buffer; hidden 16, 4 heads, 1 layer; no
                      tokenizer_config.json.
  st_cls_norm/        sentence-transformers layout (modules.json: Transformer "", Pooling
                      "1_Pooling" with CLS pooling, Normalize "2_Normalize"),
                      sentence_bert_config.json max_seq_length 16; F32, hidden 16, 1 layer,
                      FFN 32, 16 positions, pooler. (git does not keep the empty 2_Normalize/ directory;
                      neither amalgam nor sentence-transformers reads anything from it.)

Expected values go to expected/<fixture>.json:
  tensors: per encoder tensor (canonical BertModel name) the file's own name, shape, the
           first 3 values and the float64 sum and sum of squares of the values as float32
           (after F16/BF16 rounding) -- what the importer must produce.
  input_ids / token_type_ids / attention_mask: a padded batch (B=4) incl. a sentence pair
           and padding; T = 32 (bert_*) or 16 (st_cls_norm).
  mean / cls / pooler: mean-pooled (over attention_mask) and CLS last hidden states, and
           BertModel's pooler output (tanh(dense(h_cls))) or null without a pooler.
  layer_mean: mean-pooled hidden states of every layer, index 0 = embedding output.
  sentence_embedding: what sentence-transformers returns (pooling of modules.json,
           then L2 normalisation when Normalize is present).
The forward pass runs in eval mode (no dropout) in float64 on the stored float32 weights,
with exact erf GELU, LayerNorm eps from the config (1e-12) and the additive attention mask
(1 - mask) * torch.finfo(torch.float32).min as current transformers does (older versions
used -10000; both give exactly zero attention weight to padding in float32). The float32
forward is checked against it (max abs difference printed, must be < 1e-5).
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# ~100 tokens: specials at BERT's ids ([PAD]=0, [UNK]=100 in the real vocab; here
# compact), punctuation, digits, letters, words and ## continuation pieces.
VOCAB = (["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
         + list("!\"#$%&'(),-./:;?@")
         + list("0123456789")
         + list("abcdefghijklmnopqrstuvwxyz")
         + ["the", "of", "and", "to", "in", "is", "was", "for", "on", "with", "that",
            "model", "merge", "text", "word", "token", "hello", "world", "cat", "dog", "run",
            "em", "un", "re", "##s", "##ing", "##ed", "##er", "##ly", "##able", "##bed",
            "##ding", "##izer", "##ning", "##e", "##a", "##o", "##n", "##t", "##r"])
assert len(VOCAB) == len(set(VOCAB))


class Embeddings(nn.Module):
    def __init__(s, V, C, P, TV, eps):
        super().__init__()
        s.word_embeddings = nn.Embedding(V, C)
        s.position_embeddings = nn.Embedding(P, C)
        s.token_type_embeddings = nn.Embedding(TV, C)
        s.LayerNorm = nn.LayerNorm(C, eps=eps)


class Dense(nn.Module):  # attention.output / output: dense + LayerNorm
    def __init__(s, cin, C, eps):
        super().__init__()
        s.dense = nn.Linear(cin, C)
        s.LayerNorm = nn.LayerNorm(C, eps=eps)


class SelfAttn(nn.Module):
    def __init__(s, C):
        super().__init__()
        s.query = nn.Linear(C, C)
        s.key = nn.Linear(C, C)
        s.value = nn.Linear(C, C)


class Attention(nn.Module):
    def __init__(s, C, eps):
        super().__init__()
        setattr(s, "self", SelfAttn(C))
        s.output = Dense(C, C, eps)


class Intermediate(nn.Module):
    def __init__(s, C, FF):
        super().__init__()
        s.dense = nn.Linear(C, FF)


class Layer(nn.Module):
    def __init__(s, C, FF, eps):
        super().__init__()
        s.attention = Attention(C, eps)
        s.intermediate = Intermediate(C, FF)
        s.output = Dense(FF, C, eps)


class Encoder(nn.Module):
    def __init__(s, C, FF, L, eps):
        super().__init__()
        s.layer = nn.ModuleList([Layer(C, FF, eps) for _ in range(L)])


class Pooler(nn.Module):
    def __init__(s, C):
        super().__init__()
        s.dense = nn.Linear(C, C)


class Bert(nn.Module):
    """BertModel with HF parameter names; forward returns (hidden states per layer, pooled)."""

    def __init__(s, cfg, pooler=True):
        super().__init__()
        s.cfg = cfg
        C, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        s.embeddings = Embeddings(cfg["vocab_size"], C, cfg["max_position_embeddings"],
                                  cfg["type_vocab_size"], eps)
        s.encoder = Encoder(C, cfg["intermediate_size"], cfg["num_hidden_layers"], eps)
        s.pooler = Pooler(C) if pooler else None

    def forward(s, ids, tt, mask):
        B, T = ids.shape
        NH = s.cfg["num_attention_heads"]
        C = s.cfg["hidden_size"]
        HS = C // NH
        e = s.embeddings
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = e.word_embeddings(ids) + e.position_embeddings(pos) + e.token_type_embeddings(tt)
        x = e.LayerNorm(x)
        dt = x.dtype
        ext = (1.0 - mask[:, None, None, :].to(dt)) * torch.finfo(torch.float32).min
        hs = [x]
        for ly in s.encoder.layer:
            sa = getattr(ly.attention, "self")

            def heads(t):
                return t.view(B, T, NH, HS).transpose(1, 2)
            q, k, v = heads(sa.query(x)), heads(sa.key(x)), heads(sa.value(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(HS) + ext
            p = torch.softmax(scores, dim=-1)
            ctx = (p @ v).transpose(1, 2).reshape(B, T, C)
            a = ly.attention.output.LayerNorm(ly.attention.output.dense(ctx) + x)
            h = F.gelu(ly.intermediate.dense(a))  # exact erf GELU
            x = ly.output.LayerNorm(ly.output.dense(h) + a)
            hs.append(x)
        pooled = torch.tanh(s.pooler.dense(x[:, 0])) if s.pooler is not None else None
        return hs, pooled


def bert_config(C, L, NH, FF, P, arch):
    return {
        "architectures": [arch], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": C, "initializer_range": 0.02,
        "intermediate_size": FF, "layer_norm_eps": 1e-12, "max_position_embeddings": P,
        "model_type": "bert", "num_attention_heads": NH, "num_hidden_layers": L,
        "pad_token_id": 0, "position_embedding_type": "absolute", "torch_dtype": "float32",
        "type_vocab_size": 2, "use_cache": True, "vocab_size": len(VOCAB),
    }


def randomize(model, gen):
    """Weights far from BERT's init (std 0.02) so that every tensor matters in the output."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "LayerNorm.bias" in name or name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:  # linear weights (out, in)
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def round_to(t, dtype):
    """float32 tensor -> (float32 tensor holding the rounded values, raw bytes, dtype name)."""
    t = t.detach().to(torch.float32).contiguous()
    if dtype == "F32":
        return t, t.numpy().astype("<f4").tobytes()
    if dtype == "F16":
        h = t.numpy().astype(np.float16)  # round to nearest even
        return torch.from_numpy(h.astype(np.float32)), h.astype("<f2").tobytes()
    if dtype == "BF16":
        b = t.to(torch.bfloat16)  # round to nearest even
        return b.to(torch.float32), b.view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, entries, metadata):
    """entries: list of (name, dtype, shape, raw bytes)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in entries:
            f.write(raw)


def f9(x):
    """A float32 value as the shortest-enough decimal (9 significant digits round-trips)."""
    return float("%.9g" % float(x))


def nested(a):
    if isinstance(a, np.ndarray):
        a = a.tolist()
    if isinstance(a, list):
        return [nested(x) for x in a]
    return f9(a)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_compact(path, obj):
    """One top-level key per line (and one line per tensor), arrays on one line."""
    def one(v):
        return json.dumps(v, separators=(",", ":"))
    lines = []
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            inner = ",\n".join("    %s: %s" % (json.dumps(kk), one(vv)) for kk, vv in v.items())
            lines.append("  %s: {\n%s\n  }" % (json.dumps(k), inner))
        else:
            lines.append("  %s: %s" % (json.dumps(k), one(v)))
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def batch(T, pair_len):
    """4 rows: full length, a sentence pair, a short row, [CLS] [SEP] only."""
    ids = torch.zeros(4, T, dtype=torch.long)
    tt = torch.zeros(4, T, dtype=torch.long)
    mask = torch.zeros(4, T, dtype=torch.long)
    g = torch.Generator().manual_seed(7)
    cls, sep = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")

    def fill(r, n, second=0):
        words = torch.randint(7, len(VOCAB), (n,), generator=g)
        words[0] = cls
        words[n - 1] = sep
        if second:
            words[n - second - 1] = sep
            tt[r, n - second:n] = 1
        ids[r, :n] = words
        mask[r, :n] = 1
    fill(0, T)
    fill(1, pair_len, second=4)
    fill(2, 5)
    fill(3, 2)
    return ids, tt, mask


def pool_mean(h, mask):
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def make_fixture(name, cfg, *, dtype, prefix="", pooler=True, gamma_beta=False, extras=(),
                 tok_config=None, st=None, T=32, seed=0):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    gen = torch.Generator().manual_seed(seed)
    model = Bert(cfg, pooler=pooler)
    randomize(model, gen)

    entries, checks = [], {}
    sd = model.state_dict()
    rounded = {}
    for k, t in sd.items():
        r, raw = round_to(t, dtype)
        rounded[k] = r
        fname = prefix + k
        if gamma_beta and ".LayerNorm." in fname:
            fname = fname.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        entries.append((fname, dtype, tuple(t.shape), raw))
        v = r.numpy().astype(np.float64).ravel()
        checks[k] = {"file_name": fname, "shape": list(t.shape), "first": nested(r.numpy().ravel()[:3]),
                     "sum": float(v.sum()), "sumsq": float((v * v).sum())}
    # heads and buffers the encoder does not use
    C = cfg["hidden_size"]
    for ename, shape, edt in extras:
        if edt == "I64":
            raw = np.arange(int(np.prod(shape)), dtype="<i8").reshape(shape).tobytes()
        else:
            _, raw = round_to(0.1 * torch.randn(shape, generator=gen), edt)
        entries.append((ename, edt, tuple(shape), raw))
    # the safetensors library sorts tensors by name within a dtype; mimic that
    entries.sort(key=lambda e: e[0])
    write_safetensors(os.path.join(out, "model.safetensors"), entries, {"format": "pt"})
    write_json(os.path.join(out, "config.json"), cfg)
    shutil.copyfile(os.path.join(HERE, "vocab.txt"), os.path.join(out, "vocab.txt"))
    if tok_config is not None:
        write_json(os.path.join(out, "tokenizer_config.json"), tok_config)
    if st is not None:
        mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if st["normalize"]:
            mods.append({"idx": 2, "name": "2", "path": "2_Normalize",
                         "type": "sentence_transformers.models.Normalize"})
        write_json(os.path.join(out, "modules.json"), mods)
        write_json(os.path.join(out, "sentence_bert_config.json"),
                   {"max_seq_length": st["max_seq_length"], "do_lower_case": False})
        write_json(os.path.join(out, "config_sentence_transformers.json"),
                   {"__version__": {"sentence_transformers": "2.2.2", "transformers": "4.30.0",
                                    "pytorch": "1.13.0"}})
        os.makedirs(os.path.join(out, "1_Pooling"))
        write_json(os.path.join(out, "1_Pooling", "config.json"), {
            "word_embedding_dimension": C,
            "pooling_mode_cls_token": st["pooling"] == "cls",
            "pooling_mode_mean_tokens": st["pooling"] == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False})
        if st["normalize"]:
            os.makedirs(os.path.join(out, "2_Normalize"))

    # expected outputs from the rounded weights, float64 forward (and a float32 cross-check)
    model.load_state_dict(rounded)
    model.eval()
    ids, tt, mask = batch(T, pair_len=min(12, T))
    with torch.no_grad():
        hs, pooled = model.double()(ids, tt, mask)
        hs32, _ = model.float()(ids, tt, mask)
    d32 = (hs32[-1].double() - hs[-1]).abs().max().item()
    assert d32 < 1e-5, d32
    last = hs[-1]
    mean, cls = pool_mean(last, mask), last[:, 0]
    exp = {
        "fixture": name,
        "mask_value": "(1 - attention_mask) * torch.finfo(torch.float32).min",
        "compute": "float64 forward on the stored (rounded) weights, eval mode",
        "input_ids": ids.tolist(), "token_type_ids": tt.tolist(), "attention_mask": mask.tolist(),
        "mean": nested(mean.numpy()), "cls": nested(cls.numpy()),
        "pooler": nested(pooled.numpy()) if pooled is not None else None,
        "layer_mean": [nested(pool_mean(h, mask).numpy()) for h in hs],
    }
    if st is not None:
        se = cls if st["pooling"] == "cls" else mean
        if st["normalize"]:
            se = se / se.norm(dim=1, keepdim=True).clamp(min=1e-12)
        exp["sentence_embedding"] = nested(se.numpy())
    exp["tensors"] = checks
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    write_compact(os.path.join(HERE, "expected", name + ".json"), exp)
    print("%-20s %s  float32-vs-float64 max |diff| %.2e" % (name, dtype, d32))


def main():
    torch.manual_seed(0)
    with open(os.path.join(HERE, "vocab.txt"), "w") as f:
        f.write("".join(t + "\n" for t in VOCAB))
    V = len(VOCAB)
    C = 16  # the F16 / BF16 checkpoints are kept small
    mlm_extras = [("cls.predictions.bias", (V,)),
                  ("cls.predictions.transform.LayerNorm.bias", (C,)),
                  ("cls.predictions.transform.LayerNorm.weight", (C,)),
                  ("cls.predictions.transform.dense.bias", (C,)),
                  ("cls.predictions.transform.dense.weight", (C, C))]

    make_fixture("bert_tiny", bert_config(32, 2, 2, 64, 32, "BertModel"), dtype="F32",
                 tok_config={"do_lower_case": True, "model_max_length": 32, "tokenizer_class": "BertTokenizer",
                             "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
                             "pad_token": "[PAD]", "mask_token": "[MASK]"}, seed=1)
    make_fixture("bert_mlm_f16", bert_config(C, 1, 2, 32, 32, "BertForMaskedLM"), dtype="F16",
                 prefix="bert.", pooler=False,
                 extras=[(n, s, "F16") for n, s in mlm_extras],
                 tok_config={"do_lower_case": False, "strip_accents": None,
                             "model_max_length": 1000000000000000019884624838656,
                             "tokenizer_class": "BertTokenizer"}, seed=2)
    make_fixture("bert_pretrain_bf16", bert_config(C, 1, 4, 32, 32, "BertForPreTraining"), dtype="BF16",
                 prefix="bert.", gamma_beta=True,
                 extras=[(n, s, "BF16") for n, s in mlm_extras]
                 + [("cls.seq_relationship.bias", (2,), "BF16"), ("cls.seq_relationship.weight", (2, C), "BF16"),
                    ("bert.embeddings.position_ids", (1, 32), "I64")], seed=3)
    make_fixture("st_cls_norm", bert_config(16, 1, 2, 32, 16, "BertModel"), dtype="F32",
                 st={"pooling": "cls", "normalize": True, "max_seq_length": 16}, T=16, seed=4,
                 tok_config={"do_lower_case": True, "model_max_length": 16, "tokenizer_class": "BertTokenizer"})


if __name__ == "__main__":
    sys.exit(main())

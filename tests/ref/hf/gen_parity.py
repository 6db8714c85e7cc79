#!/usr/bin/python3
"""Text-level parity fixture: texts -> Hugging Face tokenization -> BertModel -> sentence embedding.

Run with Debian's PyTorch:   /usr/bin/python3 tests/ref/hf/gen_parity.py

For each committed model directory (bert_tiny: plain HF dir -> mean pooling, no normalisation;
st_cls_norm: sentence-transformers dir -> CLS pooling + Normalize, max_seq_length 16) the texts in
parity_texts.txt are tokenized by the Python port of transformers' BertTokenizer
(tests/ref/tokenizer/gen_fixture.py), truncated to the model's max length, run through the
torch.nn BertModel of gen_fixture.py in float64 on the stored weights, and pooled as
sentence-transformers does. Writes expected/parity_<model>.json:
  {"texts": [...], "input_ids": [[...]], "embeddings": [[...]]}
tests/cli/test_parity.sh imports the directory with `amalgam import`, runs `amalgam encode` on
the same texts and requires max |diff| <= 1e-5 and cosine >= 0.99999 per sentence.
"""
import importlib.util
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hfgen = load("hf_gen", os.path.join(HERE, "gen_fixture.py"))
tokref = load("tok_ref", os.path.join(HERE, "..", "tokenizer", "gen_fixture.py"))


def read_safetensors(path):
    d = open(path, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    hdr = json.loads(d[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", "parity fixtures use F32 models"
        b, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(d[8 + n + b:8 + n + e]), dtype=torch.float32)
        out[k] = t.reshape(v["shape"]) if v["shape"] else t
    return out


def run(model_dir, pooling, normalize, max_len, texts):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    sd = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = hfgen.Bert(cfg, pooler="pooler.dense.weight" in sd)
    model.load_state_dict(sd, strict=True)
    model = model.double().eval()
    tok = tokref.BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    ids = [tok.encode_pair(t, None, max_len)[0] for t in texts]
    T = max(len(x) for x in ids)
    inp = torch.zeros(len(ids), T, dtype=torch.long)
    mask = torch.zeros(len(ids), T, dtype=torch.long)
    for i, x in enumerate(ids):
        inp[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    with torch.no_grad():
        hs, _ = model(inp, torch.zeros_like(inp), mask)
        h = hs[-1]
        e = h[:, 0] if pooling == "cls" else hfgen.pool_mean(h, mask)
        if normalize:
            e = torch.nn.functional.normalize(e, dim=-1)
    return ids, e.float().tolist()


def main():
    texts = open(os.path.join(HERE, "parity_texts.txt"), encoding="utf-8").read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    for name, pooling, normalize, max_len in (("bert_tiny", "mean", False, 32), ("st_cls_norm", "cls", True, 16)):
        ids, emb = run(os.path.join(HERE, name), pooling, normalize, max_len, texts)
        out = {"model": name, "pooling": pooling, "normalize": normalize, "max_length": max_len,
               "texts": texts, "input_ids": ids, "embeddings": [[float("%.9g" % x) for x in r] for r in emb]}
        with open(os.path.join(HERE, "expected", "parity_%s.json" % name), "w") as f:
            json.dump(out, f)
        print(name, len(texts), "texts")


if __name__ == "__main__":
    main()

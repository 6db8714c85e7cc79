#!/usr/bin/env python3
"""Generate the small evaluation fixtures in this directory (tests/unit/test_evalrun.c,
tests/cli/test_eval.sh, tests/lua/test_eval.lua). Deterministic: run it again and the files
are byte-identical. Texts use words of tests/ref/hf/bert_tiny/vocab.txt so the tiny fixture
model tokenizes them into real pieces. No third-party packages."""
import json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))
R = random.Random(1234)
WORDS = ["the", "cat", "dog", "model", "merge", "text", "word", "token", "hello", "world", "run",
         "running", "merged", "tokenizer", "words", "models", "cats", "dogs", "texts", "runner"]
FILL = ["of", "and", "to", "in", "is", "was", "for", "on", "with", "that"]


def sent(n, topic=None):
    out = []
    for i in range(n):
        if topic is not None and R.random() < 0.5:
            out.append(R.choice(topic))
        elif R.random() < 0.3:
            out.append(R.choice(FILL))
        else:
            out.append(R.choice(WORDS))
    return " ".join(out)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    topics = [["cat", "cats", "dog"], ["model", "merge", "merged"], ["token", "tokenizer", "text"]]
    # ---- BEIR retrieval: 40 docs, 12 queries, graded qrels in test, a dev split too
    os.makedirs(os.path.join(HERE, "beir", "qrels"), exist_ok=True)
    docs = []
    for i in range(40):
        t = topics[i % 3]
        title = sent(2, t) if i % 4 == 0 else ""
        text = sent(8 + i % 5, t)
        if i % 7 == 0:
            text = "  " + text + " "          # stripped as MTEB does
        d = {"_id": "d%02d" % i, "text": text}
        if i % 4 == 0:
            d["title"] = title
        docs.append(d)
    write_jsonl(os.path.join(HERE, "beir", "corpus.jsonl"), docs)
    queries = [{"_id": "q%02d" % i, "text": sent(3, topics[i % 3])} for i in range(14)]
    write_jsonl(os.path.join(HERE, "beir", "queries.jsonl"), queries)
    with open(os.path.join(HERE, "beir", "qrels", "test.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qi in range(12):          # q12, q13 have no test qrels
            rel = R.sample(range(40), 3)
            f.write("q%02d\td%02d\t2\n" % (qi, rel[0]))
            if qi % 2 == 0:
                f.write("q%02d\td%02d\t1\n" % (qi, rel[1]))
            if qi % 3 == 0:
                f.write("q%02d\td%02d\t0\n" % (qi, rel[2]))
    with open(os.path.join(HERE, "beir", "qrels", "dev.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.write("q12\td01\t1\nq13\td02\t1\n")
    # ---- STS (TSV with header), scores 0..5
    with open(os.path.join(HERE, "sts.tsv"), "w") as f:
        f.write("sentence1\tsentence2\tscore\n")
        for i in range(24):
            a = sent(5, topics[i % 3])
            b = sent(5, topics[(i + (i % 2)) % 3])
            f.write("%s\t%s\t%g\n" % (a, b, round(R.uniform(0, 5), 2)))
    # ---- pair classification: graded JSONL with 0/1 scores
    write_jsonl(os.path.join(HERE, "pairclass.jsonl"),
                [{"sentence1": sent(5, topics[i % 3]), "sentence2": sent(5, topics[(i + i % 2) % 3]),
                  "score": 1 if i % 2 == 0 else 0} for i in range(24)])
    # ---- classification: train/test labelled JSONL, 3 labels
    os.makedirs(os.path.join(HERE, "labels"), exist_ok=True)
    names = ["animals", "merging", "tokens"]
    write_jsonl(os.path.join(HERE, "labels", "train.jsonl"),
                [{"text": sent(6, topics[i % 3]), "label": names[i % 3]} for i in range(45)])
    write_jsonl(os.path.join(HERE, "labels", "test.jsonl"),
                [{"text": sent(6, topics[i % 3]), "label": names[i % 3]} for i in range(24)])
    # ---- clustering: labelled JSONL
    write_jsonl(os.path.join(HERE, "clustering.jsonl"),
                [{"text": sent(6, topics[i % 3]), "label": names[i % 3]} for i in range(36)])
    # ---- bitext: pairs JSONL (query = source, positive = its target, negatives = distractors)
    rows = []
    for i in range(15):
        src = sent(6, topics[i % 3])
        tgt = " ".join(w if R.random() < 0.7 else R.choice(WORDS) for w in src.split())
        rows.append({"query": src, "positive": tgt, "negative": sent(6, topics[(i + 1) % 3])})
    write_jsonl(os.path.join(HERE, "bitext.jsonl"), rows)


if __name__ == "__main__":
    main()

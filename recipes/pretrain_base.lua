-- recipes/pretrain_base.lua - MLM pretraining of a tiny base model from the prepared `pretrain`
-- corpus (<store>/datasets/pretrain/corpus.txt, one document per line).
--   amalgam run recipes/pretrain_base.lua [steps=300] [batch=32] [lr=5e-4] [max_len=64] [name=base-tiny]
-- The store cannot persist the MLM head (EncoderConfig.has_mlm_head is not in the stored config),
-- so the trainer adds a fresh head and the saved checkpoint is the encoder without it.
local args = ... or {}
local steps = tonumber(args.steps) or 300
local name = args.name or "base-tiny"
local st = am.store.default()

local init = am.model(args.init or "init-tiny")
if not init then init = assert(am.init_model { config = "tiny", name = "init-tiny", seed = 1 }) end

-- a sample of the corpus (the whole file is 30 MB; a few hundred steps see a small part of it)
local reg = assert(st:get("datasets", "pretrain"), "no `pretrain` dataset: run amalgam prepare pretrain first")
local dir = am.json.decode(reg).path or (st:dir() .. "/datasets/pretrain")
local nrows = math.tointeger(tonumber(args.rows) or 40000)
local ds = am.dataset.new("text")
for line in io.lines(dir .. "/corpus.txt") do
  if #line > 20 then ds:add_text(line) end
  if ds:n() >= nrows then break end
end

local t0 = os.time()
local run = assert(am.train {
  name = name, init = init, steps = steps, seed = 1,
  lr = tonumber(args.lr) or 5e-4, warmup = math.max(1, steps // 10), lr_schedule = "linear",
  max_len = math.tointeger(tonumber(args.max_len) or 64), weight_decay = 0.01,
  tasks = { { data = ds, loss = am.loss.mlm {}, batch = math.tointeger(tonumber(args.batch) or 32), name = "mlm" } },
  checkpoint_every = math.max(100, steps // 2),
  on_step = function(m)
    if m.step % 25 == 0 then
      am.log(("pretrain step %d mlm %.4f acc %.3f"):format(m.step, m.loss, m.mlm_accuracy or 0))
    end
  end,
})
local L = run.losses
local function avg(a, b)
  local s, n = 0, 0
  for i = a, math.min(b, #L) do s, n = s + L[i], n + 1 end
  return s / math.max(n, 1)
end
print(("pretrain: %d steps in %d s; run %s; model %s"):format(#L, os.time() - t0, run.id, run.model:id()))
for i = 1, #L, math.max(1, #L // 10) do
  print(("  steps %4d-%4d  mlm loss %.4f"):format(i, math.min(i + #L // 10 - 1, #L), avg(i, i + #L // 10 - 1)))
end

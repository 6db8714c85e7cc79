-- recipes/judge_base.lua - judge a pretrained base the way it is used: fine-tune it on each ID task
-- and compare the fine-tuned models with the same fine-tuning from a reference (default: the
-- random init). A base is useful when its fine-tuned models beat the reference's on ID and OOD.
--   amalgam run recipes/judge_base.lua [base=base-tiny] [ref=init-tiny] [steps=200] [batch=32]
--       [lr=1e-4] [suite=default|quick] [tasks=wn-def,deb-desc,wn-sts]
-- Fine-tuned models are named <id8 of the base>+<task>@<steps>,lr<lr>, so a rerun on the same base reuses them.
local p = am.params { base = "base-tiny", ref = "init-tiny", steps = 200, batch = 32, lr = 1e-4, suite = "default",
  tasks = "wn-def,deb-desc,wn-sts" }
local steps, batch, lr, suite = p.steps, p.batch, p.lr, p.suite
local list = {}
for t in p.tasks:gmatch("[^,]+") do list[#list + 1] = t end

local function finetune(base, task)
  local name = ("%s+%s@%d,lr%g"):format(base:id():sub(1, 8), task, steps, lr)
  local m = am.model(name)
  if m then return m end
  local loss = task:match("sts") and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 }
  local run = assert(am.train {
    name = name, init = base, steps = steps, seed = 1, lr = lr, warmup = steps // 10, max_len = 64,
    tasks = { { data = task, loss = loss, batch = batch } }, progress = false,
  })
  return run.model
end

local rows = {}
local function judge(label, mname)
  local base = assert(am.model(mname))
  local r0 = assert(am.eval(base, { suite = suite }))
  local row = { label = label, name = mname, raw = { r0.id_avg, r0.ood_avg }, ft = {} }
  local sid, sood = 0, 0
  for i, task in ipairs(list) do
    local r = assert(am.eval(finetune(base, task), { suite = suite }))
    row.ft[i] = { r.id_avg, r.ood_avg, r.by_task[task] and r.by_task[task].main_score or 0 / 0 }
    sid, sood = sid + r.id_avg, sood + r.ood_avg
  end
  row.mean = { sid / #list, sood / #list }
  rows[#rows + 1] = row
end

judge("ref", p.ref)
judge("base", p.base)

local function pct(x) return x and x == x and ("%6.2f"):format(100 * x) or "     -" end
print(("judge_base: %s suite, fine-tuning %d steps x %d, lr %g"):format(suite, steps, batch, lr))
local head = ("%-5s %-14s %13s"):format("", "model", "raw ID/OOD")
for _, t in ipairs(list) do head = head .. ("  %-22s"):format("+" .. t .. " ID/OOD/own") end
print(head .. "   mean ID/OOD")
for _, r in ipairs(rows) do
  local line = ("%-5s %-14s %s %s"):format(r.label, r.name:sub(1, 14), pct(r.raw[1]), pct(r.raw[2]))
  for i = 1, #list do line = line .. ("  %s %s %s"):format(pct(r.ft[i][1]), pct(r.ft[i][2]), pct(r.ft[i][3])) end
  print(line .. ("   %s %s"):format(pct(r.mean[1]), pct(r.mean[2])))
end
local a, b = rows[1].mean, rows[2].mean
print(("delta base - ref after fine-tuning: ID %+.2f  OOD %+.2f"):format(100 * (b[1] - a[1]), 100 * (b[2] - a[2])))

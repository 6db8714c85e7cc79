-- recipes/train_tasks.lua - one fine-tuned model per ID task from the base (default base-tiny):
-- InfoNCE on the retrieval pair tasks, CoSENT on the graded STS task.
--   amalgam run recipes/train_tasks.lua [base=base-tiny] [steps=200] [sts_steps=600] [batch=32] [lr=3e-4]
--       [tasks=wn-def,deb-desc,wn-sts] [seed=1] [suffix=] [force=false]
-- The models are named BASE+TASK..suffix (suffix=-s2 with seed=2 keeps other seeds apart). A task
-- model that already exists for this base is kept unless force=true.
-- Defaults measured on 2 cores from base-tiny, 3 seeds (README, "amalgam demo"): at lr 1e-4 the
-- wn-sts model did not beat the base on wn-sts and wn-def gained 2 points; at 3e-4 every model
-- beats the base on its own task by several seed-to-seed spreads. STS steps are short sentence
-- pairs (a third of a retrieval step's time), so its model gets 3x the steps for the same time.
local p = am.params { base = "base-tiny", steps = 200, sts_steps = 600, batch = 32, lr = 3e-4,
  tasks = "wn-def,deb-desc,wn-sts", seed = 1, suffix = "", force = false }
local base, batch = p.base, p.batch
local list = {}
for t in p.tasks:gmatch("[^,]+") do list[#list + 1] = t end

for _, task in ipairs(list) do
  local name = base .. "+" .. task .. p.suffix
  local have = am.model(name)
  if have and not p.force and have:meta().parents and have:meta().parents[1].id == am.model(base):id() then
    print(("%-12s already trained from %s: %s (force=true retrains)"):format(task, base, have:id():sub(1, 12)))
    goto continue
  end
  local sts = task:match("sts") ~= nil
  local steps = sts and p.sts_steps or p.steps
  local loss = sts and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 }
  local run, msg = am.train {
    name = name, init = base, steps = steps, seed = p.seed, lr = p.lr, warmup = steps // 10,
    max_len = 64, tasks = { { data = task, loss = loss, batch = batch } },
  }
  if not run then
    error("train_tasks: " .. task .. ": " .. tostring(msg), 0)
  else
    print(("%-12s run %s  loss %.4f -> %.4f  model %s  task vector %s"):format(task, run.id, run.losses[1],
      run.losses[#run.losses], run.model:id():sub(1, 12), tostring(run.task_vector):sub(1, 12)))
  end
  ::continue::
end

-- shared by the stand-in recipes: train(name, init, steps) keeps a model of that name made from init
local M = {}
local texts = { "the cat sat on the mat", "a dog runs in the park", "stock markets fell on monday",
  "merge the models with care", "a small tiny encoder model", "the quick brown fox jumps" }
function M.train(name, init, steps)
  local have, from = am.model(name), am.model(init)
  if have and have:meta().parents and have:meta().parents[1].id == from:id() then
    print(("%s already trained from %s"):format(name, init))
    return
  end
  local ds = am.dataset.new("text")
  for _, t in ipairs(texts) do ds:add_text(t) end
  local delay = tonumber(os.getenv("DEMO_STEP_DELAY") or "0")
  local run = assert(am.train { name = name, init = from, steps = steps, seed = #name, lr = 1e-3, max_len = 16,
    tasks = { { data = ds, loss = am.loss.mlm {}, batch = 4, name = "mlm" } }, metrics_every = 1,
    on_step = function(m)
      if delay > 0 then local t = os.clock() + delay; while os.clock() < t do end end
    end })
  print(("%s: run %s, %d steps"):format(name, run.id, #run.losses))
end
return M

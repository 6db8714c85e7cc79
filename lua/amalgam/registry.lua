-- amalgam/registry.lua - the store's `datasets` registry (one JSON entry per prepared or imported
-- dataset, written by amalgam/prepare.lua; fields in amalgam/DATASETS.md).
--
-- Paths inside a store are relative to the store ("datasets/wn-def"), so a copied or moved store
-- (cp -a of a checkout) reads its own files. Stores written before recorded absolute paths; an
-- absolute path whose tail is datasets/<...> resolves to this store's datasets/<...> when that
-- exists, so such a store keeps working after a move (and prepare rewrites the entries).

local core = require "amalgam.core"
local S = core.source
local json = core.json

local M = {}

local function exists(p) return S.stat(p) ~= nil end

--- path relative to store_dir when it lies inside it (store_dir itself may be relative, as
--- `--store store` gives it), else path unchanged
function M.relative(store_dir, path)
  if type(path) ~= "string" then return path end
  for _, d in ipairs { store_dir, S.realpath(store_dir) } do
    d = d and d:gsub("/+$", "")
    if d and d ~= "" and path:sub(1, #d + 1) == d .. "/" then return path:sub(#d + 2) end
  end
  return path
end

--- a registry path -> the path to open: relative paths are relative to store_dir; an absolute
--- one inside some store's datasets/ directory is redirected to this store's copy if present
function M.resolve(store_dir, path)
  if type(path) ~= "string" or path == "" then return path end
  if path:sub(1, 1) ~= "/" then return store_dir .. "/" .. path end
  local tail = path:match("^.*/(datasets/.+)$") or path:match("^.*/(datasets)/*$")
  if tail then
    local here = store_dir .. "/" .. tail
    if here ~= path and exists(here) then return here end
  end
  return path
end

--- the decoded entry of dataset `name` in store `st`, or nil; entry.dir is its resolved directory
function M.get(st, name)
  local v = st:get("datasets", name)
  if not v then return nil end
  local ok, e = pcall(json.decode, v)
  if not ok or type(e) ~= "table" then return nil end
  local dir = st:dir()
  e.dir = M.resolve(dir, type(e.path) == "string" and e.path or ("datasets/" .. name))
  return e
end

--- sorted names of the registered datasets [whose entry satisfies keep(entry)]
function M.names(st, keep)
  local out = {}
  for _, name in ipairs(st:keys("datasets") or {}) do
    if not keep or keep(M.get(st, name) or {}) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- "a, b, c" of the registered datasets with files (those a task can read), or a hint when none
function M.names_text(st)
  local names = M.names(st, function(e) return type(e.files) == "table" and next(e.files) ~= nil end)
  if #names == 0 then return "none prepared (HINT: amalgam prepare)" end
  return table.concat(names, ", ")
end

return M

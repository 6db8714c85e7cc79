-- test_matrix.lua - amalgam.Matrix: constructors, accessors, similarity, .npy files, misuse.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

-- am.matrix(rows, cols) and am.matrix{rows}
local z = am.matrix(2, 3)
T.eq(am.type(z), "Matrix", "am.type of a matrix")
T.eq(z:rows(), 2, "rows")
T.eq(z:cols(), 3, "cols")
T.eq(#z, 2, "#m is the number of rows")
local r, c = z:shape()
T.ok(r == 2 and c == 3, "shape")
T.eq(z:get(2, 3), 0.0, "zero filled")
T.eq(tostring(z), "amalgam.Matrix (2 x 3)", "tostring")
T.eq(#am.matrix(0, 4), 0, "0 x n matrix")

local m = am.matrix { { 1, 2, 2 }, { 0, 3, 4 }, { -1, -2, -2 } }
T.eq(m:get(1, 2), 2.0, "from table")
T.eq(m:set(1, 1, 3), m, "set returns the matrix")
T.eq(m:get(1, 1), 3.0, "set")
m:set(1, 1, 1)
local row = m:row(2)
T.ok(#row == 3 and row[1] == 0 and row[3] == 4, "row(i) -> table")
local tt = m:totable()
T.ok(#tt == 3 and tt[3][1] == -1, "totable")
T.near(m:norm(1), 3, 1e-6, "norm")
T.near(m:dot(1, 2), 14, 1e-6, "dot with itself (i, j)")
T.near(m:cosine(1, 3), -1, 1e-6, "cosine(i, j)")
T.near(m:cosine(1, m, 1), 1, 1e-6, "cosine(i, other, j)")
local other = am.matrix { { 0, 0, 1 } }
T.near(m:cosine(2, other, 1), 0.8, 1e-6, "cosine against another matrix")
T.near(m:dot(2, other, 1), 4, 1e-6, "dot against another matrix")
T.eq(am.matrix(1, 3):cosine(1, m, 1), 0.0, "cosine with a zero row is 0")

-- npy round trip
local dir = T.tmpdir("npy")
os.execute("mkdir -p '" .. dir .. "'")
local path = dir .. "/m.npy"
T.eq(m:save_npy(path), true, "save_npy")
local back = am.load_npy(path)
T.ok(back and back:rows() == 3 and back:cols() == 3 and back:get(2, 3) == 4, "load_npy round trip")
-- expected failures
T.checkfail("ENOTFOUND", am.load_npy, dir .. "/missing.npy")
local f = io.open(dir .. "/bad.npy", "wb"); f:write("not numpy"); f:close()
T.checkfail("EFORMAT", am.load_npy, dir .. "/bad.npy")
T.checkfail("EIO", m.save_npy, m, dir .. "/no/such/dir/x.npy")

-- misuse
T.checkerr("row 4 out of range 1..3", m.get, m, 4, 1)
T.checkerr("column 0 out of range 1..3", m.get, m, 1, 0)
T.checkerr("number has no integer representation", m.get, m, 1.5, 1)
T.checkerr("number expected, got string", m.set, m, 1, 1, "x")
T.checkerr("row 9 out of range", m.row, m, 9)
T.checkerr("matrices have 3 and 2 columns", m.cosine, m, 1, am.matrix(1, 2), 1)
T.checkerr("amalgam.Matrix expected, got table", m.cosine, m, 1, {}, 1)
T.checkerr("row 2 has 1 values, row 1 has 2", am.matrix, { { 1, 2 }, { 3 } })
T.checkerr("value [1][2] is a string, not a number", am.matrix, { { 1, "x" } })
T.checkerr("row 1 is a number, not a table", am.matrix, { 1, 2 })
T.checkerr("rows must be >= 0", am.matrix, -1, 2)
T.checkerr("number expected, got no value", am.matrix, 2)
T.checkerr("string expected, got no value", am.load_npy)
T.checkerr("amalgam.Matrix expected, got number", m.rows, 5)

-- close and <close>
do
  local tmp <close> = am.matrix(1, 1)
  T.eq(tmp:rows(), 1, "usable inside its block")
  z = tmp
end
T.checkerr("attempt to use a closed matrix", z.rows, z)
T.eq(tostring(z), "amalgam.Matrix (closed)", "tostring of a closed matrix")
m:close()
m:close() -- twice is fine
T.checkerr("attempt to use a closed matrix", m.get, m, 1, 1)
T.checkerr("attempt to use a closed matrix", function() return #m end)


-- ------------------------------------------------------------------ API contract additions
T.checkfail("ENOMEM", am.matrix, 1000000, 1000000)                 -- too large: nil, msg, "ENOMEM"
T.checkerr("bad argument #1 to 'matrix' (number has no integer representation)", function() am.matrix(1.5, 2) end)
T.checkerr("bad argument #2 to 'matrix' (columns must be >= 0)", function() am.matrix(1, -2) end)
do
  local a = am.matrix { { 3, 4 }, { 1, 0 } }
  T.eq(a:totable()[1][2], 4.0, "totable")
  T.near(a:dot(1, 2), 3, 1e-6, "dot(i, j)")
  T.checkerr("bad argument #1 to 'norm' (row 3 out of range 1..2)", function() a:norm(3) end)
  T.checkerr("bad argument #2 to 'dot' (matrices have 2 and 3 columns)", function() a:dot(1, am.matrix(1, 3), 1) end)
  T.checkerr("bad argument #2 to 'dot' (row 5 out of range 1..2)", function() a:dot(1, 5) end)
  T.checkerr("bad argument #1 to 'save_npy' (string expected, got table)", function() a:save_npy({}) end)
  T.checkerr("bad argument #1 to 'totable' (amalgam.Matrix expected, got no value)", function() a.totable() end)
  T.checkerr("bad argument #1 to 'shape' (amalgam.Matrix expected, got string)", function() a.shape("x") end)
  T.checkerr("bad argument #1 to 'cols' (amalgam.Matrix expected, got number)", function() a.cols(1) end)
  T.checkerr("bad argument #1 to 'load_npy' (string expected, got table)", function() am.load_npy({}) end)
  -- a 1-D .npy loads as n x 1
  local d = T.tmpdir("npy1d")
  os.execute("mkdir -p '" .. d .. "'")
  local f1 = assert(io.open(d .. "/v.npy", "wb"))
  local header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
  header = header .. string.rep(" ", 64 - 10 - #header - 1) .. "\n"
  f1:write("\x93NUMPY\1\0", string.pack("<I2", #header), header, string.pack("<fff", 1, 2, 3))
  f1:close()
  local v = am.load_npy(d .. "/v.npy")
  T.ok(v and v:rows() == 3 and v:cols() == 1 and v:get(3, 1) == 3, "a 1-D array loads as n x 1")
  local f2 = assert(io.open(d .. "/i.npy", "wb"))
  local h2 = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"
  h2 = h2 .. string.rep(" ", 64 - 10 - #h2 - 1) .. "\n"
  f2:write("\x93NUMPY\1\0", string.pack("<I2", #h2), h2, string.pack("<i4i4", 1, 2))
  f2:close()
  T.checkfail("EDTYPE", am.load_npy, d .. "/i.npy")
  a:close()
  T.checkerr("attempt to use a closed matrix", function() a:totable() end)
end

T.done()

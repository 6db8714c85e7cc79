-- test_json.lua - am.json.encode / decode / null / array.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local json = am.json

-- encode: scalars, arrays, objects with sorted keys
T.eq(json.encode(1), "1", "integer")
T.eq(json.encode(0.5), "0.5", "float")
T.eq(json.encode("a\"b\n"), '"a\\"b\\n"', "string escapes")
T.eq(json.encode(true), "true", "boolean")
T.eq(json.encode(nil), "null", "nil -> null")
T.eq(json.encode(json.null), "null", "json.null")
T.eq(json.encode({ 1, 2, 3 }), "[1,2,3]", "array")
T.eq(json.encode({ b = 1, a = { c = true }, z = "s" }), '{"a":{"c":true},"b":1,"z":"s"}', "object keys sorted")
T.eq(json.encode({}), "{}", "empty table is an object")
T.eq(json.encode(json.array()), "[]", "json.array() is an empty array")
T.eq(json.encode(json.array({ 1 })), "[1]", "json.array(t) marks t")
T.eq(json.encode({ 1, nil, 3 }), "[1,null,3]", "holes become null")
T.ok(json.encode({ a = { 1, 2 } }, { pretty = true }):find("\n", 1, true), "pretty output has newlines")
T.eq(json.encode(2 ^ 53), "9007199254740992", "large float, exact")
T.eq(json.encode(math.maxinteger), "9223372036854775807", "integers are exact")
T.eq(json.encode(0.1), "0.1", "short floats stay short")
T.eq(json.decode(json.encode(1 / 3)), 1 / 3, "floats round trip exactly")

-- encode misuse raises
T.checkerr("cannot encode a function value", json.encode, { f = print })
T.checkerr("object keys must be strings", json.encode, { [true] = 1 })
T.checkerr("mixes integer and other keys", json.encode, { 1, a = 2 })
T.checkerr("cannot be written as JSON", json.encode, 0 / 0)
T.checkerr("cannot be written as JSON", json.encode, { x = math.huge })
local cyc = {}
cyc.self = cyc
T.checkerr("nesting deeper than", json.encode, cyc)
T.checkerr("unknown option 'pretti'", json.encode, 1, { pretti = true })
T.checkerr("option 'pretty': boolean expected, got number", json.encode, 1, { pretty = 1 })
T.checkerr("bad argument #1", json.encode)

-- decode
local v = json.decode('{"a": [1, 2.5, "x", null, true], "b": {"c": -3}, "e": []}')
T.eq(v.a[1], 1, "decode integer")
T.eq(math.type(v.a[1]), "integer", "integral numbers decode as integers")
T.eq(v.a[2], 2.5, "decode float")
T.eq(v.a[3], "x", "decode string")
T.eq(v.a[4], json.null, "null decodes to json.null")
T.eq(v.a[5], true, "decode boolean")
T.eq(#v.a, 5, "array length keeps nulls")
T.eq(v.b.c, -3, "nested object")
T.eq(getmetatable(v.a), json.array_mt, "decoded arrays are marked")
T.eq(json.encode(v.e), "[]", "an empty decoded array stays an array")
T.eq(json.decode("  42  "), 42, "scalar with whitespace")
T.eq(json.decode('"\\u00e9"'), "é", "unicode escapes")
-- round trip
local src = { name = "m", layers = { 1, 2, 3 }, meta = { ok = false, w = 0.25 } }
local back = json.decode(json.encode(src))
T.eq(back.name, "m", "round trip string")
T.eq(back.layers[3], 3, "round trip array")
T.eq(back.meta.w, 0.25, "round trip float")
T.eq(back.meta.ok, false, "round trip false")

-- decode failures: nil, msg, "EFORMAT"
T.checkfail("EFORMAT", json.decode, "{bad json}")
T.checkfail("EFORMAT", json.decode, "")
T.checkfail("EFORMAT", json.decode, "[1, 2")
T.checkfail("EFORMAT", json.decode, "1 2")
local _, msg = json.decode('{\n"a": 1,\n"b": }')
T.ok(msg and msg:find("line 3", 1, true), "decode error names the line: " .. tostring(msg))
-- decode misuse
T.checkerr("string expected, got table", json.decode, {})
T.checkerr("string expected, got no value", json.decode)


-- ------------------------------------------------------------------ API contract additions
-- NUL bytes: JSON here cannot carry them losslessly, so encode raises and decode refuses \u0000
T.checkerr("json.encode: a string contains a NUL byte (at byte 2)", json.encode, "a\0b")
T.checkerr("json.encode: an object key contains a NUL byte", json.encode, { ["k\0"] = 1 })
T.checkfail("EFORMAT", json.decode, '["a\\u0000b"]')
T.eq(json.decode('"a\\\\u0000"'), "a\\u0000", "an escaped backslash before u0000 is no NUL")
T.eq(json.decode('{"\\u0001": 1}')["\1"], 1, "other control escapes decode")
local _, m2 = json.decode('[\n"x\\u0000"]')
T.ok(m2 and m2:find("line 2", 1, true), "the \\u0000 message names the line: " .. tostring(m2))
-- deep nesting
T.checkfail("EFORMAT", json.decode, string.rep("[", 5000) .. string.rep("]", 5000))
-- array(): success and misuse
local arr = json.array({})
T.eq(getmetatable(arr), json.array_mt, "array(t) sets array_mt")
T.eq(json.array(arr), arr, "array(t) returns t")
T.checkerr("bad argument #1 to 'array' (table expected, got number)", function() json.array(5) end)
T.checkerr("bad argument #2 to 'encode' (table expected, got string)", function() json.encode(1, "pretty") end)
T.eq(type(json.null), "userdata", "json.null is a light userdata")

T.done()

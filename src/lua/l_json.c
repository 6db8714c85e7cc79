/* l_json.c - am.json.encode / am.json.decode over cJSON.
 *
 * Mapping:
 *   JSON object  <-> Lua table with string keys (encoded with sorted keys, so output is stable)
 *   JSON array   <-> Lua sequence 1..n; decoded arrays carry the metatable am.json.array_mt so
 *                    that an empty array stays an array when encoded again; am.json.array(t)
 *                    marks a table the same way. An empty unmarked table encodes as {}.
 *   null         <-> am.json.null (a light userdata sentinel); nil inside an array is null
 *   numbers      <-> decoded: integers when integral and |x| < 2^53, else floats; encoded:
 *                    integers exactly, floats with up to 17 digits (round trip exact)
 * Encoding raises (misuse) on functions, userdata, cycles/nesting deeper than 200, mixed or
 * non-string keys, NaN/inf. Decoding a malformed text returns nil, message, "EFORMAT".
 */
#include "am_lua.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MT "amalgam.json.array"
#define MAX_DEPTH 200

static char null_sentinel;

static void push_null(lua_State *L) { lua_pushlightuserdata(L, &null_sentinel); }

static int is_null(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &null_sentinel;
}

/* ---------------------------------------------------------------- decode */

static void push_value(lua_State *L, const cJSON *j, int depth) {
    luaL_checkstack(L, 4, "JSON nesting");
    if (cJSON_IsNull(j)) push_null(L);
    else if (cJSON_IsFalse(j)) lua_pushboolean(L, 0);
    else if (cJSON_IsTrue(j)) lua_pushboolean(L, 1);
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
        else lua_pushnumber(L, d);
    } else if (cJSON_IsString(j)) lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        int i = 1;
        const cJSON *c;
        cJSON_ArrayForEach(c, j) {
            push_value(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
        luaL_setmetatable(L, ARRAY_MT);
    } else if (cJSON_IsObject(j)) {
        lua_createtable(L, 0, cJSON_GetArraySize(j));
        const cJSON *c;
        cJSON_ArrayForEach(c, j) {
            push_value(L, c, depth + 1);
            lua_setfield(L, -2, c->string);
        }
    } else {
        push_null(L);
    }
}

static void delete_json(void *p) { cJSON_Delete(p); }

/* offset of the first \u0000 escape inside a JSON string of text, or -1 (cJSON would cut the
 * string there: refuse it instead of losing the rest silently) */
static long long find_nul_escape(const char *text, size_t len) {
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            if (text[i] == '"') in_str = 1;
        } else if (text[i] == '"') {
            in_str = 0;
        } else if (text[i] == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) return (long long)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

int am_lua_pushjson(lua_State *L, const char *text, size_t len) {
    long long nul = find_nul_escape(text, len);
    if (nul >= 0) {
        size_t line = 1;
        for (long long i = 0; i < nul; i++) line += text[i] == '\n';
        return am_error(AM_EFORMAT, "JSON string with a \\u0000 escape at line %zu (byte %lld) is not supported", line,
                        nul + 1);
    }
    AmAutoFree *a = am_lua_newautofree(L, delete_json);    /* [box] */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        lua_pop(L, 1);
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off && i < len; i++) line += text[i] == '\n';
        return am_error(AM_EFORMAT, "invalid JSON at line %zu (byte %zu)", line, off + 1);
    }
    a->p = j;
    /* only whitespace may follow */
    while (end && (size_t)(end - text) < len && strchr(" \t\r\n", *end)) end++;
    if (end && (size_t)(end - text) < len) {
        lua_pop(L, 1);
        return am_error(AM_EFORMAT, "invalid JSON: trailing characters at byte %zu", (size_t)(end - text) + 1);
    }
    push_value(L, j, 0);                                   /* [box, value] */
    lua_remove(L, -2);                                     /* [value] (box collected later) */
    return AM_OK;
}

/* decode(text) -> value | nil, msg, "EFORMAT" */
static int l_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int rc = am_lua_pushjson(L, s, len);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* ---------------------------------------------------------------- encode */

typedef struct { const char *k; int idx; } KeyRef;
static int keyref_cmp(const void *a, const void *b) {
    return strcmp(((const KeyRef *)a)->k, ((const KeyRef *)b)->k);
}

static cJSON *to_json(lua_State *L, int idx, int depth);

/* 1 = array (n = largest index), 0 = object, -1 = mixed / sparse keys */
static int table_is_array(lua_State *L, int idx, size_t *n_out) {
    size_t n = 0, count = 0;
    int has_int = 0, has_other = 0, marked = 0;
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, ARRAY_MT);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            has_int = 1;
            if ((size_t)lua_tointeger(L, -1) > n) n = (size_t)lua_tointeger(L, -1);
        } else {
            has_other = 1;
        }
        count++;
    }
    *n_out = n;
    if (has_int && has_other) return -1;
    if (has_other) return 0;
    if (count == 0) return marked;
    return n > 2 * count + 16 ? -1 : 1; /* holes become null, but not absurdly many */
}

static cJSON *table_to_json(lua_State *L, int idx, int depth) {
    size_t n = 0;
    int kind = table_is_array(L, idx, &n);
    if (kind < 0) luaL_error(L, "json.encode: table mixes integer and other keys (or is too sparse)");
    if (kind == 1) {
        cJSON *arr = cJSON_CreateArray();
        AmAutoFree *a = am_lua_newautofree(L, delete_json);  /* owns arr until done */
        a->p = arr;
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            cJSON_AddItemToArray(arr, to_json(L, lua_gettop(L), depth + 1));
            lua_pop(L, 1);
        }
        a->p = NULL;
        lua_pop(L, 1);
        return arr;
    }
    /* object: collect string keys, sort, encode */
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "json.encode: object keys must be strings, got a %s key", luaL_typename(L, -1));
        size_t klen;
        if (strlen(lua_tolstring(L, -1, &klen)) != klen) luaL_error(L, "json.encode: an object key contains a NUL byte");
        count++;
    }
    KeyRef *keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof *keys, 0); /* GC-owned */
    int keys_idx = lua_gettop(L);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[i].k = lua_tostring(L, -1); /* anchored by the table */
        keys[i].idx = (int)i;
        i++;
    }
    qsort(keys, count, sizeof *keys, keyref_cmp);
    cJSON *obj = cJSON_CreateObject();
    AmAutoFree *a = am_lua_newautofree(L, delete_json);
    a->p = obj;
    for (i = 0; i < count; i++) {
        lua_getfield(L, idx, keys[i].k);
        cJSON_AddItemToObject(obj, keys[i].k, to_json(L, lua_gettop(L), depth + 1));
        lua_pop(L, 1);
    }
    a->p = NULL;
    lua_pop(L, 1);        /* box */
    lua_remove(L, keys_idx);
    return obj;
}

static cJSON *to_json(lua_State *L, int idx, int depth) {
    if (depth > MAX_DEPTH) luaL_error(L, "json.encode: nesting deeper than %d (a cycle?)", MAX_DEPTH);
    luaL_checkstack(L, 6, "JSON nesting");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        /* written as raw text: integers exactly, floats as the shortest of %.15g / %.17g that
         * reads back to the same double */
        char buf[64];
        if (lua_isinteger(L, idx)) {
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointeger(L, idx));
            return cJSON_CreateRaw(buf);
        }
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) luaL_error(L, "json.encode: %f cannot be written as JSON", d);
        snprintf(buf, sizeof buf, "%.15g", d);
        if (strtod(buf, NULL) != d) snprintf(buf, sizeof buf, "%.17g", d);
        return cJSON_CreateRaw(buf);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) luaL_error(L, "json.encode: a string contains a NUL byte (at byte %d)", (int)strlen(s) + 1);
        return cJSON_CreateString(s);
    }
    case LUA_TTABLE: return table_to_json(L, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) return cJSON_CreateNull();
        /* fallthrough */
    default:
        luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
        return NULL;
    }
}

char *am_lua_tojson(lua_State *L, int idx, int pretty) {
    idx = lua_absindex(L, idx);
    AmAutoFree *a = am_lua_newautofree(L, delete_json);    /* [box] */
    a->p = to_json(L, idx, 0);
    char *s = pretty ? cJSON_Print(a->p) : cJSON_PrintUnformatted(a->p);
    am_lua_autofree_now(L, -1);
    lua_pop(L, 1);
    if (!s) luaL_error(L, "json.encode: out of memory");
    return s;
}

/* encode(value [, {pretty=bool}]) -> string */
static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    static const char *const known[] = {"pretty", NULL};
    am_lua_opt_check(L, 2, 2, known);
    int pretty = am_lua_opt_bool(L, 2, 2, "pretty", 0);
    lua_settop(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, free);           /* [v, box] */
    a->p = am_lua_tojson(L, 1, pretty);
    lua_pushstring(L, a->p);
    am_lua_autofree_now(L, 2);
    return 1;
}

/* array([t]) -> t marked as a JSON array */
static int l_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, ARRAY_MT);
    return 1;
}

static const luaL_Reg json_funcs[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {"array", l_array},
    {NULL, NULL},
};

void am_lua_open_json(lua_State *L) {
    if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushliteral(L, "json array");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    luaL_newlib(L, json_funcs);          /* [core, json] */
    push_null(L);
    lua_setfield(L, -2, "null");
    luaL_getmetatable(L, ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_setfield(L, -2, "json");         /* [core] */
}

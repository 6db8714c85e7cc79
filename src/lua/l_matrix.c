/* l_matrix.c - "amalgam.Matrix": an owned rows x cols float32 matrix (row-major), the type of
 * embeddings (model:encode) and tensor copies (model:tensor). Indices are 1-based, as in Lua.
 */
#include "am_lua.h"
#include "am_base.h"
#include "npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMS ((int64_t)1 << 34)

AmMatrix *am_lua_newmatrix(lua_State *L, int64_t rows, int64_t cols) {
    AmMatrix *m = lua_newuserdatauv(L, sizeof *m, 0);
    m->rows = m->cols = 0;
    m->data = NULL;                                   /* closed until filled */
    luaL_setmetatable(L, AM_MATRIX_MT);
    if (rows < 0 || cols < 0 || rows * cols > MAX_ELEMS) {
        am_error(AM_ENOMEM, "matrix of %lld x %lld floats is too large", (long long)rows, (long long)cols);
        return m;
    }
    size_t n = (size_t)(rows * cols);
    m->data = am_alloc_floats(n ? n : 1);
    if (!m->data) {
        am_error(AM_ENOMEM, "cannot allocate a %lld x %lld matrix (%.1f MB)", (long long)rows, (long long)cols,
                 (double)n * 4 / 1e6);
        return m;
    }
    memset(m->data, 0, (n ? n : 1) * sizeof(float));
    m->rows = rows;
    m->cols = cols;
    return m;
}

AmMatrix *am_lua_checkmatrix(lua_State *L, int idx) {
    AmMatrix *m = luaL_checkudata(L, idx, AM_MATRIX_MT);
    if (!m->data) luaL_error(L, "attempt to use a closed matrix");
    return m;
}

static int64_t checkrow(lua_State *L, const AmMatrix *m, int arg) {
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 1 || i > m->rows)
        luaL_argerror(L, arg, lua_pushfstring(L, "row %I out of range 1..%I", (LUAI_UACINT)i, (LUAI_UACINT)m->rows));
    return i - 1;
}

static int64_t checkcol(lua_State *L, const AmMatrix *m, int arg) {
    lua_Integer j = luaL_checkinteger(L, arg);
    if (j < 1 || j > m->cols)
        luaL_argerror(L, arg, lua_pushfstring(L, "column %I out of range 1..%I", (LUAI_UACINT)j, (LUAI_UACINT)m->cols));
    return j - 1;
}

static int l_rows(lua_State *L) {
    lua_pushinteger(L, am_lua_checkmatrix(L, 1)->rows);
    return 1;
}

static int l_cols(lua_State *L) {
    lua_pushinteger(L, am_lua_checkmatrix(L, 1)->cols);
    return 1;
}

static int l_shape(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    lua_pushinteger(L, m->rows);
    lua_pushinteger(L, m->cols);
    return 2;
}

/* m:get(i, j) -> number */
static int l_get(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    int64_t i = checkrow(L, m, 2), j = checkcol(L, m, 3);
    lua_pushnumber(L, m->data[i * m->cols + j]);
    return 1;
}

/* m:set(i, j, v) -> m */
static int l_set(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    int64_t i = checkrow(L, m, 2), j = checkcol(L, m, 3);
    m->data[i * m->cols + j] = (float)luaL_checknumber(L, 4);
    lua_settop(L, 1);
    return 1;
}

/* m:row(i) -> { x1, ..., x_cols } */
static int l_row(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    int64_t i = checkrow(L, m, 2);
    lua_createtable(L, (int)m->cols, 0);
    for (int64_t j = 0; j < m->cols; j++) {
        lua_pushnumber(L, m->data[i * m->cols + j]);
        lua_rawseti(L, -2, j + 1);
    }
    return 1;
}

/* m:totable() -> { {row 1}, {row 2}, ... } */
static int l_totable(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    lua_createtable(L, (int)m->rows, 0);
    for (int64_t i = 0; i < m->rows; i++) {
        lua_createtable(L, (int)m->cols, 0);
        for (int64_t j = 0; j < m->cols; j++) {
            lua_pushnumber(L, m->data[i * m->cols + j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* (i, [other,] j) arguments of cosine / dot: row i of m and row j of other (default m) */
static void row_pair(lua_State *L, const float **a, const float **b, int64_t *n) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    int64_t i = checkrow(L, m, 2);
    AmMatrix *o = m;
    int jarg = 3;
    if (!lua_isnumber(L, 3)) {
        o = am_lua_checkmatrix(L, 3);
        jarg = 4;
    }
    int64_t j = checkrow(L, o, jarg);
    if (o->cols != m->cols)
        luaL_argerror(L, 3, lua_pushfstring(L, "matrices have %I and %I columns", (LUAI_UACINT)m->cols,
                                            (LUAI_UACINT)o->cols));
    *a = m->data + i * m->cols;
    *b = o->data + j * o->cols;
    *n = m->cols;
}

/* m:dot(i, [other,] j) */
static int l_dot(lua_State *L) {
    const float *a, *b;
    int64_t n;
    row_pair(L, &a, &b, &n);
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += (double)a[k] * (double)b[k];
    lua_pushnumber(L, s);
    return 1;
}

/* m:cosine(i, [other,] j): cosine similarity of two rows (0 if either is all zeros) */
static int l_cosine(lua_State *L) {
    const float *a, *b;
    int64_t n;
    row_pair(L, &a, &b, &n);
    double s = 0, na = 0, nb = 0;
    for (int64_t k = 0; k < n; k++) {
        s += (double)a[k] * (double)b[k];
        na += (double)a[k] * (double)a[k];
        nb += (double)b[k] * (double)b[k];
    }
    lua_pushnumber(L, na > 0 && nb > 0 ? s / (sqrt(na) * sqrt(nb)) : 0.0);
    return 1;
}

/* m:norm(i) -> L2 norm of row i */
static int l_norm(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    int64_t i = checkrow(L, m, 2);
    double s = 0;
    for (int64_t k = 0; k < m->cols; k++) s += (double)m->data[i * m->cols + k] * (double)m->data[i * m->cols + k];
    lua_pushnumber(L, sqrt(s));
    return 1;
}

/* m:save_npy(path) -> true | nil, msg, code */
static int l_save_npy(lua_State *L) {
    AmMatrix *m = am_lua_checkmatrix(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int rc = npy_save_f32(path, m->data, m->rows, m->cols);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_close(lua_State *L) {
    AmMatrix *m = luaL_checkudata(L, 1, AM_MATRIX_MT);
    am_free_aligned(m->data);
    m->data = NULL;
    m->rows = m->cols = 0;
    return 0;
}

static int l_len(lua_State *L) { return l_rows(L); }

static int l_tostring(lua_State *L) {
    AmMatrix *m = luaL_checkudata(L, 1, AM_MATRIX_MT);
    if (!m->data) lua_pushliteral(L, "amalgam.Matrix (closed)");
    else lua_pushfstring(L, "amalgam.Matrix (%I x %I)", (LUAI_UACINT)m->rows, (LUAI_UACINT)m->cols);
    return 1;
}

/* am.matrix(rows, cols) zeros | am.matrix{ {..}, {..} } from rows of numbers */
static int l_matrix(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer r = (lua_Integer)luaL_len(L, 1), c = 0;
        for (lua_Integer i = 1; i <= r; i++) {
            if (lua_geti(L, 1, i) != LUA_TTABLE)
                luaL_argerror(L, 1, lua_pushfstring(L, "row %I is a %s, not a table", (LUAI_UACINT)i,
                                                    luaL_typename(L, -1)));
            lua_Integer n = (lua_Integer)luaL_len(L, -1);
            if (i == 1) c = n;
            else if (n != c)
                luaL_argerror(L, 1, lua_pushfstring(L, "row %I has %I values, row 1 has %I", (LUAI_UACINT)i,
                                                    (LUAI_UACINT)n, (LUAI_UACINT)c));
            lua_pop(L, 1);
        }
        AmMatrix *m = am_lua_newmatrix(L, r, c);            /* [t, m] */
        if (!m->data) return am_lua_fail(L, AM_ENOMEM);
        for (lua_Integer i = 1; i <= r; i++) {
            lua_geti(L, 1, i);
            for (lua_Integer j = 1; j <= c; j++) {
                lua_geti(L, -1, j);
                int isnum;
                lua_Number v = lua_tonumberx(L, -1, &isnum);
                if (!isnum)
                    luaL_argerror(L, 1, lua_pushfstring(L, "value [%I][%I] is a %s, not a number", (LUAI_UACINT)i,
                                                        (LUAI_UACINT)j, luaL_typename(L, -1)));
                m->data[(i - 1) * c + (j - 1)] = (float)v;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        return 1;
    }
    lua_Integer r = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
    luaL_argcheck(L, r >= 0, 1, "rows must be >= 0");
    luaL_argcheck(L, c >= 0, 2, "columns must be >= 0");
    AmMatrix *m = am_lua_newmatrix(L, r, c);
    if (!m->data) return am_lua_fail(L, AM_ENOMEM);
    return 1;
}

/* am.load_npy(path) -> Matrix | nil, msg, code  (1-D arrays (n,) load as n x 1) */
static int l_load_npy(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    AmMatrix *m = am_lua_newmatrix(L, 0, 0);               /* [path, m] */
    float *data = NULL;
    int64_t r = 0, c = 0;
    int rc = npy_load_f32(path, &data, &r, &c);
    if (rc) return am_lua_fail(L, rc);
    size_t n = (size_t)(r * c);
    float *al = am_alloc_floats(n ? n : 1);
    if (!al) {
        free(data);
        return am_lua_failmsg(L, AM_ENOMEM, "%s: cannot allocate %lld x %lld floats", path, (long long)r, (long long)c);
    }
    if (n) memcpy(al, data, n * sizeof(float));
    free(data);
    am_free_aligned(m->data);
    m->data = al;
    m->rows = r;
    m->cols = c;
    return 1;
}

static const luaL_Reg matrix_methods[] = {
    {"rows", l_rows},   {"cols", l_cols},       {"shape", l_shape},       {"get", l_get},
    {"set", l_set},     {"row", l_row},         {"totable", l_totable},   {"dot", l_dot},
    {"cosine", l_cosine}, {"norm", l_norm},     {"save_npy", l_save_npy}, {"close", l_close},
    {NULL, NULL},
};

static const luaL_Reg matrix_meta[] = {
    {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {"__len", l_len}, {NULL, NULL},
};

static const luaL_Reg matrix_funcs[] = {
    {"matrix", l_matrix},
    {"load_npy", l_load_npy},
    {NULL, NULL},
};

void am_lua_open_matrix(lua_State *L) {
    am_lua_newclass(L, AM_MATRIX_MT, matrix_methods, matrix_meta);
    luaL_setfuncs(L, matrix_funcs, 0);
}

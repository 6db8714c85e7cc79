/* safetensors.c - validating safetensors reader (mmap) and atomic F32 writer. */
#define _GNU_SOURCE
#include "safetensors.h"
#include "am_base.h"
#include "io_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

struct SafeTensors {
    char *path;
    const unsigned char *map; /* whole file, read-only */
    size_t map_len;
    const unsigned char *data; /* start of the data section */
    uint64_t data_len;
    cJSON *root;               /* parsed header; entry names point into it */
    const cJSON *meta;         /* "__metadata__" object or NULL */
    int n;
    SafeTensorEntry *e;        /* sorted by begin */
    const SafeTensorEntry **by_name; /* sorted by name, for find */
};

static const struct { const char *name; size_t size; } dtypes[] = {
    [AM_DT_BOOL] = {"BOOL", 1}, [AM_DT_U8] = {"U8", 1},   [AM_DT_I8] = {"I8", 1},
    [AM_DT_F8_E5M2] = {"F8_E5M2", 1}, [AM_DT_F8_E4M3] = {"F8_E4M3", 1},
    [AM_DT_I16] = {"I16", 2},   [AM_DT_U16] = {"U16", 2}, [AM_DT_F16] = {"F16", 2},
    [AM_DT_BF16] = {"BF16", 2}, [AM_DT_I32] = {"I32", 4}, [AM_DT_U32] = {"U32", 4},
    [AM_DT_F32] = {"F32", 4},   [AM_DT_F64] = {"F64", 8}, [AM_DT_I64] = {"I64", 8},
    [AM_DT_U64] = {"U64", 8},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *safetensors_dtype_name(AmDtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].name : "?";
}

/* ---------------------------------------------------------------- conversions */

float am_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf / nan (payload kept) */
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float am_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t am_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00u | (ax > 0x7f800000u ? (uint16_t)(0x200u | ((ax >> 13) & 0x3ffu)) : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                       /* below 2^-14: subnormal half */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f); /* exact scaling, ties to even */
    }
    uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

uint16_t am_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ---------------------------------------------------------------- reader */

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* A JSON number that is a non-negative integer below 2^53 (exactly representable). */
static int json_u64(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return 0;
    double v = it->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int parse_entry(SafeTensors *st, const cJSON *item, SafeTensorEntry *e) {
    const char *path = st->path, *name = item->string;
    e->name = name;
    if (!cJSON_IsObject(item))
        return am_error(AM_EFORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return am_error(AM_EFORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (!cJSON_IsArray(sh))
        return am_error(AM_EFORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (!cJSON_IsArray(off))
        return am_error(AM_EFORMAT, "%s: tensor '%s': missing or non-array \"data_offsets\"", path, name);
    int d;
    for (d = 0; d < N_DTYPES; d++)
        if (strcmp(dt->valuestring, dtypes[d].name) == 0) break;
    if (d == N_DTYPES)
        return am_error(AM_EDTYPE, "%s: tensor '%s': unknown dtype '%s'", path, name, dt->valuestring);
    e->dtype = (AmDtype)d;

    int ndim = cJSON_GetArraySize(sh);
    if (ndim > AM_ST_MAX_DIMS)
        return am_error(AM_EFORMAT, "%s: tensor '%s': %d dimensions (at most %d supported)", path, name, ndim,
                        AM_ST_MAX_DIMS);
    e->ndim = ndim;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        uint64_t v;
        if (!json_u64(x, &v))
            return am_error(AM_EFORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                            name, i);
        e->shape[i++] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v)
            return am_error(AM_EFORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= v;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[d].size, &bytes) || numel > SIZE_MAX)
        return am_error(AM_EFORMAT, "%s: tensor '%s': shape overflows", path, name);
    e->numel = (size_t)numel;

    uint64_t b, en;
    if (cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &b) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &en))
        return am_error(AM_EFORMAT, "%s: tensor '%s': \"data_offsets\" must be two non-negative integers [begin, end]",
                        path, name);
    e->begin = b;
    e->end = en;
    if (en < b)
        return am_error(AM_EFORMAT, "%s: tensor '%s' data_offsets [%llu, %llu]: end before begin", path, name,
                        (unsigned long long)b, (unsigned long long)en);
    if (en > st->data_len)
        return am_error(AM_EFORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] past end of data (%llu bytes)",
                        path, name, (unsigned long long)b, (unsigned long long)en,
                        (unsigned long long)st->data_len);
    if (en - b != bytes) {
        char s[160];
        shape_str(s, sizeof s, e->shape, e->ndim);
        return am_error(AM_EFORMAT,
                        "%s: tensor '%s' data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu "
                        "(%llu elements x %zu bytes)",
                        path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                        dtypes[d].name, s, (unsigned long long)bytes, (unsigned long long)numel, dtypes[d].size);
    }
    return AM_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const SafeTensorEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
    const SafeTensorEntry *x = *(const SafeTensorEntry *const *)a, *y = *(const SafeTensorEntry *const *)b;
    return strcmp(x->name, y->name);
}

static int parse_header(SafeTensors *st, const char *hdr, size_t hlen) {
    const char *path = st->path;
    /* the header must be one JSON object, optionally followed by padding whitespace */
    const char *end = NULL;
    st->root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!st->root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return am_error(AM_EFORMAT, "%s: header is not valid JSON (error near header byte %zu of %zu)", path, at,
                        hlen);
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return am_error(AM_EFORMAT, "%s: header is not valid JSON (unexpected byte 0x%02x at header byte %zu)",
                            path, (unsigned char)*p, (size_t)(p - hdr));
    if (!cJSON_IsObject(st->root)) return am_error(AM_EFORMAT, "%s: header is not a JSON object", path);

    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, st->root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (cJSON_IsNull(item)) continue;
            if (st->meta) return am_error(AM_EFORMAT, "%s: \"__metadata__\" appears twice", path);
            if (!cJSON_IsObject(item)) return am_error(AM_EFORMAT, "%s: \"__metadata__\" is not an object", path);
            const cJSON *kv;
            cJSON_ArrayForEach(kv, item) {
                if (!cJSON_IsString(kv))
                    return am_error(AM_EFORMAT, "%s: \"__metadata__\" value for '%s' is not a string", path,
                                    kv->string);
            }
            st->meta = item;
            continue;
        }
        n++;
    }
    st->e = xcalloc((size_t)(n ? n : 1), sizeof *st->e);
    st->by_name = xcalloc((size_t)(n ? n : 1), sizeof *st->by_name);
    cJSON_ArrayForEach(item, st->root) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        int rc = parse_entry(st, item, &st->e[st->n]);
        if (rc) return rc;
        st->n++;
    }
    /* duplicate names (JSON allows them syntactically; safetensors does not) */
    for (int i = 0; i < st->n; i++) st->by_name[i] = &st->e[i];
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return am_error(AM_EFORMAT, "%s: tensor '%s' is listed twice in the header", path, st->by_name[i]->name);
    /* overlapping byte ranges: sort by begin; empty tensors own no bytes */
    qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_begin);
    const SafeTensorEntry *prev = NULL;
    for (int i = 0; i < st->n; i++) {
        const SafeTensorEntry *e = &st->e[i];
        if (e->begin == e->end) continue;
        if (prev && e->begin < prev->end)
            return am_error(AM_EFORMAT, "%s: tensors '%s' data_offsets [%llu, %llu] and '%s' [%llu, %llu] overlap",
                            path, prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                            e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
        if (!prev || e->end > prev->end) prev = e;
    }
    /* the entries moved: rebuild the name index */
    for (int i = 0; i < st->n; i++) st->by_name[i] = &st->e[i];
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name);
    return AM_OK;
}

int safetensors_open(const char *path, SafeTensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return am_error(AM_ENOTFOUND, "%s: file not found", path);
        return am_error(AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return am_error(AM_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return am_error(AM_EFORMAT, "%s: file is %zu bytes, too short for a safetensors file (needs at least 8)",
                        path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED) return am_error(AM_EIO, "%s: cannot map %zu bytes: %s", path, size, strerror(err));

    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    st->map = map;
    st->map_len = size;
    uint64_t hlen;
    memcpy(&hlen, st->map, 8);
    int rc = AM_OK;
    if (hlen > size - 8)
        rc = am_error(AM_EFORMAT, "%s: header length %llu past end of file (%zu bytes after the 8-byte length)", path,
                      (unsigned long long)hlen, size - 8);
    else if (hlen > AM_ST_MAX_HEADER)
        rc = am_error(AM_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", path, (unsigned long long)hlen,
                      AM_ST_MAX_HEADER);
    else if (hlen < 2)
        rc = am_error(AM_EFORMAT, "%s: header length %llu is too small for a JSON object", path,
                      (unsigned long long)hlen);
    if (rc == AM_OK) {
        st->data = st->map + 8 + hlen;
        st->data_len = size - 8 - hlen;
        rc = parse_header(st, (const char *)st->map + 8, (size_t)hlen);
    }
    if (rc != AM_OK) {
        safetensors_close(st);
        return rc;
    }
    *out = st;
    return AM_OK;
}

void safetensors_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap((void *)st->map, st->map_len);
    cJSON_Delete(st->root);
    free(st->e);
    free(st->by_name);
    free(st->path);
    free(st);
}

int safetensors_count(const SafeTensors *st) { return st->n; }

const SafeTensorEntry *safetensors_entry(const SafeTensors *st, int i) {
    return i >= 0 && i < st->n ? &st->e[i] : NULL;
}

const SafeTensorEntry *safetensors_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->by_name[mid]->name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *safetensors_metadata(const SafeTensors *st, const char *key) {
    if (!st->meta) return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(st->meta, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

int safetensors_read_f32(const SafeTensors *st, const SafeTensorEntry *e, float *dst, size_t n) {
    if (n != e->numel) {
        char s[160];
        shape_str(s, sizeof s, e->shape, e->ndim);
        return am_error(AM_ESHAPE, "%s: tensor '%s' has %zu elements (shape %s), caller expected %zu", st->path,
                        e->name, e->numel, s, n);
    }
    const unsigned char *p = st->data + e->begin;
    switch (e->dtype) {
    case AM_DT_F32:
        if (n) memcpy(dst, p, n * 4);
        break;
    case AM_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = am_f16_to_f32(h);
        }
        break;
    case AM_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = am_bf16_to_f32(h);
        }
        break;
    case AM_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    default:
        return am_error(AM_EDTYPE, "%s: tensor '%s' has dtype %s; only F32, F16, BF16 and F64 can be read as floats",
                        st->path, e->name, safetensors_dtype_name(e->dtype));
    }
    return AM_OK;
}

/* ---------------------------------------------------------------- writer */

int safetensors_write(const char *path, int n, const char *const names[], const int64_t *const shapes[],
                      const int ndims[], const float *const data[], const char *metadata_json) {
    StrBuf h = {0};
    int rc = AM_OK;
    sb_puts(&h, "{");
    if (metadata_json) {
        cJSON *meta = cJSON_Parse(metadata_json);
        int ok = cJSON_IsObject(meta);
        const cJSON *kv;
        if (ok) cJSON_ArrayForEach(kv, meta) ok &= cJSON_IsString(kv);
        if (!ok) {
            cJSON_Delete(meta);
            sb_free(&h);
            return am_error(AM_EINVAL, "%s: metadata must be a JSON object of string values", path);
        }
        char *s = cJSON_PrintUnformatted(meta);
        cJSON_Delete(meta);
        sb_puts(&h, "\"__metadata__\":");
        sb_puts(&h, s);
        free(s);
    }
    uint64_t off = 0;
    size_t *bytes = xcalloc((size_t)(n > 0 ? n : 1), sizeof *bytes);
    for (int i = 0; i < n && rc == AM_OK; i++) {
        if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0)
            rc = am_error(AM_EINVAL, "%s: tensor %d has an invalid name", path, i);
        else if (ndims[i] < 0 || ndims[i] > AM_ST_MAX_DIMS)
            rc = am_error(AM_EINVAL, "%s: tensor '%s': %d dimensions (0..%d supported)", path, names[i], ndims[i],
                          AM_ST_MAX_DIMS);
        for (int j = 0; j < i && rc == AM_OK; j++)
            if (strcmp(names[i], names[j]) == 0) rc = am_error(AM_EINVAL, "%s: tensor '%s' given twice", path, names[i]);
        if (rc) break;
        uint64_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) {
            if (shapes[i][d] < 0) {
                rc = am_error(AM_EINVAL, "%s: tensor '%s': negative dimension", path, names[i]);
                break;
            }
            numel *= (uint64_t)shapes[i][d];
        }
        if (rc) break;
        bytes[i] = (size_t)numel * 4;
        if (i || metadata_json) sb_puts(&h, ",");
        sb_json_string(&h, names[i]);
        sb_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < ndims[i]; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)shapes[i][d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes[i]));
        off += bytes[i];
    }
    if (rc) {
        free(bytes);
        sb_free(&h);
        return rc;
    }
    sb_puts(&h, "}");
    while (h.len % 8) sb_puts(&h, " "); /* as the safetensors library: data section 8-byte aligned */

    AtomicFile af;
    rc = atomic_open(&af, path);
    if (rc == AM_OK) {
        uint64_t hl = h.len;
        rc = atomic_write(&af, &hl, 8);
        if (rc == AM_OK) rc = atomic_write(&af, h.p, h.len);
        for (int i = 0; i < n && rc == AM_OK; i++) rc = atomic_write(&af, data[i], bytes[i]);
        if (rc == AM_OK) rc = atomic_commit(&af);
        else atomic_abort(&af);
    }
    free(bytes);
    sb_free(&h);
    return rc;
}

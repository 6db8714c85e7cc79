/* harness.h - a tiny test harness (redis testhelp.h style).
 *
 *   TEST(name) { ... CHECK(cond); CHECK_NEAR(a, b, tol); ... }
 *   int main(void) { RUN(name); ...; return test_report(); }
 *
 * Failures print file:line and keep going; test_report() prints "N passed, N failed"
 * and returns non-zero when anything failed. */
#ifndef AM_HARNESS_H
#define AM_HARNESS_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed;
static const char *t_cur_name;

#define TEST(name) static void name(void)
#define RUN(name) do { \
        t_cur_name = #name; t_cur_failed = 0; name(); \
        if (t_cur_failed) { t_failed++; printf("FAIL %s\n", #name); } \
        else { t_passed++; printf("ok   %s\n", #name); } fflush(stdout); } while (0)
#define CHECK(c) do { if (!(c)) { t_cur_failed++; \
        printf("  %s:%d: %s: check failed: %s\n", __FILE__, __LINE__, t_cur_name, #c); } } while (0)
#define CHECKF(c, ...) do { if (!(c)) { t_cur_failed++; \
        printf("  %s:%d: %s: ", __FILE__, __LINE__, t_cur_name); printf(__VA_ARGS__); printf("\n"); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); if (_a != _b) { t_cur_failed++; \
        printf("  %s:%d: %s: %s == %lld, expected %lld\n", __FILE__, __LINE__, t_cur_name, #a, _a, _b); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(fabs(_a - _b) <= (tol))) { t_cur_failed++; \
        printf("  %s:%d: %s: %s = %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, t_cur_name, #a, _a, _b, (double)(tol)); } } while (0)
#define CHECK_OK(expr) do { int _rc = (expr); if (_rc != 0) { t_cur_failed++; \
        printf("  %s:%d: %s: %s returned %d: %s\n", __FILE__, __LINE__, t_cur_name, #expr, _rc, am_lasterror()); } } while (0)

static inline int test_report(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

/* max |a-b| / max(max|b|, tiny): the per-tensor relative error used against fixtures */
static inline double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1e-30 ? mb : 1e-30);
}
#endif

/* test_base.c - errors, rng, hashing, file helpers. */
#include "am_base.h"
#include "harness.h"
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(error_messages) {
    CHECK_EQ_INT(am_error(AM_EFORMAT, "%s: bad header", "x.safetensors"), AM_EFORMAT);
    CHECK(strcmp(am_lasterror(), "x.safetensors: bad header") == 0);
    am_error_wrap(AM_EFORMAT, "importing %s", "dir");
    CHECK(strcmp(am_lasterror(), "importing dir: x.safetensors: bad header") == 0);
    CHECK(strcmp(am_strerror(AM_ENOTFOUND), "not found") == 0);
}

/* The one code list (AM_ERRORS): every code has its own name and text, am_strerror never
 * returns a recorded message, and am_errmsg falls back to the code's text. */
TEST(error_codes) {
    static const struct { int code; const char *name, *text; } codes[] = {
#define X(name, value, text) {AM_##name, #name, text},
        AM_ERRORS(X)
#undef X
    };
    const int n = (int)(sizeof codes / sizeof codes[0]);
    CHECK(n == 13);
    for (int i = 0; i < n; i++) {
        CHECK(codes[i].code <= -32000 && codes[i].code >= -32099);
        CHECKF(strcmp(am_strerror(codes[i].code), codes[i].text) == 0, "%s", codes[i].name);
        CHECKF(am_errname(codes[i].code) && strcmp(am_errname(codes[i].code), codes[i].name) == 0, "%s", codes[i].name);
        CHECK(strcmp(am_strerror(codes[i].code), "unknown error") != 0);
        for (int j = 0; j < i; j++) {
            CHECKF(codes[i].code != codes[j].code, "%s and %s share a number", codes[i].name, codes[j].name);
            CHECKF(strcmp(codes[i].text, codes[j].text) != 0, "%s and %s share a text", codes[i].name, codes[j].name);
        }
    }
    CHECK(am_errname(AM_OK) == NULL && am_errname(-31999) == NULL);
    CHECK(strcmp(am_strerror(-31999), "unknown error") == 0);
    CHECK(strcmp(am_strerror(AM_OK), "success") == 0);
    am_error(AM_EIO, "x.bin: cannot open");
    CHECK(strcmp(am_strerror(AM_EIO), "input/output error") == 0);
    CHECK(strcmp(am_errmsg(AM_EIO), "x.bin: cannot open") == 0);
    am_clearerror();
    CHECK(strcmp(am_errmsg(AM_EFORMAT), "malformed input") == 0);
    CHECK(strcmp(am_lasterror(), "no error") == 0);
}

/* AM_ASSERT calls the registered fatal hook (the TUI's endwin) before it reports and aborts. */
static void hook_marks(void) { (void)!write(STDOUT_FILENO, "hook ran\n", 9); }
TEST(fatal_hook_runs_before_abort) {
    int fd[2];
    CHECK(pipe(fd) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        dup2(fd[1], STDERR_FILENO);
        am_set_fatal_hook(hook_marks);
        AM_ASSERT(1 + 1 == 3);
        _exit(0);
    }
    close(fd[1]);
    char buf[512] = { 0 };
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %d", st);
    char *h = strstr(buf, "hook ran"), *f = strstr(buf, "assertion failed: 1 + 1 == 3");
    CHECKF(h && f && h < f && strstr(buf, "test_base.c:"), "output: %s", buf);
}

TEST(rng_deterministic) {
    AmRng a, b;
    am_rng_seed(&a, 42);
    am_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) CHECK(am_rng_u32(&a) == am_rng_u32(&b));
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) { double x = am_rng_normal(&a); s += x; s2 += x * x; }
    CHECK_NEAR(s / n, 0.0, 0.01);
    CHECK_NEAR(s2 / n, 1.0, 0.02);
    for (int i = 0; i < 1000; i++) CHECK(am_rng_below(&a, 7) < 7);
}

TEST(hash_stable) {
    CHECK(am_hash64("abc", 3, 0) == am_hash64("abc", 3, 0));
    CHECK(am_hash64("abc", 3, 0) != am_hash64("abd", 3, 0));
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, "ab", 2);
    am_hasher_update(h, "c", 1);
    char hex1[33], hex2[33];
    am_hasher_hex(h, hex1);
    am_hasher_delete(h);
    h = am_hasher_new();
    am_hasher_update(h, "abc", 3);
    am_hasher_hex(h, hex2);
    am_hasher_delete(h);
    CHECK(strlen(hex1) == 32 && strcmp(hex1, hex2) == 0);
}

TEST(file_roundtrip) {
    char dir[] = "/tmp/am_test_base_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *sub = xasprintf("%s/a/b", dir), *path = xasprintf("%s/a/b/f.txt", dir);
    CHECK_OK(am_mkdir_p(sub));
    CHECK_OK(am_write_file(path, "hello", 5));
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(am_read_file(path, &buf, &n));
    CHECK(n == 5 && buf && strcmp(buf, "hello") == 0);
    free(buf);
    CHECK_EQ_INT(am_read_file("/nonexistent/zzz", &buf, &n), AM_EIO);
    CHECK(strstr(am_lasterror(), "/nonexistent/zzz") != NULL);
    free(sub); free(path);
}

TEST(buffer_pool_reuses) {
    setenv("AMALGAM_POOL_MB", "8", 1);
    size_t got = 0, got2 = 0;
    char *p = am_pool_take(3u << 20, 64, &got);
    CHECK(p != NULL && got >= (3u << 20) && ((uintptr_t)p & 63) == 0);
    memset(p, 1, got);
    am_pool_give(p, got, 64);
    char *q = am_pool_take(3u << 20, 64, &got2);
    CHECK(q == p && got2 == got);                   /* the warm buffer comes back */
    char *r = am_pool_take(3u << 20, 2u << 20, &got2); /* another alignment: a new one */
    CHECK(r != p && ((uintptr_t)r & ((2u << 20) - 1)) == 0);
    am_pool_give(r, got2, 2u << 20);
    char *big = am_pool_take(9u << 20, 64, &got2);  /* over the 8 MB cap: never pooled */
    am_pool_give(big, got2, 64);
    char *small = am_pool_take(100, 64, &got2);     /* under 1 MB: plain */
    CHECK(small != NULL && got2 >= 100);
    am_pool_give(small, got2, 64);
    am_pool_give(q, got, 64);
    char *tiny_fit = am_pool_take(1u << 20, 64, &got2); /* the pooled 3 MB buffer wastes too much for 1 MB */
    CHECK(tiny_fit != q);
    am_pool_give(tiny_fit, got2, 64);
    am_pool_drain();
}

TEST(phase_timers) {
    am_phase_reset();
    am_phase_add(AM_PHASE_ENCODE, 0.25);
    am_phase_add(AM_PHASE_ENCODE, 0.5);
    am_phase_add(AM_PHASE_STORE, 1e-3);
    double t[AM_PHASE_COUNT];
    am_phase_get(t);
    CHECK(fabs(t[AM_PHASE_ENCODE] - 0.75) < 1e-6 && fabs(t[AM_PHASE_STORE] - 1e-3) < 1e-6 && t[AM_PHASE_MERGE] == 0);
    CHECK(strcmp(am_phase_name(AM_PHASE_TOKENIZE), "tokenize") == 0 && am_phase_name(AM_PHASE_COUNT) == NULL);
    am_phase_reset();
    am_phase_get(t);
    CHECK(t[AM_PHASE_ENCODE] == 0);
}

int main(void) {
    RUN(error_messages);
    RUN(error_codes);
    RUN(fatal_hook_runs_before_abort);
    RUN(rng_deterministic);
    RUN(hash_stable);
    RUN(file_roundtrip);
    RUN(buffer_pool_reuses);
    RUN(phase_timers);
    return test_report();
}

/* demo.c - a plan of steps the TUI runs while it shows the store (`amalgam demo` on a terminal).
 *
 * Each step is a child `amalgam --store DIR ...` started with posix_spawn in its own session
 * (the TUI's Ctrl-C and quitting do not reach it), stdout and stderr appended to the plan's log
 * file. The loop polls it (waitpid WNOHANG) every turn: a finished step reloads models and
 * results and starts the next one; a failed one stops the plan with its error in the Log and
 * the header. The log's new lines go to the Log panel and the last one to the header meter, so
 * a step's own progress (training steps, `eval --progress`'s task k/N) shows there. Runs and
 * results written by the children are followed through the store like any other process's.
 *
 * When the TUI quits, the running step goes on and the rest are not started; its pid is kept in
 * <store>/demo.pid, so the next `amalgam demo` waits for it instead of starting the same work
 * twice, then goes through the plan again (finished steps find their results and return at once).
 */
#define _GNU_SOURCE
#include "tui_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "am_base.h"


struct TuiDemo {
    const TuiStep *steps;
    int n, cur;            /* cur: the running (or next) step; n when all are done */
    pid_t pid;             /* the running child, 0 none; -pid: an earlier demo's, waited for */
    int failed;            /* 1: stopped at step cur */
    double t0, step_t0, done_at;
    char log_path[600];
    long log_off;          /* bytes of the log already read */
    char last[200];        /* the last line of the step's output */
    char err[256];
};

static void fmt_secs(char *b, size_t n, double s) {
    int t = (int)(s + 0.5);
    if (t < 0) t = 0;
    if (t >= 60) snprintf(b, n, "%d:%02d", t / 60, t % 60);
    else snprintf(b, n, "%ds", t);
}

/* <store>/demo.pid: the pid and step number of the step running now, for the next demo */
void tui_demo_pid_write(const char *store_dir, int pid, int step) {
    char path[600];
    snprintf(path, sizeof path, "%s/demo.pid", store_dir);
    if (pid <= 0) { unlink(path); return; }
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%d %d\n", pid, step);
    fclose(f);
}

int tui_demo_pid_running(const char *store_dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/demo.pid", store_dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f) return 0;
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    fclose(f);
    if (pid <= 0 || pid == getpid()) return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
    /* a reused pid that is not amalgam does not count */
    char proc[64], exe[512];
    snprintf(proc, sizeof proc, "/proc/%d/exe", pid);
    ssize_t k = readlink(proc, exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        const char *base = strrchr(exe, '/');
        if (!strstr(base ? base : exe, "amalgam")) return 0;
    }
    return pid;
}

/* this binary's path: exec'd by its own name, so the children show as `amalgam` in ps */
static int start_step(Tui *t, TuiDemo *d) {
    const TuiStep *s = &d->steps[d->cur];
    char *argv[64];
    int k = 0;
    argv[k++] = (char *)"amalgam";
    argv[k++] = (char *)"--store";
    argv[k++] = t->store_dir;
    for (int i = 0; s->argv[i] && k < 63; i++) argv[k++] = s->argv[i];
    argv[k] = NULL;
    FILE *lf = fopen(d->log_path, "a");
    if (lf) {
        fprintf(lf, "\n[%d/%d] %s\n", d->cur + 1, d->n, s->title);
        fclose(lf);
    }
    pid_t pid;
    int rc = tui_spawn(argv, d->log_path, 1, &pid);
    if (rc) {
        snprintf(d->err, sizeof d->err, "cannot start amalgam %s: %s", s->argv[0], strerror(rc));
        return -1;
    }
    d->pid = pid;
    d->step_t0 = tui_now();
    d->last[0] = 0;
    tui_demo_pid_write(t->store_dir, (int)pid, d->cur + 1);
    crt_logf("demo: step %d/%d: %s (pid %d)", d->cur + 1, d->n, s->title, (int)pid);
    return 0;
}

/* new lines of the log: to the Log panel; the last non-empty one (after its last \r) kept */
static void tail_log(TuiDemo *d) {
    FILE *f = fopen(d->log_path, "r");
    if (!f) return;
    if (fseek(f, d->log_off, SEEK_SET) == 0) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            size_t n = strlen(line);
            /* a partial last line is read when complete; an overlong one in pieces */
            if ((!n || line[n - 1] != '\n') && n < sizeof line - 1) break;
            d->log_off += (long)n;
            while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
            char *p = strrchr(line, '\r');
            p = p ? p + 1 : line;
            if (strncmp(p, "\033[K", 3) == 0) p += 3;
            if (!*p) continue;
            crt_logf("%s", p);
            snprintf(d->last, sizeof d->last, "%s", p);
        }
    }
    fclose(f);
}

TuiDemo *tui_demo_new(Tui *t, const TuiStep *steps, int n, const char *log_path) {
    TuiDemo *d = xcalloc(1, sizeof *d);
    d->steps = steps;
    d->n = n;
    d->t0 = tui_now();
    snprintf(d->log_path, sizeof d->log_path, "%s", log_path && *log_path ? log_path : "/dev/null");
    FILE *f = fopen(d->log_path, "r");
    if (f) { /* only what this demo appends is shown */
        fseek(f, 0, SEEK_END);
        d->log_off = ftell(f);
        fclose(f);
    }
    crt_logf("demo: %d steps, output in %s", n, d->log_path);
    return d;
}

int tui_demo_tick(Tui *t) {
    TuiDemo *d = t->demo;
    if (!d || d->failed || d->cur >= d->n) return 0;
    int changed = 0;
    if (d->pid < 0) { /* an earlier demo's step: wait until it is gone */
        if (kill(-d->pid, 0) == 0 || errno != ESRCH) return 0;
        crt_logf("demo: the earlier demo's step (pid %d) ended", (int)-d->pid);
        d->pid = 0;
        changed = 1;
    }
    if (d->pid > 0) {
        tail_log(d);
        int status = 0;
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == 0) return 0;
        tail_log(d);
        d->pid = 0;
        tui_demo_pid_write(t->store_dir, 0, 0);
        changed = 1;
        char el[16];
        fmt_secs(el, sizeof el, tui_now() - d->step_t0);
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            const TuiStep *s = &d->steps[d->cur];
            if (r > 0 && WIFSIGNALED(status))
                snprintf(d->err, sizeof d->err, "amalgam %s killed by signal %d", s->argv[0], WTERMSIG(status));
            else
                snprintf(d->err, sizeof d->err, "amalgam %s failed (exit %d)%s%s", s->argv[0],
                         r > 0 ? WEXITSTATUS(status) : -1, d->last[0] ? ": " : "", d->last);
            d->failed = 1;
            crt_logf("demo: step %d/%d failed after %s: %s (output: %s)", d->cur + 1, d->n, el, d->err, d->log_path);
            tui_flash(t, "demo step %d/%d failed: %s", d->cur + 1, d->n, d->err);
            return changed;
        }
        crt_logf("demo: step %d/%d done in %s", d->cur + 1, d->n, el);
        d->cur++;
        if (d->cur >= d->n) {
            d->done_at = tui_now();
            fmt_secs(el, sizeof el, d->done_at - d->t0);
            crt_logf("demo: all %d steps done in %s", d->n, el);
            tui_flash(t, "demo done in %s: every model evaluated on the full suite (F4 Results, F5 Plot)", el);
            return changed;
        }
    }
    if (d->cur == 0 && d->pid == 0 && !changed) {
        pid_t e = tui_demo_pid_running(t->store_dir);
        if (e > 0) {
            d->pid = -e;
            crt_logf("demo: waiting for the step an earlier demo left running (pid %d)", (int)e);
            return 0;
        }
    }
    if (start_step(t, d)) {
        d->failed = 1;
        crt_logf("demo: %s", d->err);
        tui_flash(t, "demo: %s", d->err);
    }
    return changed;
}

void tui_demo_meter(Tui *t, char *b, size_t n) {
    TuiDemo *d = t->demo;
    b[0] = 0;
    if (!d) return;
    char el[16], eta[16];
    if (d->cur >= d->n) {
        fmt_secs(el, sizeof el, d->done_at - d->t0);
        snprintf(b, n, "demo done %d/%d in %s", d->n, d->n, el);
        return;
    }
    const TuiStep *s = &d->steps[d->cur];
    if (d->failed) {
        snprintf(b, n, "demo FAILED at %d/%d %s: %s", d->cur + 1, d->n, s->title, d->err);
        return;
    }
    if (d->pid < 0) {
        snprintf(b, n, "demo: waiting for an earlier demo's step (pid %d)", (int)-d->pid);
        return;
    }
    double now = tui_now(), in = d->pid > 0 ? now - d->step_t0 : 0, left = s->est - in;
    if (left < 0) left = 0;
    for (int i = d->cur + 1; i < d->n; i++) left += d->steps[i].est;
    fmt_secs(el, sizeof el, now - d->t0);
    fmt_secs(eta, sizeof eta, left);
    snprintf(b, n, "demo %d/%d %s · %s · ETA ~%s%s%s", d->cur + 1, d->n, s->title, el, eta, d->last[0] ? " · " : "",
             d->last);
}

/* after the terminal is restored: say what goes on */
void tui_demo_free(Tui *t) {
    TuiDemo *d = t->demo;
    if (!d) return;
    if (d->pid > 0 && d->cur < d->n)
        fprintf(stderr, "amalgam demo: step %d/%d (%s) goes on in pid %d, output in %s; the other %d steps were not "
                "started: `amalgam demo` again waits for it and continues\n", d->cur + 1, d->n,
                d->steps[d->cur].title, (int)d->pid, d->log_path, d->n - d->cur - 1);
    else if (d->failed)
        fprintf(stderr, "amalgam demo: step %d/%d failed: %s (output in %s)\n", d->cur + 1, d->n, d->err, d->log_path);
    free(d);
    t->demo = NULL;
}

/* spawn.c - start an amalgam child process for the TUI (the demo's steps, recipes and resumes
 * from Runs, a saved merge's full evaluation). */
#define _GNU_SOURCE
#include "tui_internal.h"
#include "am_base.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* posix_spawn, so no code of ours runs between fork and exec (the TUI has threads). The child
 * gets its own session, so the terminal's Ctrl-C and hang-up do not reach it and it outlives
 * the TUI; signals the TUI catches are back to their defaults. */
int tui_spawn(char *const argv[], const char *log, int append, pid_t *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT), sigaddset(&def, SIGTERM), sigaddset(&def, SIGHUP), sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, am_self_exe(), &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* STORE/logs/STEM-YYYYmmddTHHMMSS.log (the directory made if missing): every child's output sits
 * beside the store it worked on, where the Log panel's user looks for it. */
void tui_log_path(Tui *t, const char *stem, char *buf, size_t cap) {
    char dir[600], stamp[32];
    snprintf(dir, sizeof dir, "%s/logs", t->store_dir);
    mkdir(dir, 0755);
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", gmtime_r(&now, &tm));
    snprintf(buf, cap, "%s/%s-%s.log", dir, stem, stamp);
}

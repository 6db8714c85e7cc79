/* store_compact.c - store_compact (store.h): mdb_copy -c into DIR/compact.tmp, then an atomic
 * rename over DIR/data.mdb, under an exclusive flock on DIR (store_open holds a shared one, so
 * no process has the old file open when it is replaced). Self-contained: it opens its own
 * LMDB environment and never touches a Store handle. */
#define _GNU_SOURCE
#include "store.h"
#include "am_base.h"

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* remove DIR/compact.tmp and what a crashed compaction left in it */
static void remove_tmp(const char *tmp) {
    char *p = xasprintf("%s/data.mdb", tmp);
    unlink(p);
    free(p);
    p = xasprintf("%s/lock.mdb", tmp);
    unlink(p);
    free(p);
    rmdir(tmp);
}

static int mdb_err(const char *dir, const char *op, int rc) {
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG)
        return am_error(AM_EMAPFULL, "store %s: compact: %s: %s (disk full)\nHINT: the copy needs as much free "
                        "space as the live data (amalgam du shows it)", dir, op, mdb_strerror(rc));
    return am_error(AM_ESTORE, "store %s: compact: %s: %s", dir, op, mdb_strerror(rc));
}

int store_compact(const char *dir, size_t *before, size_t *after) {
    if (before) *before = 0;
    if (after) *after = 0;
    if (!dir || !*dir) dir = store_default_dir();
    char *data = xasprintf("%s/data.mdb", dir), *tmp = xasprintf("%s/compact.tmp", dir);
    char *tmpdata = xasprintf("%s/data.mdb", tmp);
    MDB_env *env = NULL;
    int rc = AM_OK, fd = -1;
    struct stat st;
    if (stat(data, &st) != 0) {
        rc = am_error(AM_ENOTFOUND, "no store at '%s'\nHINT: check --store / $AMALGAM_STORE", dir);
        goto done;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = am_error(AM_EIO, "store %s: compact: cannot open the directory: %s", dir, strerror(errno));
        goto done;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? am_error(AM_ESTORE, "store %s: compact: the store is open in another process (or in this one)\n"
                            "HINT: compact when no training, eval or lua session uses it", dir)
                 : am_error(AM_EIO, "store %s: compact: cannot lock the directory: %s", dir, strerror(errno));
        goto done;
    }
    size_t size0 = file_size(data);
    remove_tmp(tmp);
    if (mkdir(tmp, 0775) != 0) {
        rc = am_error(AM_EIO, "store %s: compact: cannot create %s: %s", dir, tmp, strerror(errno));
        goto done;
    }
    int mrc = mdb_env_create(&env);
    if (!mrc) mrc = mdb_env_set_maxdbs(env, 16);
    /* read-only: nothing to write to the old file; MDB_NOTLS: no thread-bound reader slot */
    if (!mrc) mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0664);
    if (mrc) {
        rc = mdb_err(dir, "open", mrc);
        goto done;
    }
    if ((mrc = mdb_env_copy2(env, tmp, MDB_CP_COMPACT))) {
        rc = mdb_err(dir, "copy", mrc);
        goto done;
    }
    mdb_env_close(env);
    env = NULL;
    /* the copy is durable before it replaces the original; the rename is durable after */
    if (fsync_path(tmpdata, 0) != 0 || rename(tmpdata, data) != 0 || fsync_path(dir, 1) != 0) {
        rc = am_error(AM_EIO, "store %s: compact: replacing data.mdb: %s (the store is unchanged unless the "
                      "rename happened)", dir, strerror(errno));
        goto done;
    }
    if (before) *before = size0;
    if (after) *after = file_size(data);
done:
    if (env) mdb_env_close(env);
    remove_tmp(tmp);
    if (fd >= 0) close(fd); /* releases the flock: waiting store_open calls see the new file */
    free(tmpdata);
    free(tmp);
    free(data);
    return rc;
}

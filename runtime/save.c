/* Safe saves (mtr/save.h): an unnamed file linked into place, fsync before the
 * rename, an flock on the replaced file, the umask's mode, refused non-regular
 * targets, and strerror in every message. */
#define _GNU_SOURCE 1 /* O_TMPFILE, fopencookie */
#include "mtr/save.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_TAG ".mtr-tmp-"

static FILE *notes_stream;

void mtr_save_notes(FILE *notes)
{
    notes_stream = notes;
}

static void init(MtrSave *s)
{
    memset(s, 0, sizeof *s);
    s->dir_fd = s->fd = s->lock_fd = -1;
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)    ? "a folder"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

static MtrStatus nomem(MtrError *err, const char *path)
{
    return mtr_fail(err, MTR_E_NOMEM, "cannot write '%s': out of memory", path);
}

/* Fills s->shown, s->path (the file to replace) and s->dir_fd. */
static MtrStatus resolve(MtrSave *s, const char *path, MtrError *err)
{
    init(s);
    if (!(s->shown = strdup(path))) return nomem(err, path);
    struct stat ls, st;
    if (lstat(path, &ls) != 0) {
        if (errno != ENOENT)
            return mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", path, strerror(errno));
        s->path = strdup(path);
    } else if (S_ISLNK(ls.st_mode)) {
        if (stat(path, &st) != 0)
            return mtr_fail(err, MTR_E_IO,
                            "cannot write '%s': it is a symbolic link to a missing or "
                            "unreachable file (%s)",
                            path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return mtr_fail(err, MTR_E_IO,
                            "cannot write '%s': it is a symbolic link to %s, not a regular file",
                            path, kind_of(st.st_mode));
        s->path = realpath(path, NULL);
        if (!s->path && errno != ENOMEM)
            return mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(ls.st_mode)) {
        return mtr_fail(err, MTR_E_IO, "cannot write '%s': it exists and is %s, not a regular file",
                        path, kind_of(ls.st_mode));
    } else {
        s->path = strdup(path);
    }
    if (!s->path) return nomem(err, path);
    char *slash = strrchr(s->path, '/');
    char *dir =
        slash ? strndup(s->path, slash == s->path ? 1 : (size_t)(slash - s->path)) : strdup(".");
    if (!dir) return nomem(err, path);
    s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    MtrStatus st2 = MTR_OK;
    if (s->dir_fd < 0)
        st2 = mtr_fail(err, MTR_E_IO, "cannot write '%s': its folder '%s': %s", path, dir,
                       strerror(e));
    free(dir);
    return st2;
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Locks the file now at s->path (none: nothing to lock), waiting when another
 * process holds it, until the locked file is still the one at s->path. */
static MtrStatus lock_target(MtrSave *s, MtrError *err)
{
    for (int tries = 0; s->lock_fd < 0; tries++) {
        int fd = open(s->path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT || errno == EACCES) return MTR_OK; /* new, or unreadable: no lock */
            return mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", s->shown, strerror(errno));
        }
        struct stat held, now;
        if (fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
            close(fd);
            return mtr_fail(err, MTR_E_IO, "cannot write '%s': it is no longer a regular file",
                            s->shown);
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) { /* a file system without locks: go on unlocked */
                close(fd);
                return MTR_OK;
            }
            if (notes_stream)
                fprintf(notes_stream, "waiting for another process that is saving '%s'\n",
                        s->shown);
            while (flock(fd, LOCK_EX) != 0)
                if (errno != EINTR) {
                    int e = errno;
                    close(fd);
                    return mtr_fail(err, MTR_E_IO, "cannot lock '%s': %s", s->shown, strerror(e));
                }
        }
        if (stat(s->path, &now) == 0 && now.st_dev == held.st_dev && now.st_ino == held.st_ino) {
            s->lock_fd = fd;
            s->keep_mode = 1;
            s->old_mode = held.st_mode & 07777;
        } else {
            close(fd); /* replaced while we waited: lock the new one */
            if (tries > 1000)
                return mtr_fail(err, MTR_E_IO, "cannot lock '%s': it keeps being replaced",
                                s->shown);
        }
    }
    return MTR_OK;
}

MtrStatus mtr_save_lock(MtrSave *s, const char *path, MtrError *err)
{
    MtrStatus st = resolve(s, path, err);
    if (st == MTR_OK) st = lock_target(s, err);
    if (st != MTR_OK) mtr_save_abort(s);
    return st;
}

/* Removes this target's temporary files left by processes that no longer run. */
static void clean_stale(const MtrSave *s)
{
    int fd = dup(s->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    const char *base = base_of(s->path);
    size_t bl = strlen(base), tl = strlen(TMP_TAG);
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        if (n[0] != '.' || strncmp(n + 1, base, bl) != 0 || strncmp(n + 1 + bl, TMP_TAG, tl) != 0)
            continue;
        char *end;
        long pid = strtol(n + 1 + bl + tl, &end, 10);
        if (pid <= 0 || *end != '-' || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) (void)unlinkat(s->dir_fd, n, 0);
    }
    closedir(d);
}

/* Writes a fresh name ".BASE.mtr-tmp-PID-XXXXXX" for a file beside the
 * target into s->tmp (allocated by mtr_save_begin, so that a commit needs no
 * memory). */
static void tmp_name(MtrSave *s, unsigned salt)
{
    const char *base = base_of(s->path);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long r =
        (unsigned long)ts.tv_nsec * 2654435761u ^ salt * 40503u ^ (unsigned long)ts.tv_sec;
    snprintf(s->tmp, strlen(base) + 64, ".%s%s%ld-%06lx", base, TMP_TAG, (long)getpid(),
             r & 0xffffff);
}

static int have_proc_fd(void)
{
    return access("/proc/self/fd", X_OK) == 0;
}

MtrStatus mtr_save_begin(MtrSave *s, const char *path, MtrError *err)
{
    MtrStatus st = MTR_OK;
    if (!s->shown) st = resolve(s, path, err);
    if (st != MTR_OK) {
        mtr_save_abort(s);
        return st;
    }
    if (!(s->tmp = malloc(strlen(base_of(s->path)) + 64))) {
        st = nomem(err, s->shown);
        mtr_save_abort(s);
        return st;
    }
    clean_stale(s);
#ifdef O_TMPFILE
    if (have_proc_fd()) {
        s->fd = openat(s->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (s->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
            st = mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", s->shown, strerror(errno));
            mtr_save_abort(s);
            return st;
        }
    }
#endif
    for (unsigned salt = 0; s->fd < 0 && salt < 100; salt++) {
        /* No O_TMPFILE here: a named file, removed by a later save if we are killed. */
        tmp_name(s, salt);
        s->fd = openat(s->dir_fd, s->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0) {
            s->named = 1;
        } else {
            int e = errno;
            if (e != EEXIST) {
                st = mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", s->shown, strerror(e));
                break;
            }
        }
    }
    if (st == MTR_OK && s->fd < 0)
        st = mtr_fail(err, MTR_E_IO, "cannot write '%s': no free temporary name", s->shown);
    if (st != MTR_OK) mtr_save_abort(s);
    return st;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

MtrStatus mtr_save_write(MtrSave *s, const void *p, size_t n, MtrError *err)
{
    if (write_all(s->fd, p, n) != 0)
        return mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", s->shown, strerror(errno));
    return MTR_OK;
}

static ssize_t cookie_write(void *c, const char *buf, size_t n)
{
    MtrSave *s = c;
    if (write_all(s->fd, buf, n) != 0) {
        if (!s->write_errno) s->write_errno = errno;
        return 0;
    }
    return (ssize_t)n;
}

FILE *mtr_save_stream(MtrSave *s, MtrError *err)
{
    if (!s->f) {
        cookie_io_functions_t io = {.write = cookie_write};
        s->f = fopencookie(s, "w", io);
        if (!s->f) nomem(err, s->shown);
    }
    return s->f;
}

static mode_t umask_mode(void)
{
    mode_t u = umask(022);
    umask(u);
    return 0666 & ~u;
}

MtrStatus mtr_save_commit(MtrSave *s, MtrError *err)
{
    MtrStatus st = MTR_OK;
    const char *step = NULL;
    int e = 0;
    if (s->f) {
        int bad = fflush(s->f) != 0 || ferror(s->f);
        e = s->write_errno ? s->write_errno : errno;
        if (fclose(s->f) != 0) bad = 1;
        s->f = NULL;
        if (bad) {
            st = mtr_fail(err, MTR_E_IO, "cannot write '%s': %s", s->shown, strerror(e ? e : EIO));
            mtr_save_abort(s);
            return st;
        }
    }
    if ((st = lock_target(s, err)) != MTR_OK) {
        mtr_save_abort(s);
        return st;
    }
    if (!s->keep_mode) {
        struct stat old;
        if (stat(s->path, &old) == 0) s->keep_mode = 1, s->old_mode = old.st_mode & 07777;
    }
    mode_t mode = s->keep_mode ? (mode_t)s->old_mode : umask_mode();
    if (fchmod(s->fd, mode) != 0)
        step = "setting its mode";
    else if (fsync(s->fd) != 0)
        step = "fsync";
    if (step) {
        e = errno;
    } else if (!s->named) {
        /* Name the unnamed file beside the target, then rename it over. */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", s->fd);
        for (unsigned salt = 0; !s->named && salt < 100; salt++) {
            tmp_name(s, salt);
            if (linkat(AT_FDCWD, proc, s->dir_fd, s->tmp, AT_SYMLINK_FOLLOW) == 0) {
                s->named = 1;
            } else if ((e = errno) != EEXIST) {
                break;
            }
        }
        if (!s->named) step = "linking it into its folder";
    }
    if (st == MTR_OK && !step && renameat(s->dir_fd, s->tmp, s->dir_fd, base_of(s->path)) != 0)
        step = "rename", e = errno;
    if (st == MTR_OK && step)
        st = mtr_fail(err, MTR_E_IO, "cannot write '%s': %s: %s", s->shown, step, strerror(e));
    if (st == MTR_OK) {
        s->named = 0;           /* it is the target now */
        (void)fsync(s->dir_fd); /* makes the rename durable; it cannot be undone now */
    }
    mtr_save_abort(s);
    return st;
}

void mtr_save_abort(MtrSave *s)
{
    if (!s->shown) { /* zeroed, or already released */
        init(s);
        return;
    }
    if (s->f) fclose(s->f);
    if (s->fd >= 0) close(s->fd);
    if (s->named && s->dir_fd >= 0) (void)unlinkat(s->dir_fd, s->tmp, 0);
    if (s->dir_fd >= 0) close(s->dir_fd);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->tmp);
    free(s->path);
    free(s->shown);
    init(s);
}

MtrStatus mtr_save_file(const char *path, const void *buf, size_t len, MtrError *err)
{
    MtrSave s;
    init(&s);
    MtrStatus st = mtr_save_begin(&s, path, err);
    if (st == MTR_OK && (st = mtr_save_write(&s, buf, len, err)) != MTR_OK) mtr_save_abort(&s);
    if (st == MTR_OK) st = mtr_save_commit(&s, err);
    return st;
}

int mtr_close_stdout(const char *prog)
{
    int bad = ferror(stdout) != 0;
    errno = 0;
    if (fflush(stdout) != 0) bad = 1;
    int e = errno;
    if (fclose(stdout) != 0 && !bad) bad = 1, e = errno;
    if (!bad) return 0;
    if (e == EPIPE) return 1; /* the reader went away (`| head`): nothing to say */
    fprintf(stderr, "%s: error: cannot write to standard output%s%s\n", prog, e ? ": " : "",
            e ? strerror(e) : "");
    return 1;
}

static const char *stdout_prog = "mtr";

static void check_stdout(void)
{
    if (mtr_close_stdout(stdout_prog) != 0) _exit(1);
}

void mtr_check_stdout_at_exit(const char *prog)
{
    stdout_prog = prog;
    atexit(check_stdout);
}

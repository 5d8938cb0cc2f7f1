/* Saving a file safely, the one way every output of mtrc and mtrun is written
 * (model.bin, --metrics, --step-log, predict/recommend -o, export's files):
 *
 * - the new content goes to a file with no name (O_TMPFILE) in the target's
 *   folder, linked in only when complete, so a kill at any moment leaves the
 *   old file or the new one and nothing else; where the file system has no
 *   O_TMPFILE, to a named temporary file ".NAME.mtr-tmp-PID-XXXXXX", and
 *   such names of processes that no longer run are removed by the next save
 *   into that folder;
 * - it is written, flushed and fsynced before it replaces the target (rename),
 *   then the folder is fsynced;
 * - the replacement happens under an exclusive flock on the old file, and
 *   mtr_save_lock lets a read-modify-write (`mtrun MODEL set`) hold that lock
 *   from before its read, so two concurrent `set`s both take effect; a save
 *   that has to wait says so on the notes stream (mtr_save_notes);
 * - a new file gets the umask's mode (0666 & ~umask), a replaced one keeps
 *   its mode; a symbolic link to a regular file is followed (the link stays);
 * - a target that exists and is not a regular file (a device, a FIFO, a
 *   folder, a link to one) is refused before anything is written;
 * - every failure says what failed and why (strerror).
 */
#ifndef MTR_SAVE_H
#define MTR_SAVE_H

#include "mtr/status.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *path;    /* the file replaced: the target, or where its symbolic link points */
    char *shown;   /* the target as the caller named it, for messages */
    char *tmp;     /* room for the temporary file's name */
    int named;     /* the new content has that name (else it has none yet) */
    int dir_fd;    /* the target's folder */
    int fd;        /* the new content */
    int lock_fd;   /* the old file, locked; -1 when not locked */
    int keep_mode; /* replace a file whose mode was old_mode */
    unsigned old_mode;
    FILE *f;         /* a stream over fd, from mtr_save_stream */
    int write_errno; /* the first error of a write through f */
} MtrSave;

/* Where a save that waits for another process's lock says so (NULL: silent,
 * the default). mtrun and mtrc set stderr. */
void mtr_save_notes(FILE *notes);

/* Checks the target and locks the file now at path (if any), waiting for a
 * lock another process holds, before a read-modify-write of it. Optional: a
 * commit locks by itself. On failure nothing is held. */
MtrStatus mtr_save_lock(MtrSave *s, const char *path, MtrError *err);

/* Starts a save to path (after mtr_save_lock on the same path, or on a zeroed
 * or fresh MtrSave): checks the target and creates the unnamed file. */
MtrStatus mtr_save_begin(MtrSave *s, const char *path, MtrError *err);

/* Writes n bytes to the new content. */
MtrStatus mtr_save_write(MtrSave *s, const void *p, size_t n, MtrError *err);

/* A buffered stream over the new content (NULL and err set on failure); its
 * write errors are reported, with their reason, by mtr_save_commit. */
FILE *mtr_save_stream(MtrSave *s, MtrError *err);

/* Flushes, fsyncs and puts the new content in place of the target, then
 * releases everything. On failure the target is untouched and nothing is left.
 * Allocates nothing: after a successful begin, only I/O can make it fail. */
MtrStatus mtr_save_commit(MtrSave *s, MtrError *err);

/* Discards the new content and releases everything (a failed run). Safe on a
 * zeroed MtrSave, after a failed lock or begin, and after commit. */
void mtr_save_abort(MtrSave *s);

/* The whole of a save: len bytes to path. */
MtrStatus mtr_save_file(const char *path, const void *buf, size_t len, MtrError *err);

/* Standard output at the end of a program, as GNU's close_stdout: flushes it
 * and reports a write error (a full disk, a closed terminal) as
 * "PROG: error: cannot write to standard output: REASON" on stderr. Returns 0,
 * or 1 after such an error. A closed pipe (EPIPE, `| head`) is not reported
 * and returns 1 quietly. */
int mtr_close_stdout(const char *prog);

/* Runs mtr_close_stdout(prog) when the program exits, and turns exit status 0
 * into 1 when it fails (as GNU's atexit(close_stdout)). */
void mtr_check_stdout_at_exit(const char *prog);

#endif

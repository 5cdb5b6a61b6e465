/* child — one task's process: `/bin/sh -c COMMAND` in its own process group,
 * stdout and stderr captured through one pipe (so their order is kept),
 * bounded: the last CHILD_OUTPUT_MAX bytes are kept, earlier ones counted.
 * The child dies with the worker (PR_SET_PDEATHSIG) and gets none of the
 * worker's file descriptors. It may run as another OS user (child_identity):
 * the worker must then be root (or hold CAP_SETUID and CAP_SETGID). */
#ifndef DAGQ_CHILD_H
#define DAGQ_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#define CHILD_OUTPUT_MAX (1024 * 1024)

typedef struct child child;                   /* opaque */
typedef struct child_identity child_identity; /* opaque: a user to run commands as */

/* Resolves the user name user from the passwd database to what a command
 * needs to run as it: uid, gid, the supplementary groups of its group
 * entries, home directory and name. Done once, in the worker (these lookups
 * are not async-signal-safe, so they cannot happen after fork). Returns 0
 * and *out (free with child_identity_free), or -1 with *out NULL and the
 * reason in errbuf: `unknown user "x"`, or why the lookup failed. */
int child_identity_lookup(const char *user, child_identity **out, char *errbuf, size_t errlen);
uid_t child_identity_uid(const child_identity *id);
gid_t child_identity_gid(const child_identity *id);
void child_identity_free(child_identity *id);

/* Starts the command with exactly the environment envp (NULL-terminated),
 * as the worker's own user when as is NULL, else as that user: groups, gid
 * and uid are switched in the child after fork and before exec
 * (setgroups, setresgid, setresuid, then a check that all of them took and
 * that root cannot be regained), and HOME, USER and LOGNAME in envp are
 * replaced by the user's. A child whose switch fails writes why to its output
 * and exits 127 without running anything. as stays the caller's (it may be
 * freed once child_spawn returned). Returns 0 and *out, or -1 with the
 * reason in errbuf. */
int child_spawn(const char *command, char *const envp[], const child_identity *as, child **out,
                char *errbuf, size_t errlen);

pid_t child_pid(const child *c);
int child_fd(const child *c); /* output pipe, -1 once closed */

/* Reads what the pipe has (non-blocking). Returns 1 at end of file, else 0. */
int child_read(child *c);

/* Sends sig to the child's whole process group. */
void child_signal(child *c, int sig);

/* After waitpid reported the command's exit: reads the rest of the output
 * that is already in the pipe, closes it, and kills what the command left
 * running in its process group. */
void child_exited(child *c);

/* The captured output as valid UTF-8 without NUL bytes (invalid bytes become
 * U+FFFD), with the number of earlier bytes not kept in *truncated. The string
 * is new (caller frees with mem_free). */
char *child_output(const child *c, long long *truncated);

void child_free(child *c);

#endif

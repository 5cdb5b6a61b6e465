/* child — one task's process: `/bin/sh -c COMMAND` in its own process group,
 * stdout and stderr captured through one pipe (so their order is kept),
 * bounded: the last CHILD_OUTPUT_MAX bytes are kept, earlier ones counted.
 * The child dies with the worker (PR_SET_PDEATHSIG) and gets none of the
 * worker's file descriptors. */
#ifndef DAGQ_CHILD_H
#define DAGQ_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#define CHILD_OUTPUT_MAX (1024 * 1024)

typedef struct child child; /* opaque */

/* Starts the command with exactly the environment envp (NULL-terminated).
 * Returns 0 and *out, or -1 with the reason in errbuf. */
int child_spawn(const char *command, char *const envp[], child **out, char *errbuf, size_t errlen);

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

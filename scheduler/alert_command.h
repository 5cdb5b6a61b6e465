/* alert_command — runs a command channel's target: /bin/sh -c TARGET in a
 * process group of its own, with a minimal environment (PATH, HOME, LANG of
 * this process, then the event's DAGQ_* variables the metastore built; none
 * of this process's own settings such as DAGQ_DATABASE_URL) and the event
 * JSON on stdin. Nothing from the event is ever part of the command line,
 * so no value of it can become shell syntax. The process dies with the
 * thread that started it (PR_SET_PDEATHSIG), and its whole group is killed
 * at the timeout or when *stop is set. */
#ifndef DAGQ_ALERT_COMMAND_H
#define DAGQ_ALERT_COMMAND_H

#include <stddef.h>

/* Returns ALERT_SEND_OK (exit 0), ALERT_SEND_FAILED (another exit, a signal,
 * the timeout) or ALERT_SEND_STOPPED. response gets "exit N: <the first
 * line of its output>", errbuf why it failed. */
int alert_command_run(const char *command, char **env, int nenv, const char *input, int timeout_ms,
                      const volatile int *stop, char *response, size_t rlen, char *errbuf,
                      size_t errlen);

#endif

/* msg — the task message: one msgpack map per try, small and versioned.
 *   {v:1, ti:<id>, try:<n>, dag:<dag_id>, task:<task_id>, run:<run_id>,
 *    group:<worker group>, queued_at:<unix µs>}
 * Unknown keys are ignored on decode. An unknown `v`, a missing required key
 * (v, ti, try) or bytes that do not decode are errors that name the problem. */
#ifndef DAGQ_MSG_H
#define DAGQ_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_VERSION 1
#define MSG_ID_MAX 256 /* dag, task and group are at most 250 bytes */

typedef struct msg_task {
    int64_t ti; /* task_instance.ti_id */
    int32_t try_number;
    int64_t run;       /* dag_run.run_id, 0 when absent */
    int64_t queued_at; /* unix microseconds, 0 when absent */
    char dag[MSG_ID_MAX];
    char task[MSG_ID_MAX];
    char group[MSG_ID_MAX];
} msg_task;

/* Encodes m into a new buffer *out of *len bytes (caller frees with mem_free).
 * Returns 0, or -1 when a string field is too long (errbuf says which). */
int msg_encode(const msg_task *m, char **out, size_t *len, char *errbuf, size_t errlen);

/* Decodes data into *m. Returns 0, or -1 with the reason in errbuf
 * (e.g. "not a msgpack map", "unsupported message version 7", "missing key ti"). */
int msg_decode(const void *data, size_t len, msg_task *m, char *errbuf, size_t errlen);

#endif

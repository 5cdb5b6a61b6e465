/* tmpl — renders a task's command for one run.
 * `{{ NAME }}` (spaces inside the braces optional) is replaced by the value of
 * NAME. Names: ds, ds_nodash, ts, data_interval_start, data_interval_end,
 * run_id, dag_id, task_id, and params.KEY. A name the context does not know
 * is an error naming it; so is an unclosed `{{`. Text outside `{{ }}` is
 * copied as is. */
#ifndef DAGQ_TMPL_H
#define DAGQ_TMPL_H

#include <stddef.h>

typedef struct tmpl_var {
    const char *name; /* "ds", "params.table", ... */
    const char *value;
} tmpl_var;

/* vars is an array of n entries; a later entry with the same name wins.
 * On success *out is a new string (caller frees with mem_free) and 0 is
 * returned; on error -1 with the reason in errbuf and *out NULL. */
int tmpl_render(const char *src, const tmpl_var *vars, size_t n, char **out, char *errbuf,
                size_t errlen);

/* Fills the date variables from a logical date and a data interval given as
 * unix seconds (UTC): ds "2024-01-31", ds_nodash "20240131",
 * ts "2024-01-31T00:00:00+00:00", data_interval_start/end in the ts form.
 * Writes 5 entries into vars (names static, values into the caller's bufs,
 * which must hold 5 * 40 bytes). */
void tmpl_date_vars(long long logical_date, long long start, long long end, tmpl_var *vars,
                    char bufs[5][40]);

#endif

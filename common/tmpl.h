/* tmpl — renders a task's command for one run, so that nothing a trigger
 * passes in becomes shell syntax.
 *
 * `{{ NAME }}` (spaces inside the braces optional) is replaced by the value of
 * NAME. Names: ds, ds_nodash, ts, data_interval_start, data_interval_end,
 * run_id, dag_id, task_id, and params.KEY. A name the context does not know
 * is an error naming it; so is an unclosed `{{`. Text outside `{{ }}` is
 * copied as is, and values are never rendered again.
 *
 * The rendered command is run by `/bin/sh -c`, so a value is written as data
 * for the place it stands in the command. tmpl finds that place by lexing the
 * template's own text (never a value) the way dash does:
 *
 *   - A value made only of letters, digits and `_ . / : + = , @ % -` (and not
 *     empty) is written as is: `cp {{ ds }}.csv /in` -> `cp 2024-01-31.csv /in`.
 *   - Any other value is quoted for where it stands:
 *       unquoted          -> one single-quoted word, `'` written as `'\''`:
 *                            `echo {{ params.t }}` with `x; id` -> `echo 'x; id'`
 *       inside '...'      -> each `'` written as `'\''`
 *       inside "..."      -> a backslash before each `$`, backquote, `"`, `\`
 *       inside $( ... )   -> quoting starts afresh inside (unquoted, '...', "...")
 *       inside `...`      -> as inside $( ), then a backslash before each `\`,
 *                            backquote and `$` of the result (the backquote's own
 *                            unescaping removes them again)
 *       a # comment       -> as unquoted
 *       a here-document   -> as is (the body is data), see the errors below
 *   - Plain values are quoted too where dash would otherwise read them as
 *     syntax: right after an unquoted `~` (a tilde prefix), where they would
 *     make an assignment (`{{ v }} cmd` with `LD_PRELOAD=x`, or `{{ v }}=1`), a
 *     redirection's descriptor (`{{ v }}>f` with `2`), or a reserved word
 *     (`if`, `done`, ...).
 *
 * Where no quoting is safe the render fails with an error naming the variable
 * and the reason (the task instance then fails with that note; pass such a
 * value through the environment instead, where the shell never parses it:
 * "$DAGQ_PARAM_TABLE" once params are exported, see tmpl_param_env_name):
 *   - a value with a newline in a # comment, in a here-document body, or on the
 *     line of a here-document operator (`cat <<EOF {{ v }}`);
 *   - a value with `$`, a backquote or `\` in an unquoted here-document
 *     (`<<EOF`; quote the delimiter, `<<'EOF'`, to make the body literal);
 *   - a value that would make a line of a here-document equal its delimiter;
 *   - a value inside `${...}`, in a here-document delimiter, right after a `\`
 *     that would escape it, right after `$` or `$NAME` (write `${NAME}`);
 *   - inside `$(( ))` anything but digits;
 *   - any value after text the lexer cannot classify with certainty: `$'`
 *     and `$"` outside double quotes (bash reads them as quotes), `$[`,
 *     `<<<`, `case` inside `$( )`, backquotes inside backquotes,
 *     `\"` inside backquotes, quotes or backslashes inside `$(( ))` or
 *     `${...}`, a here-document inside `$( )` or backquotes, a newline inside
 *     `$( )` in a here-document, a backslash-newline in an unquoted
 *     here-document;
 *   - a command that ends inside a quote, `$( )`, backquotes, `$(( ))` or
 *     `${ }` opened before or around a value.
 *
 * Quoting makes a value one word of data for /bin/sh. It cannot help where the
 * command itself runs its arguments as code (`eval {{ v }}`, `sh -c {{ v }}`,
 * `ssh host {{ v }}`), nor where a program reads a word starting with `-` as
 * an option (`rm {{ v }}` with `-rf`: write `rm -- {{ v }}`).
 *
 * Filters: `{{ params.X | raw }}` writes the value as is, as command text (it
 * is then lexed like the template's own text). raw is refused for a value that
 * came from the run's conf (an error naming it); dates, ids and the DAG's own
 * params may be raw. Any other filter is an error. */
#ifndef DAGQ_TMPL_H
#define DAGQ_TMPL_H

#include <stddef.h>

/* Where a value came from. The zero value is the untrusted one, so a variable
 * whose origin nobody set can never be raw. */
typedef enum tmpl_origin {
    TMPL_FROM_CONF = 0, /* the run's conf (whoever triggered the run), or not said */
    TMPL_FROM_DAG = 1,  /* the DAG's own params, dates, ids: `| raw` allowed */
} tmpl_origin;

typedef struct tmpl_var {
    const char *name; /* "ds", "params.table", ... */
    const char *value;
    tmpl_origin origin;
} tmpl_var;

/* vars is an array of n entries; a later entry with the same name wins.
 * On success *out is a new string (caller frees with mem_free) and 0 is
 * returned; on error -1 with the reason in errbuf and *out NULL. The reason
 * names variables, offsets and filters, never a value. */
int tmpl_render(const char *src, const tmpl_var *vars, size_t n, char **out, char *errbuf,
                size_t errlen);

/* Fills the date variables from a logical date and a data interval given as
 * unix seconds (UTC): ds "2024-01-31", ds_nodash "20240131",
 * ts "2024-01-31T00:00:00+00:00", data_interval_start/end in the ts form.
 * Writes 5 entries into vars (names static, values into the caller's bufs,
 * which must hold 5 * 40 bytes), with origin TMPL_FROM_DAG. */
void tmpl_date_vars(long long logical_date, long long start, long long end, tmpl_var *vars,
                    char bufs[5][40]);

/* The environment variable a param is exported as: "DAGQ_PARAM_" + KEY
 * upper-cased (KEY without "params."), written into buf. The result must be
 * `[A-Za-z_][A-Za-z0-9_]*`; otherwise (an empty key, a key with `-`, `.`,
 * spaces or non-ASCII bytes, a key starting with a digit, one too long for buf)
 * -1 is returned with the reason in errbuf (which does not quote the key) and
 * the param is to be skipped. Two keys that differ only in case map to the
 * same name: the caller decides which one wins (tmpl_render's rule is the
 * later one). */
int tmpl_param_env_name(const char *key, char *buf, size_t len, char *errbuf, size_t errlen);

#endif

#include "api.h"

#include "mem.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* web_query_json of a statement on run params[0] (and task params[1]) */
static int api_run_json(web_req *r, const char *name, const char *sql, int with_task, int with_body,
                        unsigned ok)
{
    char id[32];
    if (web_param_id(r, 0, id, sizeof id))
        return -1;
    const char *p[3] = {id, NULL, NULL};
    int n = 1;
    if (with_task)
        p[n++] = r->params[1];
    if (with_body)
        p[n++] = r->body;
    char *nf = with_task ? mem_printf("run %s has no task \"%s\"", id, r->params[1])
                         : mem_printf("unknown run %s", id);
    int rc = web_query_json(r, name, sql, n, p, ok, nf);
    mem_free(nf);
    return rc;
}

int api_run_get(web_req *r)
{
    return api_run_json(r, "api_run", "SELECT dagq.web_run($1::bigint)", 0, 0, 200);
}

int api_run_tasks(web_req *r)
{
    return api_run_json(r, "api_run_tasks", "SELECT dagq.web_run_tasks($1::bigint)", 0, 0, 200);
}

int api_task_get(web_req *r)
{
    return api_run_json(r, "api_task", "SELECT dagq.web_task($1::bigint, $2)", 1, 0, 200);
}

int api_task_patch(web_req *r)
{
    return api_run_json(r, "api_mark", "SELECT dagq.api_mark($1::bigint, $2, $3)", 1, 1, 200);
}

int api_run_clear(web_req *r)
{
    return api_run_json(r, "api_clear", "SELECT dagq.api_clear($1::bigint, $2)", 0, 1, 200);
}

int api_run_stop(web_req *r)
{
    return api_run_json(r, "api_stop", "SELECT dagq.api_stop($1::bigint, $2)", 0, 1, 200);
}

/* The byte range asked for: ?offset=N, or Range: bytes=N-[M] / bytes=-N.
 * *start may be negative (from the end); *len -1 is "to the end".
 * Returns 0, 1 when a Range header was given, or -1 after a 400/416. */
static int api_log_range(web_req *r, long long *start, long long *len)
{
    const char *off = web_arg(r, "offset");
    const char *range = web_req_header(r, MHD_HTTP_HEADER_RANGE);
    char *end;
    *start = 0;
    *len = -1;
    if (range) {
        long long a = -1, b = -1;
        const char *s = range + 6;
        if (strncmp(range, "bytes=", 6) || strchr(s, ','))
            return web_error(r, 416,
                             "only one byte range is served (bytes=N-, bytes=N-M, bytes=-N)");
        errno = 0;
        if (*s == '-') {
            a = -strtoll(s + 1, &end, 10);
        } else {
            a = strtoll(s, &end, 10);
            if (*end != '-')
                return web_error(r, 416, "malformed Range \"%s\"", range);
            if (end[1])
                b = strtoll(end + 1, &end, 10);
            else
                end++;
        }
        if (errno || *end || (b >= 0 && b < a))
            return web_error(r, 416, "malformed Range \"%s\"", range);
        *start = a;
        *len = b >= 0 ? b - a + 1 : -1;
        return 1;
    }
    if (off) {
        errno = 0;
        long long v = strtoll(off, &end, 10);
        if (errno || *end || !*off || v < 0)
            return web_error(r, 400,
                             "query parameter offset must be a byte offset, 0 or more, "
                             "got \"%s\"",
                             off);
        *start = v;
    }
    return 0;
}

/* Headers of a log answer: the try, its state, the log's size. */
static void api_log_headers(web_req *r, PGresult *res)
{
    web_header(r, "Accept-Ranges", "bytes");
    web_header(r, "X-Dagq-State", PQgetvalue(res, 0, 0));
    web_header(r, "X-Dagq-Try", PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2)) {
        web_header(r, "X-Dagq-Log-Try", PQgetvalue(res, 0, 2));
        web_header(r, "X-Dagq-Log-Size", PQgetvalue(res, 0, 3));
        web_header(r, "X-Dagq-Log-Offset", PQgetvalue(res, 0, 5));
        web_header(r, "X-Dagq-Truncated-Bytes", PQgetvalue(res, 0, 4));
    } else {
        web_header(r, "X-Dagq-Log-Size", "0");
    }
}

/* The answer for a log that exists: the chunk, as 200 or (Range) 206. */
static int api_log_chunk(web_req *r, PGresult *res, int ranged)
{
    long long size = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    long long start = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    if (ranged && start >= size) {
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%lld", size);
        web_header(r, "Content-Range", cr);
        return web_error(r, 416, "the log has %lld bytes", size);
    }
    size_t n = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 6), &n);
    if (!bytes)
        return web_error(r, 500, "cannot decode the log");
    if (ranged) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", start, start + (long long)n - 1, size);
        web_header(r, "Content-Range", cr);
    }
    web_body(r, ranged ? 206 : 200, "text/plain; charset=utf-8", (const char *)bytes, n);
    PQfreemem(bytes);
    return 0;
}

int api_task_logs(web_req *r)
{
    char id[32], try_s[32], off_s[32], len_s[32];
    long long start, len;
    if (web_param_id(r, 0, id, sizeof id) ||
        web_arg_int(r, "try", 0, 0, INT_MAX, try_s, sizeof try_s))
        return -1;
    int ranged = api_log_range(r, &start, &len);
    if (ranged < 0)
        return -1;
    snprintf(off_s, sizeof off_s, "%lld", start);
    snprintf(len_s, sizeof len_s, "%lld", len < 0 ? (long long)INT_MAX : len);
    const char *p[5] = {id, r->params[1], strcmp(try_s, "0") ? try_s : NULL, off_s, len_s};
    PGresult *res;
    if (web_query(r, "api_log",
                  "SELECT * FROM dagq.web_log($1::bigint, $2, $3::int, $4::bigint, $5::bigint)", 5,
                  p, &res))
        return -1;
    int rc;
    if (PQntuples(res) == 0) {
        rc = web_error(r, 404, "run %s has no task \"%s\"", id, r->params[1]);
    } else if (PQgetisnull(res, 0, 2) && p[2]) {
        rc = web_error(r, 404, "no log for try %s of task \"%s\" in run %s", try_s, r->params[1],
                       id);
    } else {
        api_log_headers(r, res);
        if (PQgetisnull(res, 0, 2))
            rc = web_body(r, 200, "text/plain; charset=utf-8", "", 0); /* not yet */
        else
            rc = api_log_chunk(r, res, ranged);
    }
    PQclear(res);
    return rc;
}

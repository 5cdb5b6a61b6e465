#include "http.h"

#include "log.h"
#include "mem.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#if MHD_VERSION < 0x00097002
typedef int http_result; /* before 0.9.71 callbacks returned int */
#else
typedef enum MHD_Result http_result;
#endif

struct http_server {
    struct MHD_Daemon *daemon;
    metrics *m;
    double health_timeout_s;
};

/* Queues a response; body is copied (MHD_RESPMEM_MUST_COPY). */
static http_result http_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                              const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    http_result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static http_result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    http_server *h = cls;
    /* first call of a request: headers only; answer on the second */
    if (*con_cls == NULL) {
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a body is ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                          "method not allowed\n");
    if (!strcmp(url, "/healthz")) {
        char reason[256], body[300];
        if (metrics_healthy(h->m, h->health_timeout_s, reason, sizeof reason))
            return http_reply(conn, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n");
        snprintf(body, sizeof body, "unhealthy: %s\n", reason);
        return http_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", body);
    }
    if (!strcmp(url, "/metrics")) {
        char *text = metrics_render(h->m);
        http_result ret =
            http_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
        mem_free(text);
        return ret;
    }
    return http_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
                      "not found (try /healthz or /metrics)\n");
}

int http_start(int port, metrics *m, double health_timeout_s, http_server **out, char *errbuf,
               size_t errlen)
{
    http_server *h = mem_calloc(1, sizeof *h);
    h->m = m;
    h->health_timeout_s = health_timeout_s;
    h->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                         NULL, http_handle, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(errbuf, errlen, "cannot serve HTTP on port %d (in use, or not permitted)", port);
        mem_free(h);
        *out = NULL;
        return -1;
    }
    log_info("serving /healthz and /metrics", "port=%d", port);
    *out = h;
    return 0;
}

void http_stop(http_server *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    mem_free(h);
}

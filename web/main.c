/* dagq-web — the REST API (/api/v1/) and the web UI (/) of the dagq
 * metastore. Only parses options and runs web/server.c until SIGTERM or
 * SIGINT (a second one exits at once). */
#include "config.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "routes.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static char *opt_database_url, *opt_bind, *opt_base_url, *opt_log_level;
static long long opt_port, opt_threads, opt_per_ip, opt_max_conns, opt_timeout, opt_max_body;
static long long opt_stmt_timeout;
static int opt_print_routes;

static const config_option options[] = {
    {"database-url", CONFIG_SECRET, NULL,
     "PostgreSQL conninfo or URI of the metastore, as dagq-web's login role (a member of "
     "dagq_web; unset: libpq defaults, PGHOST...)",
     &opt_database_url},
    {"http-bind", CONFIG_STRING, "127.0.0.1",
     "address to listen on (numeric IPv4 or IPv6; 0.0.0.0 for all)", &opt_bind},
    {"http-port", CONFIG_INT, "8080", "port to listen on (0: any free one)", &opt_port, 0, 65535},
    {"base-url", CONFIG_STRING, NULL,
     "the URL users reach dagq-web at (default http://BIND:PORT/); its path is a prefix "
     "(behind a reverse proxy at /dagq/, say)",
     &opt_base_url},
    {"http-threads", CONFIG_INT, "8", "request threads, each with its own metastore connection",
     &opt_threads, 1, 256},
    {"http-per-ip-limit", CONFIG_INT, "64", "connections at once from one client address",
     &opt_per_ip, 1, 100000},
    {"http-max-connections", CONFIG_INT, "2000", "connections at once in all", &opt_max_conns, 1,
     100000},
    {"http-timeout", CONFIG_INT, "10",
     "seconds an idle or slow connection is kept before it is closed", &opt_timeout, 1, 3600},
    {"max-body-bytes", CONFIG_INT, "65536", "largest request body (413 past it)", &opt_max_body,
     1024, 16777216},
    {"statement-timeout-ms", CONFIG_INT, "30000", "longest a request's statement may run",
     &opt_stmt_timeout, 100, 3600000},
    {"print-routes", CONFIG_FLAG, NULL, "print the API's routes and exit", &opt_print_routes},
    {"log-level", CONFIG_STRING, "info", "debug, info, warn or error", &opt_log_level},
    {NULL}};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested)
        _exit(1);
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: dagq-web [OPTIONS]\n\n"
                 "Serves the dagq web UI at / and the REST API at /api/v1/ (described at\n"
                 "/api/v1/openapi.json). Requests carry a token (Authorization: Bearer; make\n"
                 "one with dagq tokens create) and run as the token's database role.\n\n"
                 "Options (each also read from the environment variable shown):\n");
    config_usage(out, options);
    fprintf(out, "  --help                     this text\n\n"
                 "SIGTERM or SIGINT stops serving; a second one exits at once.\n");
}

/* Many connections at once need descriptors: the soft limit up to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int serve(void)
{
    char err[1024], url[600];
    pool *p = pool_new(opt_database_url, (int)opt_threads, "SET TimeZone TO 'UTC'");
    server_conf sc = {
        .bind = opt_bind,
        .port = (int)opt_port,
        .base_url = opt_base_url,
        .threads = (int)opt_threads,
        .per_ip_limit = (int)opt_per_ip,
        .max_connections = (int)opt_max_conns,
        .timeout_s = (int)opt_timeout,
        .max_body = (size_t)opt_max_body,
        .statement_timeout_ms = (int)opt_stmt_timeout,
        .pool = p,
    };
    server *s;
    if (server_start(&sc, &s, err, sizeof err)) {
        fprintf(stderr, "dagq-web: %s\n", err);
        pool_free(p);
        return 1;
    }
    if (opt_base_url)
        snprintf(url, sizeof url, "%s", opt_base_url);
    else
        snprintf(url, sizeof url, "http://%s:%d/", strchr(opt_bind, ':') ? "[::1]" : opt_bind,
                 server_port(s));
    log_info("dagq-web serving", "url=%s port=%d threads=%lld", url, server_port(s), opt_threads);
    while (!stop_requested) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    log_info("dagq-web stopping", "%s", "");
    server_stop(s);
    pool_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024];
    log_init("dagq-web");
    int rc = config_load_daemon(options, argc, argv, &opt_log_level, err, sizeof err);
    if (rc == CONFIG_HELP) {
        usage(stdout);
        config_free(options);
        return 0;
    }
    if (rc != CONFIG_OK) {
        fprintf(stderr, "dagq-web: %s\n", err);
        config_free(options);
        return 2;
    }
    if (opt_print_routes) {
        routes_print(stdout);
        config_free(options);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    raise_nofile();
    rc = serve();
    config_free(options);
    return rc;
}

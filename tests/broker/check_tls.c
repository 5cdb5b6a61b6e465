/* check_tls — one round trip through the broker named by DAGQ_BROKER_URL
 * (meant for rediss://, run by tests/redis_tls_check.sh): a producer pushes
 * one message to a fresh worker group, a consumer takes and acks it. Prints
 * "ok" and exits 0, or prints the first error (what was being done and the
 * queue's words) and exits 1; 2 when DAGQ_BROKER_URL is unset. The queue's
 * own log lines go to stderr at debug level, so a caller can check what they
 * show. DAGQ_REDIS_TLS_CA, _CERT, _KEY and _SERVER_NAME fill the matching
 * queue_conf fields (what the daemons' --redis-tls-* options do). */
#include "log.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failed(const char *what, int rc, const char *err)
{
    printf("FAIL %s: %s: %s\n", what, queue_strerror(rc), err);
    return 1;
}

static int round_trip(const queue_conf *conf, const char *group)
{
    char err[512] = "";
    queue *q = NULL;
    queue_consumer *c = NULL;
    queue_msg *m[1];
    int n = 0, rc = queue_consumer_open(conf, group, &c, err, sizeof err), res = 0;
    if (rc)
        return failed("consumer open", rc, err);
    if ((rc = queue_open(conf, &q, err, sizeof err)))
        res = failed("producer open", rc, err);
    else if ((rc = queue_push(q, group, "hello", 5, err, sizeof err)) ||
             (rc = queue_flush(q, 5000, err, sizeof err)))
        res = failed("push", rc, err);
    for (int i = 0; !res && n == 0 && i < 10; i++)
        if ((rc = queue_consumer_poll(c, 1, 1000, m, &n, err, sizeof err)))
            res = failed("poll", rc, err);
    if (!res && n == 0)
        res = failed("poll", QUEUE_OK, "the message did not arrive within 10 s");
    if (n == 1) {
        if (m[0]->len != 5 || memcmp(m[0]->data, "hello", 5))
            res = failed("poll", QUEUE_OK, "the payload changed on the way");
        if ((rc = queue_consumer_ack(c, m[0], err, sizeof err)) && !res)
            res = failed("ack", rc, err);
        queue_msg_free(m[0]);
    }
    queue_free(q);
    queue_consumer_free(c);
    return res;
}

int main(void)
{
    const char *url = getenv("DAGQ_BROKER_URL");
    if (!url || !*url) {
        fprintf(stderr, "check_tls: set DAGQ_BROKER_URL\n");
        return 2;
    }
    log_init("check_tls");
    log_set_level_name("debug");
    char group[64];
    snprintf(group, sizeof group, "tls-%ld-%lld", (long)getpid(), (long long)time(NULL));
    queue_conf conf = {.broker_url = url, .client_name = "check-tls"};
    conf.redis_tls_ca = getenv("DAGQ_REDIS_TLS_CA");
    conf.redis_tls_cert = getenv("DAGQ_REDIS_TLS_CERT");
    conf.redis_tls_key = getenv("DAGQ_REDIS_TLS_KEY");
    conf.redis_tls_server_name = getenv("DAGQ_REDIS_TLS_SERVER_NAME");
    if (round_trip(&conf, group))
        return 1;
    printf("ok\n");
    return 0;
}

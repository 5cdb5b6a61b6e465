#include "kafka_client.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <string.h>

int kq_client__code(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
        return QUEUE_ECONN;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return QUEUE_EINVAL;
    default:
        return QUEUE_EBROKER;
    }
}

static void kq_client_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum log_level l = level <= 3   ? LOG_ERROR
                       : level == 4 ? LOG_WARN
                       : level <= 6 ? LOG_INFO
                                    : LOG_DEBUG;
    /* a refused connection is repeated while a broker is down (that is
     * logged once, below); the same list of properties goes to producers
     * and consumers, so a property for the other kind is expected */
    if (!strcmp(fac, "FAIL") || (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by")))
        l = LOG_DEBUG;
    /* a producer's fatal error (an idempotence sequence lost in a broker
     * restart) is recovered from: the producer is made again and the caller
     * pushes what it had not confirmed (kafka_producer.c) */
    const kq_client *cl = rd_kafka_opaque(rk);
    if (!strcmp(fac, "FATAL") && l == LOG_ERROR && cl && cl->role && !strcmp(cl->role, "producer"))
        l = LOG_WARN;
    char qn[200], qf[100];
    if (log_enabled(l))
        log_write(l, buf, "kafka=\"%s\" fac=\"%s\"", log_quote(rd_kafka_name(rk), qn, sizeof qn),
                  log_quote(fac, qf, sizeof qf));
}

void kq_client__init(kq_client *cl, const char *role, const char *label)
{
    cl->role = role;
    cl->label = label;
    pthread_mutex_init(&cl->bmu, NULL);
}

void kq_client__reset(kq_client *cl)
{
    cl->last_up = cl->last_down = 0;
    cl->down = cl->closing = false;
    atomic_store(&cl->fatal, 0);
}

void kq_client__closing(kq_client *cl)
{
    pthread_mutex_lock(&cl->bmu);
    cl->closing = true;
    pthread_mutex_unlock(&cl->bmu);
}

void kq_client__fini(kq_client *cl)
{
    pthread_mutex_destroy(&cl->bmu);
}

/* Runs on librdkafka's broker threads: notes when connections go up and
 * down, and logs the end of an outage the error callback reported. */
static rd_kafka_resp_err_t kq_client_broker_state_cb(rd_kafka_t *rk, int32_t broker_id,
                                                     const char *secproto, const char *name,
                                                     int port, const char *state, void *opaque)
{
    kq_client *cl = opaque;
    (void)secproto;
    bool up = !strcmp(state, "UP"), down = !strcmp(state, "DOWN");
    if (!up && !down)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&cl->bmu);
    if (down) {
        cl->last_down = clock_now_ms();
    } else {
        cl->last_up = clock_now_ms();
        if (cl->down && !cl->closing) {
            cl->down = false;
            char qn[200], qb[300];
            log_info("kafka broker reachable again",
                     "kafka=\"%s\" role=%s group=%s broker=\"%s:%d\" id=%d",
                     log_quote(rd_kafka_name(rk), qn, sizeof qn), cl->role, cl->label,
                     log_quote(name, qb, sizeof qb), port, (int)broker_id);
        }
    }
    pthread_mutex_unlock(&cl->bmu);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Every brokers down: logged once per outage. A consumer serves this in its
 * poll, maybe after the broker is back: an outage is logged only if no
 * connection came up since the last one went down. */
static void kq_client_all_down(kq_client *cl, rd_kafka_t *rk, const char *reason)
{
    char qn[200], q[512];
    pthread_mutex_lock(&cl->bmu);
    if (!cl->down && !cl->closing && cl->last_up <= cl->last_down) {
        cl->down = true;
        log_warn("kafka brokers unreachable; librdkafka keeps reconnecting",
                 "kafka=\"%s\" role=%s group=%s reason=\"%s\"",
                 log_quote(rd_kafka_name(rk), qn, sizeof qn), cl->role, cl->label,
                 log_quote(reason, q, sizeof q));
    }
    pthread_mutex_unlock(&cl->bmu);
}

static void kq_client_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kq_client *cl = opaque;
    char qn[200], q[512];
    log_quote(rd_kafka_name(rk), qn, sizeof qn);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        kq_client_all_down(cl, rk, reason);
    } else if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        atomic_store(&cl->fatal, 1);
        log_write(cl->role && !strcmp(cl->role, "producer") ? LOG_WARN : LOG_ERROR,
                  "kafka fatal error", "kafka=\"%s\" role=%s group=%s err=%s reason=\"%s\"", qn,
                  cl->role, cl->label, rd_kafka_err2name(orig), log_quote(why, q, sizeof q));
    } else if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE) {
        log_debug("kafka connection error", "kafka=\"%s\" role=%s err=%s reason=\"%s\"", qn,
                  cl->role, rd_kafka_err2name(err), log_quote(reason, q, sizeof q));
    } else {
        log_warn("kafka error", "kafka=\"%s\" role=%s group=%s err=%s reason=\"%s\"", qn, cl->role,
                 cl->label, rd_kafka_err2name(err), log_quote(reason, q, sizeof q));
    }
}

static rd_kafka_resp_err_t kq_client_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf,
                                            void *opaque, char *errstr, size_t errstr_size)
{
    (void)conf;
    (void)errstr;
    (void)errstr_size;
    return rd_kafka_interceptor_add_on_broker_state_change(rk, "dagq", kq_client_broker_state_cb,
                                                           opaque);
}

/* Sets each pair of kv (up to a NULL key): 0, or QUEUE_EINVAL naming it. */
static int kq_client_conf_set(rd_kafka_conf_t *conf, const kq_client_kv *kv, const char *origin,
                              char *errbuf, size_t errlen)
{
    char es[512];
    for (; kv && kv->key; kv++) {
        if (rd_kafka_conf_set(conf, kv->key, kv->value, es, sizeof es) != RD_KAFKA_CONF_OK) {
            errbuf_printf(errbuf, errlen, "kafka property %s (%s): %s", kv->key, origin, es);
            return QUEUE_EINVAL;
        }
    }
    return QUEUE_OK;
}

rd_kafka_conf_t *kq_client__conf_new(kq_client *cl, const kq_settings *s,
                                     const kq_client_kv *defaults, const kq_client_kv *forced,
                                     char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const kq_client_kv common[] = {
        {"bootstrap.servers", s->bootstrap}, {"client.id", s->client_name},
        {"log.connection.close", "false"},   {"reconnect.backoff.max.ms", "1000"},
        {"socket.keepalive.enable", "true"}, {NULL, NULL}};
    int rc = kq_client_conf_set(conf, common, "dagq default", errbuf, errlen);
    if (!rc)
        rc = kq_client_conf_set(conf, defaults, "dagq default", errbuf, errlen);
    for (int i = 0; !rc && i < s->n_props; i++) {
        const kq_client_kv user[] = {{s->props[i].key, s->props[i].value}, {NULL, NULL}};
        rc = kq_client_conf_set(conf, user, s->props[i].origin, errbuf, errlen);
    }
    if (!rc)
        rc = kq_client_conf_set(conf, forced, "set by dagq", errbuf, errlen);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, cl);
    rd_kafka_conf_set_error_cb(conf, kq_client_error_cb);
    rd_kafka_conf_set_log_cb(conf, kq_client_log_cb);
    rd_kafka_conf_interceptor_add_on_new(conf, "dagq", kq_client_on_new, cl);
    return conf;
}

#include "kafka_producer.h"

#include "clock.h"
#include "errbuf.h"
#include "kafka_admin.h"
#include "log.h"
#include "mem.h"

#define KQ_CLOSE_FLUSH_MS 3000
#define KQ_ENSURE_RETRY_MS 2000

static void kq_producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kq_producer *p = opaque;
    (void)rk;
    /* purged by a flush that timed out: reported there already */
    if (!m->err || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return;
    if ((m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
         m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
        m->rkt) /* deleted behind our back: the next push creates it again */
        queue_ensured__forget_name(&p->ensured, rd_kafka_topic_name(m->rkt));
    if (p->n_failed++ == 0) {
        p->first_err = m->err;
        errbuf_printf(p->first_errstr, sizeof p->first_errstr, "topic %s: %s",
                      m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_err2str(m->err));
    }
}

static int kq_producer_start(kq_producer *p, char *errbuf, size_t errlen)
{
    static const kq_client_kv defaults[] = {{"acks", "all"},
                                            {"enable.idempotence", "true"},
                                            {"linger.ms", "1"},
                                            {"sticky.partitioning.linger.ms", "0"},
                                            {"allow.auto.create.topics", "false"},
                                            {NULL, NULL}};
    char es[512];
    kq_client__reset(&p->cl); /* no rk yet: nothing else touches cl */
    rd_kafka_conf_t *conf = kq_client__conf_new(&p->cl, &p->s, defaults, NULL, errbuf, errlen);
    if (!conf)
        return QUEUE_EINVAL;
    rd_kafka_conf_set_dr_msg_cb(conf, kq_producer_dr_cb);
    p->cl.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!p->cl.rk) {
        rd_kafka_conf_destroy(conf); /* not owned by rk when rd_kafka_new fails */
        errbuf_printf(errbuf, errlen, "kafka: creating the producer: %s", es);
        return QUEUE_EINVAL;
    }
    return QUEUE_OK;
}

static void kq_producer_stop(kq_producer *p)
{
    if (!p->cl.rk)
        return;
    rd_kafka_flush(p->cl.rk, KQ_CLOSE_FLUSH_MS);
    int left = rd_kafka_outq_len(p->cl.rk);
    if (left > 0) {
        char qn[200];
        log_warn("kafka producer closed with messages undelivered", "kafka=\"%s\" left=%d",
                 log_quote(rd_kafka_name(p->cl.rk), qn, sizeof qn), left);
        rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->cl.rk, 0);
    }
    kq_client__closing(&p->cl);
    rd_kafka_destroy(p->cl.rk);
    p->cl.rk = NULL;
}

int kq_producer__new(const kq_settings *s, const char *label, kq_producer **out, char *errbuf,
                     size_t errlen)
{
    kq_producer *p = mem_calloc(1, sizeof *p);
    kq_settings__copy(&p->s, s);
    kq_client__init(&p->cl, "producer", label);
    int rc = kq_producer_start(p, errbuf, errlen);
    if (rc) {
        kq_producer__free(p);
        return rc;
    }
    *out = p;
    return QUEUE_OK;
}

void kq_producer__free(void *impl)
{
    kq_producer *p = impl;
    if (!p)
        return;
    kq_backlog__readers_free(&p->lags);
    kq_producer_stop(p);
    kq_client__fini(&p->cl);
    queue_ensured__clear(&p->ensured);
    kq_settings__free(&p->s);
    mem_free(p);
}

/* After a fatal error the handle is useless: report it once, start afresh.
 * QUEUE_ECONN, as for a lost broker: what the caller had not seen flushed
 * is its to push again (the scheduler keeps it and does; a duplicate is
 * harmless, the claim is fenced). */
static int kq_producer_check_fatal(kq_producer *p, char *errbuf, size_t errlen)
{
    if (!atomic_load(&p->cl.fatal))
        return QUEUE_OK;
    char why[512];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(p->cl.rk, why, sizeof why);
    errbuf_printf(errbuf, errlen,
                  "kafka: the producer failed (%s: %s); it starts afresh, and what was not "
                  "flushed is to be pushed again",
                  rd_kafka_err2name(err), why);
    rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    kq_client__closing(&p->cl);
    rd_kafka_destroy(p->cl.rk);
    p->cl.rk = NULL;
    p->n_failed = 0;
    p->first_err = 0;
    char es[512], q[600];
    if (kq_producer_start(p, es, sizeof es))
        log_error("kafka producer could not be re-created", "err=\"%s\"",
                  log_quote(es, q, sizeof q));
    return QUEUE_ECONN;
}

int kq_producer__ready(kq_producer *p, char *errbuf, size_t errlen)
{
    int rc = kq_producer_check_fatal(p, errbuf, errlen);
    if (!rc && !p->cl.rk)
        rc = kq_producer_start(p, errbuf, errlen);
    return rc;
}

int kq_producer__ensure_topic(kq_producer *p, const char *group, const char *topic, char *errbuf,
                              size_t errlen)
{
    if (queue_ensured__find(&p->ensured, group))
        return QUEUE_OK;
    int rc = kq_admin__topic_create(p->cl.rk, group, topic, p->s.partitions, p->s.replication,
                                    errbuf, errlen);
    if (!rc)
        queue_ensured__add(&p->ensured, group, mem_strdup(topic));
    return rc;
}

/* Sets *topic to group's, creating the topic the first time; a failure for
 * want of a broker makes the next ones fail at once for a while. */
static int kq_producer_topic(kq_producer *p, const char *group, const char **topic, char *errbuf,
                             size_t errlen)
{
    if ((*topic = queue_ensured__find(&p->ensured, group)))
        return QUEUE_OK;
    char *name = NULL;
    int rc = kq_settings__topic_name(&p->s, group, &name, errbuf, errlen);
    if (rc)
        return rc;
    if (clock_now_ms() < p->ensure_retry_at) {
        errbuf_printf(errbuf, errlen, "%s", p->ensure_err);
        rc = QUEUE_ECONN;
    } else {
        rc = kq_producer__ensure_topic(p, group, name, errbuf, errlen);
        if (rc == QUEUE_ECONN) {
            p->ensure_retry_at = clock_now_ms() + KQ_ENSURE_RETRY_MS;
            errbuf_printf(p->ensure_err, sizeof p->ensure_err, "%s", errbuf ? errbuf : "");
        }
    }
    mem_free(name);
    *topic = rc ? NULL : queue_ensured__find(&p->ensured, group);
    return rc;
}

int kq_producer__send(kq_producer *p, const char *topic, const void *data, size_t len,
                      rd_kafka_headers_t *hdrs, char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (hdrs)
            err = rd_kafka_producev(
                p->cl.rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)data, len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(p->cl.rk, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_VALUE((void *)data, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(p->cl.rk, 500); /* the local queue is full: give it a moment */
    }
    rd_kafka_poll(p->cl.rk, 0); /* serve delivery reports */
    if (err) {
        errbuf_printf(errbuf, errlen, "kafka: producing to %s: %s", topic, rd_kafka_err2str(err));
        return kq_client__code(err);
    }
    return QUEUE_OK;
}

/* A flush that timed out: what is still queued is dropped, not left to
 * arrive later. The caller re-pushes (the scheduler after its next pass, or
 * the queued-timeout re-push), and an outage would otherwise pile up copies
 * of every batch to be delivered all at once. A message that was in flight
 * may still have been stored (a duplicate the claim absorbs). */
static int kq_producer_timed_out(kq_producer *p, int timeout_ms, char *errbuf, size_t errlen)
{
    int left = rd_kafka_outq_len(p->cl.rk);
    rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->cl.rk, 0);
    errbuf_printf(errbuf, errlen,
                  "kafka: %d message(s) not acknowledged by the broker within %d ms, dropped%s%s",
                  left, timeout_ms, p->n_failed ? "; first failure: " : "",
                  p->n_failed ? p->first_errstr : "");
    p->n_failed = 0;
    p->first_err = 0;
    return QUEUE_ECONN;
}

int kq_producer__flush(void *impl, int timeout_ms, char *errbuf, size_t errlen)
{
    kq_producer *p = impl;
    int rc = kq_producer__ready(p, errbuf, errlen);
    if (rc)
        return rc;
    rd_kafka_resp_err_t err = rd_kafka_flush(p->cl.rk, timeout_ms < 0 ? 0 : timeout_ms);
    rc = kq_producer_check_fatal(p, errbuf, errlen);
    if (rc)
        return rc;
    if (err)
        return kq_producer_timed_out(p, timeout_ms, errbuf, errlen);
    if (p->n_failed) {
        errbuf_printf(errbuf, errlen, "kafka: %d message(s) not delivered; first: %s", p->n_failed,
                      p->first_errstr);
        rc = kq_client__code(p->first_err);
        p->n_failed = 0;
        p->first_err = 0;
    }
    return rc;
}

int kq_producer__open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen)
{
    kq_settings s;
    int rc = kq_settings__init(&s, conf, errbuf, errlen);
    if (rc)
        return rc;
    kq_producer *p = NULL;
    rc = kq_producer__new(&s, "-", &p, errbuf, errlen);
    kq_settings__free(&s);
    if (rc)
        return rc;
    *impl = p;
    return QUEUE_OK;
}

int kq_producer__ensure_group(void *impl, const char *group, char *errbuf, size_t errlen)
{
    kq_producer *p = impl;
    char *topic = NULL;
    int rc = kq_settings__topic_name(&p->s, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer__ready(p, errbuf, errlen);
    if (!rc)
        rc = kq_producer__ensure_topic(p, group, topic, errbuf, errlen);
    mem_free(topic);
    return rc;
}

int kq_producer__push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                      size_t errlen)
{
    kq_producer *p = impl;
    const char *topic = NULL;
    int rc = kq_producer__ready(p, errbuf, errlen);
    if (!rc)
        rc = kq_producer_topic(p, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer__send(p, topic, data, len, NULL, errbuf, errlen);
    return rc;
}

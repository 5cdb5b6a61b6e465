/* queue_kafka — queue.h on Apache Kafka, through librdkafka.
 *
 * Names. A worker group `g` is the topic `<prefix>g` (prefix
 * conf->kafka_topic_prefix, default "dagq.") and the consumer group of the
 * same name. Dead letters go to the topic `<prefix>dead-letter`, so no worker
 * group may be called "dead-letter". Topics are created through the Admin API
 * (CreateTopics, conf->kafka_partitions partitions, default 6, replication
 * conf->kafka_replication, default 1); one that exists already is fine and
 * is never altered. The scheduler creates them (queue_ensure_group, and
 * queue_push on the first message for a group), and so does a consumer when
 * it opens, so a worker started before the scheduler works. A create waits
 * until the topic shows in the metadata, so the subscription that follows
 * sees it at once instead of at the next metadata refresh.
 *
 * Configuration. librdkafka properties are applied in this order, later
 * winning: dagq's defaults (below), environment variables DAGQ_KAFKA_<NAME>
 * (NAME upper case with '.' written '_', e.g. DAGQ_KAFKA_SECURITY_PROTOCOL
 * for security.protocol; DAGQ_KAFKA_CONF, _TOPIC_PREFIX, _PARTITIONS and
 * _REPLICATION are dagq's own options, not properties), conf->kafka_props
 * ("key=value", from repeated --kafka-conf), then what dagq's correctness
 * depends on (consumer: group.id, enable.auto.offset.store=false,
 * enable.auto.commit=true). A property librdkafka rejects is a QUEUE_EINVAL
 * naming the property, where it came from and librdkafka's words. Values are
 * never logged (they may be passwords).
 *
 * Producer. acks=all with idempotence, linger.ms=1, and no sticky
 * partitioning, so the messages of one batch spread over all partitions
 * (and so over all workers) instead of landing on one. queue_push hands the
 * message to librdkafka; queue_flush waits until every delivery report is in
 * and reports the first failure since the last flush. A flush that times out
 * is QUEUE_ECONN and drops what librdkafka still holds (purge), so that an
 * outage does not pile up copies of re-pushed batches; a message that was in
 * flight may still arrive (a duplicate the claim in PostgreSQL absorbs). A
 * fatal idempotence error makes the producer be re-created, reported once as
 * QUEUE_EBROKER.
 *
 * Consumer. One librdkafka KafkaConsumer per worker group; session 10 s with
 * 1 s heartbeats (a killed worker's partitions move within ~10 s);
 * auto.offset.reset=earliest; queued.min.messages=1000 (prefetch per
 * partition); fetch.wait.max.ms=100: the broker answers a waiting fetch as
 * soon as a message arrives (push to poll measured at ~2 ms either way), and
 * an idle consumer costs the broker 10 fetches a second, not 100.
 *
 * Assignment: roundrobin, an eager protocol: every join or leave revokes and
 * reassigns all partitions, which takes about a heartbeat. cooperative-sticky
 * would move only what must move, but the librdkafka of Debian 12 (2.0.2)
 * aborts in rd_kafka_destroy() when a cooperative-sticky consumer is
 * destroyed before its first assignment (librdkafka issue 4312, fixed in
 * 2.3.0). With librdkafka >= 2.3 cooperative-sticky is the default; the
 * rebalance callback handles both protocols.
 *
 * Offsets. librdkafka never stores an offset by itself; queue_consumer_ack
 * stores one and the auto-commit (every 500 ms, on revocation and on close)
 * commits it, so an offset is committed only after the worker decided the
 * claim. Acks arrive out of order when a worker runs several tasks, so per
 * partition the consumer keeps the offsets it handed out and not yet acked,
 * and stores only up to the lowest of them: a crash re-delivers every message
 * whose claim was not decided. A partition's state belongs to one assignment
 * (a generation number); an ack for a message of a partition since revoked
 * does nothing: the partition's new owner gets the message again.
 *
 * No free slot. poll(max == 0) takes nothing but keeps calling
 * rd_kafka_consumer_poll, which serves heartbeats, rebalances and
 * max.poll.interval.ms, so a worker stays in its group however long its tasks
 * run. A message that arrives meanwhile goes to a stash (handed out as far as
 * offsets go); when the stash holds KQ_STASH_HIGH messages every assigned
 * partition is paused (and so is each one assigned while paused), and
 * librdkafka drops what it prefetched. poll(max >= 1) returns the stash first
 * and resumes once fewer than KQ_STASH_LOW are left. Pausing only when work
 * piles up, not at every poll(max == 0), is for latency: librdkafka 2.0
 * fetches a resumed partition only at its broker thread's next wakeup, up to
 * 1 s later (measured: ~800 ms per pause/resume cycle), and the stash covers
 * that second. Only partitions this consumer paused are resumed (librdkafka
 * keeps a partition's pause flag across assignments, and resuming one that is
 * not paused can make it fetch old offsets again: librdkafka issue 4686).
 * Stashed messages of a revoked partition are dropped (never acked, so the new
 * owner reads them).
 *
 * Backlog. The consumer group's lag: per partition the high watermark minus
 * the group's committed offset (the low watermark where none is committed).
 * The committed offsets are read with rd_kafka_committed() on a consumer
 * handle of the group's id, one per worker group, made on first use and kept
 * by the producer (at most KQ_LAG_MAX, the least recently used goes). That
 * handle never subscribes nor assigns, so it never joins the group: it only
 * finds the coordinator and sends OffsetFetch, and it commits nothing
 * (enable.auto.commit=false). Not the Admin API's ListConsumerGroupOffsets:
 * librdkafka (2.0.2 and later, issue 5040) crashes in it when the broker
 * answers NOT_COORDINATOR (common right after a group's topic is created) on a
 * client that is not a consumer of a group: it asks that client's (absent)
 * group for a coordinator query.
 *
 * Threads. The producer is used by one thread. A consumer's poll runs on one
 * thread (rebalance, error and log callbacks run inside it); ack and
 * dead_letter may run on others: the partition state is under c->mu, and an
 * offset is stored under it too, so it is either stored before a revocation
 * (and committed by it) or not at all. Dead letters go through a producer
 * of the consumer's own, made on first use, under c->dl_mu. wake sets a flag
 * and yields the consumer queue; poll also waits in slices of 200 ms.
 *
 * Connection loss. librdkafka reconnects on its own (backoff capped at
 * 1 s). The error callback logs when every broker is down (once per outage)
 * and a broker-state interceptor logs when one is up again; other transport
 * errors are debug. Nothing here exits the process. Messages returned are
 * copies, independent of the librdkafka handle, so they may outlive it. */
#include "queue_ops.h"

#include "log.h"
#include "mem.h"

#include <librdkafka/rdkafka.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KQ_DEFAULT_PREFIX "dagq."
#define KQ_DEAD_LETTER "dead-letter"
#define KQ_ADMIN_TIMEOUT_MS 5000    /* a request, broker lookup included */
#define KQ_ADMIN_OP_TIMEOUT_MS 4000 /* the broker creating a topic */
#define KQ_TOPIC_WAIT_MS 10000
#define KQ_DEAD_LETTER_TIMEOUT_MS 10000
#define KQ_CLOSE_FLUSH_MS 3000
#define KQ_POLL_SLICE_MS 200
#define KQ_STASH_HIGH 1024 /* poll(max == 0) pauses the partitions at this many stashed */
#define KQ_STASH_LOW 512   /* and poll(max >= 1) resumes them below this many */
#define KQ_HEADER_REASON "dagq-reason"
#define KQ_HEADER_SOURCE "dagq-source"
#define KQ_LAG_MAX 64 /* backlog readers kept per producer */

/* ---- settings: what a client is built from ---- */

typedef struct kq_prop {
    char *key, *value;
    char *origin; /* "DAGQ_KAFKA_X" or "--kafka-conf": for error messages */
} kq_prop;

typedef struct kq_settings {
    char *bootstrap; /* from the URL */
    char *prefix;
    char *client_name;
    int partitions, replication;
    kq_prop *props;
    int n_props;
} kq_settings;

typedef struct kq_kv {
    const char *key, *value;
} kq_kv;

/* dagq's own DAGQ_KAFKA_* options: not librdkafka properties. */
static const char *const kq_own_env[] = {"CONF", "TOPIC_PREFIX", "PARTITIONS", "REPLICATION"};

/* ---- what every client shares: callbacks' opaque ---- */

typedef struct kq_client {
    rd_kafka_t *rk;
    const char *role;  /* "producer", "consumer": for logs */
    const char *label; /* worker group or "-": for logs */
    atomic_int fatal;  /* librdkafka raised a fatal error */
    /* for the down/up log lines; under bmu (librdkafka's broker threads and
     * the thread serving the error callback use them) */
    pthread_mutex_t bmu;
    int64_t last_up, last_down; /* when a broker connection last went up, down */
    bool down, closing;
} kq_client;

typedef struct kq_producer {
    kq_client cl; /* first: the callbacks' opaque */
    kq_settings s;
    /* delivery reports since the last flush (producer thread only) */
    int n_failed;
    rd_kafka_resp_err_t first_err;
    char first_errstr[512];
    char **ensured; /* topics known to exist */
    int n_ensured;
    /* after a push could not create its topic for want of a broker, pushes
     * to new topics fail at once until then, instead of each waiting */
    int64_t ensure_retry_at;
    char ensure_err[512];
    struct kq_lag **lags; /* backlog readers, one per worker group */
    int n_lags;
} kq_producer;

/* Reads a consumer group's committed offsets (see "Backlog" at the top). */
typedef struct kq_lag {
    kq_client cl;   /* first: the callbacks' opaque */
    char *group;    /* worker group: cl.label */
    char *group_id; /* consumer group id: the topic's name */
    int64_t used;   /* last use, for eviction */
} kq_lag;

typedef struct kq_part {
    int32_t partition;
    bool assigned;
    uint64_t gen;   /* which assignment this state belongs to */
    int64_t next;   /* offset after the highest handed out, -1: none */
    int64_t stored; /* last offset stored, -1: none */
    bool paused;    /* paused by this consumer: librdkafka keeps that across
                       assignments, and resuming a partition that is not
                       paused can make librdkafka fetch old offsets again
                       (librdkafka issue 4686), so this is tracked */
    int64_t *out;   /* handed out (or stashed), not acked */
    int n_out, cap_out;
} kq_part;

typedef struct kq_msg {
    const queue__ops *ops; /* first: queue_msg_free finds msg_free */
    queue_msg pub;
    int32_t partition;
    int64_t offset;
    uint64_t gen;
    char data[]; /* payload (pub.len bytes), then a NUL */
} kq_msg;

typedef struct kq_consumer {
    kq_client cl; /* first: the callbacks' opaque */
    kq_settings s;
    char *group, *topic;
    rd_kafka_queue_t *cq; /* the consumer queue, yielded by wake */

    pthread_mutex_t mu; /* guards parts, n_parts, gen */
    kq_part *parts;
    int n_parts;
    uint64_t gen;

    atomic_int wake;
    bool paused;    /* poll thread only */
    kq_msg **stash; /* poll thread only (rebalances run inside poll) */
    int n_stash, cap_stash;

    pthread_mutex_t dl_mu; /* guards dl */
    kq_producer *dl;
    char *dl_topic;
} kq_consumer;

/* ---- small helpers ---- */

static int64_t kq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* QUEUE_E* for a librdkafka error: unreachable brokers are retriable. */
static int kq_code(rd_kafka_resp_err_t err)
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

/* The bootstrap.servers list of a kafka:// URL, or NULL with the reason. */
static char *kq_url_parse(const char *url, char *errbuf, size_t errlen)
{
    static const char scheme[] = "kafka://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        snprintf(errbuf, errlen, "broker URL \"%s\": must start with kafka://", url ? url : "");
        return NULL;
    }
    const char *rest = url + sizeof scheme - 1;
    size_t n = strlen(rest);
    if (n && rest[n - 1] == '/')
        n--; /* kafka://host:port/ is forgiven */
    char *list = mem_strndup(rest, n);
    const char *why = NULL;
    char *bad = NULL;
    if (!*list)
        why = "no host:port";
    for (char *p = list; !why && *p;) {
        char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bad = mem_strndup(p, len);
        const char *colon = NULL;
        if (len == 0) {
            why = "an empty host:port";
        } else if (strpbrk(bad, "/?#@ \t")) {
            why = "is not host:port (no user, path or query allowed)";
        } else if (bad[0] == '[') { /* [v6addr]:port */
            char *rb = strchr(bad, ']');
            if (!rb || rb == bad + 1 || rb[1] != ':')
                why = "is not [address]:port";
            else
                colon = rb + 1;
        } else {
            colon = strrchr(bad, ':');
            if (!colon || colon == bad || memchr(bad, ':', (size_t)(colon - bad)))
                why = "is not host:port";
        }
        if (!why) {
            const char *d = colon + 1;
            long port = 0;
            if (!*d)
                why = "has no port";
            for (; !why && *d; d++) {
                if (!isdigit((unsigned char)*d) || (port = port * 10 + (*d - '0')) > 65535)
                    why = "has a port that is not 1-65535";
            }
            if (!why && port < 1)
                why = "has a port that is not 1-65535";
        }
        if (!why) {
            mem_free(bad);
            bad = NULL;
        }
        p = end ? end + 1 : p + len;
        if (!why && end && !*p)
            why = "ends with a comma";
    }
    if (why) {
        if (bad)
            snprintf(errbuf, errlen,
                     "broker URL \"%s\": \"%s\" %s; expected kafka://host:port[,host:port...]", url,
                     bad, why);
        else
            snprintf(errbuf, errlen,
                     "broker URL \"%s\": %s; expected kafka://host:port[,host:port...]", url, why);
        mem_free(bad);
        mem_free(list);
        return NULL;
    }
    return list;
}

static int kq_url_check(const char *url, char *errbuf, size_t errlen)
{
    char *list = kq_url_parse(url, errbuf, errlen);
    if (!list)
        return QUEUE_EINVAL;
    mem_free(list);
    return QUEUE_OK;
}

/* Kafka's rule for topic names: 1-249 of [A-Za-z0-9._-], not "." or "..". */
static int kq_topic_name(const kq_settings *s, const char *group, char **out, char *errbuf,
                         size_t errlen)
{
    *out = NULL;
    if (!strcmp(group, KQ_DEAD_LETTER)) {
        snprintf(errbuf, errlen,
                 "kafka: worker group \"%s\" is reserved: its topic %s%s holds dead letters", group,
                 s->prefix, group);
        return QUEUE_EINVAL;
    }
    char *t = mem_printf("%s%s", s->prefix, group);
    size_t n = strlen(t);
    bool ok = n >= 1 && n <= 249 && strcmp(t, ".") && strcmp(t, "..");
    for (const char *p = t; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
    if (!ok) {
        snprintf(errbuf, errlen,
                 "kafka: topic name \"%s\" (prefix + worker group) is not a valid Kafka topic: "
                 "1-249 of A-Z a-z 0-9 . _ -",
                 t);
        mem_free(t);
        return QUEUE_EINVAL;
    }
    *out = t;
    return QUEUE_OK;
}

/* ---- settings ---- */

static void kq_settings_free(kq_settings *s)
{
    mem_free(s->bootstrap);
    mem_free(s->prefix);
    mem_free(s->client_name);
    for (int i = 0; i < s->n_props; i++) {
        mem_free(s->props[i].key);
        mem_free(s->props[i].value);
        mem_free(s->props[i].origin);
    }
    mem_free(s->props);
    memset(s, 0, sizeof *s);
}

static void kq_settings_add(kq_settings *s, char *key, char *value, char *origin)
{
    s->props = mem_realloc(s->props, sizeof *s->props * (size_t)(s->n_props + 1));
    s->props[s->n_props++] = (kq_prop){key, value, origin};
}

static void kq_settings_copy(kq_settings *d, const kq_settings *s)
{
    memset(d, 0, sizeof *d);
    d->bootstrap = mem_strdup(s->bootstrap);
    d->prefix = mem_strdup(s->prefix);
    d->client_name = mem_strdup(s->client_name);
    d->partitions = s->partitions;
    d->replication = s->replication;
    for (int i = 0; i < s->n_props; i++)
        kq_settings_add(d, mem_strdup(s->props[i].key), mem_strdup(s->props[i].value),
                        mem_strdup(s->props[i].origin));
}

static int kq_settings_init(kq_settings *s, const queue_conf *conf, char *errbuf, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->bootstrap = kq_url_parse(conf->broker_url, errbuf, errlen);
    if (!s->bootstrap)
        return QUEUE_EINVAL;
    s->prefix = mem_strdup(conf->kafka_topic_prefix ? conf->kafka_topic_prefix : KQ_DEFAULT_PREFIX);
    s->client_name =
        mem_strdup(conf->client_name && *conf->client_name ? conf->client_name : "dagq");
    s->partitions = conf->kafka_partitions > 0 ? conf->kafka_partitions : 6;
    s->replication = conf->kafka_replication > 0 ? conf->kafka_replication : 1;

    static const char env_prefix[] = "DAGQ_KAFKA_";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, env_prefix, sizeof env_prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof env_prefix - 1;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        size_t n = (size_t)(eq - name);
        bool own = false;
        for (size_t i = 0; i < sizeof kq_own_env / sizeof kq_own_env[0]; i++)
            own |= strlen(kq_own_env[i]) == n && !strncmp(kq_own_env[i], name, n);
        if (own)
            continue;
        char *origin = mem_strndup(*e, (size_t)(eq - *e));
        if (n == 0) {
            snprintf(errbuf, errlen, "kafka: environment variable %s names no property", origin);
            mem_free(origin);
            kq_settings_free(s);
            return QUEUE_EINVAL;
        }
        char *key = mem_strndup(name, n);
        for (char *k = key; *k; k++)
            *k = *k == '_' ? '.' : (char)tolower((unsigned char)*k);
        kq_settings_add(s, key, mem_strdup(eq + 1), origin);
    }
    for (int i = 0; i < conf->n_kafka_props; i++) {
        const char *kv = conf->kafka_props[i];
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq == kv) {
            snprintf(errbuf, errlen, "kafka property \"%s\" (--kafka-conf): expected key=value",
                     kv ? kv : "");
            kq_settings_free(s);
            return QUEUE_EINVAL;
        }
        kq_settings_add(s, mem_strndup(kv, (size_t)(eq - kv)), mem_strdup(eq + 1),
                        mem_strdup("--kafka-conf"));
    }
    return QUEUE_OK;
}

/* ---- callbacks every client has ---- */

static void kq_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
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
    if (log_enabled(l))
        log_write(l, buf, "kafka=%s fac=%s", rd_kafka_name(rk), fac);
}

static void kq_client_init(kq_client *cl, const char *role, const char *label)
{
    cl->role = role;
    cl->label = label;
    pthread_mutex_init(&cl->bmu, NULL);
}

/* Before a new rk (no callback can run then). */
static void kq_client_reset(kq_client *cl)
{
    cl->last_up = cl->last_down = 0;
    cl->down = cl->closing = false;
    atomic_store(&cl->fatal, 0);
}

/* Before rk is closed: its connections going down is no outage. */
static void kq_client_closing(kq_client *cl)
{
    pthread_mutex_lock(&cl->bmu);
    cl->closing = true;
    pthread_mutex_unlock(&cl->bmu);
}

static void kq_client_fini(kq_client *cl)
{
    pthread_mutex_destroy(&cl->bmu);
}

/* Runs on librdkafka's broker threads: notes when connections go up and
 * down, and logs the end of an outage the error callback reported. */
static rd_kafka_resp_err_t kq_broker_state_cb(rd_kafka_t *rk, int32_t broker_id,
                                              const char *secproto, const char *name, int port,
                                              const char *state, void *opaque)
{
    kq_client *cl = opaque;
    (void)secproto;
    bool up = !strcmp(state, "UP"), down = !strcmp(state, "DOWN");
    if (!up && !down)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&cl->bmu);
    if (down) {
        cl->last_down = kq_now_ms();
    } else {
        cl->last_up = kq_now_ms();
        if (cl->down && !cl->closing) {
            cl->down = false;
            log_info("kafka broker reachable again", "kafka=%s role=%s group=%s broker=%s:%d id=%d",
                     rd_kafka_name(rk), cl->role, cl->label, name, port, (int)broker_id);
        }
    }
    pthread_mutex_unlock(&cl->bmu);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void kq_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kq_client *cl = opaque;
    char q[512];
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        /* A consumer serves this in its poll, maybe after the broker is
         * back: an outage is logged only if no connection came up since
         * the last one went down. */
        pthread_mutex_lock(&cl->bmu);
        if (!cl->down && !cl->closing && cl->last_up <= cl->last_down) {
            cl->down = true;
            log_warn("kafka brokers unreachable; librdkafka keeps reconnecting",
                     "kafka=%s role=%s group=%s reason=\"%s\"", rd_kafka_name(rk), cl->role,
                     cl->label, log_quote(reason, q, sizeof q));
        }
        pthread_mutex_unlock(&cl->bmu);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        atomic_store(&cl->fatal, 1);
        log_error("kafka fatal error", "kafka=%s role=%s group=%s err=%s reason=\"%s\"",
                  rd_kafka_name(rk), cl->role, cl->label, rd_kafka_err2name(orig),
                  log_quote(why, q, sizeof q));
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE) {
        log_debug("kafka connection error", "kafka=%s role=%s err=%s reason=\"%s\"",
                  rd_kafka_name(rk), cl->role, rd_kafka_err2name(err),
                  log_quote(reason, q, sizeof q));
        return;
    }
    log_warn("kafka error", "kafka=%s role=%s group=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
             cl->role, cl->label, rd_kafka_err2name(err), log_quote(reason, q, sizeof q));
}

static rd_kafka_resp_err_t kq_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
                                     char *errstr, size_t errstr_size)
{
    (void)conf;
    (void)errstr;
    (void)errstr_size;
    return rd_kafka_interceptor_add_on_broker_state_change(rk, "dagq", kq_broker_state_cb, opaque);
}

static int kq_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                       const char *origin, char *errbuf, size_t errlen)
{
    char es[512];
    if (rd_kafka_conf_set(conf, key, value, es, sizeof es) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property %s (%s): %s", key, origin, es);
        return QUEUE_EINVAL;
    }
    return QUEUE_OK;
}

/* A conf for cl: common and role defaults, then the user's properties, then
 * forced (each list ends with a NULL key). NULL with the reason in errbuf. */
static rd_kafka_conf_t *kq_conf_new(kq_client *cl, const kq_settings *s, const kq_kv *defaults,
                                    const kq_kv *forced, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const kq_kv common[] = {
        {"bootstrap.servers", s->bootstrap}, {"client.id", s->client_name},
        {"log.connection.close", "false"},   {"reconnect.backoff.max.ms", "1000"},
        {"socket.keepalive.enable", "true"}, {NULL, NULL}};
    for (const kq_kv *kv = common; kv->key; kv++)
        if (kq_conf_set(conf, kv->key, kv->value, "dagq default", errbuf, errlen))
            goto fail;
    for (const kq_kv *kv = defaults; kv->key; kv++)
        if (kq_conf_set(conf, kv->key, kv->value, "dagq default", errbuf, errlen))
            goto fail;
    for (int i = 0; i < s->n_props; i++)
        if (kq_conf_set(conf, s->props[i].key, s->props[i].value, s->props[i].origin, errbuf,
                        errlen))
            goto fail;
    for (const kq_kv *kv = forced; kv && kv->key; kv++)
        if (kq_conf_set(conf, kv->key, kv->value, "set by dagq", errbuf, errlen))
            goto fail;
    rd_kafka_conf_set_opaque(conf, cl);
    rd_kafka_conf_set_error_cb(conf, kq_error_cb);
    rd_kafka_conf_set_log_cb(conf, kq_log_cb);
    rd_kafka_conf_interceptor_add_on_new(conf, "dagq", kq_on_new, cl);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- admin: topics ---- */

/* Waits until the topic has partitions in rk's metadata. */
static int kq_topic_wait(rd_kafka_t *rk, const char *topic, char *errbuf, size_t errlen)
{
    int64_t deadline = kq_now_ms() + KQ_TOPIC_WAIT_MS;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    while (rkt) {
        const struct rd_kafka_metadata *md = NULL;
        err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
        if (!err) {
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            if (!err && md->topics[0].partition_cnt == 0)
                err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
            rd_kafka_metadata_destroy(md);
        }
        if (!err || kq_now_ms() >= deadline)
            break;
        usleep(100 * 1000);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (err) {
        snprintf(errbuf, errlen, "kafka: topic %s not in the metadata after %d ms: %s", topic,
                 KQ_TOPIC_WAIT_MS, rd_kafka_err2str(err));
        return kq_code(err) == QUEUE_EBROKER ? QUEUE_ECONN : kq_code(err);
    }
    return QUEUE_OK;
}

/* Creates topic unless it exists, then waits until it is in the metadata. */
static int kq_topic_create(rd_kafka_t *rk, const char *label, const char *topic, int partitions,
                           int replication, char *errbuf, size_t errlen)
{
    char es[512];
    int rc = QUEUE_OK;
    bool created = false;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, replication, es, sizeof es);
    if (!nt) {
        snprintf(errbuf, errlen, "kafka: topic %s: %s", topic, es);
        return QUEUE_EINVAL;
    }
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, KQ_ADMIN_TIMEOUT_MS, es, sizeof es);
    rd_kafka_AdminOptions_set_operation_timeout(opts, KQ_ADMIN_OP_TIMEOUT_MS, es, sizeof es);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KQ_ADMIN_TIMEOUT_MS * 2 + 1000);
    if (!ev) {
        snprintf(errbuf, errlen, "kafka: creating topic %s: no answer from the broker", topic);
        rc = QUEUE_ECONN;
        goto done;
    }
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err) {
        snprintf(errbuf, errlen, "kafka: creating topic %s: %s", topic,
                 rd_kafka_event_error_string(ev));
        rc = kq_code(err);
        goto done;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    err = cnt == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char *why = cnt == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;
        snprintf(errbuf, errlen, "kafka: creating topic %s (partitions=%d replication=%d): %s",
                 topic, partitions, replication, why ? why : rd_kafka_err2str(err));
        rc = kq_code(err);
        goto done;
    }
    created = !err;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    if (rc)
        return rc;
    rc = kq_topic_wait(rk, topic, errbuf, errlen);
    if (!rc && created)
        log_info("kafka topic created", "topic=%s partitions=%d replication=%d group=%s", topic,
                 partitions, replication, label);
    return rc;
}

/* ---- producer ---- */

static void kq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kq_producer *p = opaque;
    (void)rk;
    /* purged by a flush that timed out: reported there already */
    if (!m->err || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return;
    if ((m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
         m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
        m->rkt) { /* deleted behind our back: the next push creates it again */
        for (int i = 0; i < p->n_ensured; i++) {
            if (!strcmp(p->ensured[i], rd_kafka_topic_name(m->rkt))) {
                mem_free(p->ensured[i]);
                p->ensured[i] = p->ensured[--p->n_ensured];
                break;
            }
        }
    }
    if (p->n_failed++ == 0) {
        p->first_err = m->err;
        snprintf(p->first_errstr, sizeof p->first_errstr, "topic %s: %s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_err2str(m->err));
    }
}

static int kq_producer_start(kq_producer *p, char *errbuf, size_t errlen)
{
    static const kq_kv defaults[] = {{"acks", "all"},
                                     {"enable.idempotence", "true"},
                                     {"linger.ms", "1"},
                                     {"sticky.partitioning.linger.ms", "0"},
                                     {"allow.auto.create.topics", "false"},
                                     {NULL, NULL}};
    char es[512];
    kq_client_reset(&p->cl); /* no rk yet: nothing else touches cl */
    rd_kafka_conf_t *conf = kq_conf_new(&p->cl, &p->s, defaults, NULL, errbuf, errlen);
    if (!conf)
        return QUEUE_EINVAL;
    rd_kafka_conf_set_dr_msg_cb(conf, kq_dr_cb);
    p->cl.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!p->cl.rk) {
        rd_kafka_conf_destroy(conf); /* not owned by rk when rd_kafka_new fails */
        snprintf(errbuf, errlen, "kafka: creating the producer: %s", es);
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
        log_warn("kafka producer closed with messages undelivered", "kafka=%s left=%d",
                 rd_kafka_name(p->cl.rk), left);
        rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->cl.rk, 0);
    }
    kq_client_closing(&p->cl);
    rd_kafka_destroy(p->cl.rk);
    p->cl.rk = NULL;
}

static int kq_producer_new(const kq_settings *s, const char *label, kq_producer **out, char *errbuf,
                           size_t errlen)
{
    kq_producer *p = mem_calloc(1, sizeof *p);
    kq_settings_copy(&p->s, s);
    kq_client_init(&p->cl, "producer", label);
    int rc = kq_producer_start(p, errbuf, errlen);
    if (rc) {
        kq_client_fini(&p->cl);
        kq_settings_free(&p->s);
        mem_free(p);
        return rc;
    }
    *out = p;
    return QUEUE_OK;
}

static void kq_lag_free(kq_lag *l);

static void kq_producer_free(kq_producer *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_lags; i++)
        kq_lag_free(p->lags[i]);
    mem_free(p->lags);
    kq_producer_stop(p);
    kq_client_fini(&p->cl);
    for (int i = 0; i < p->n_ensured; i++)
        mem_free(p->ensured[i]);
    mem_free(p->ensured);
    kq_settings_free(&p->s);
    mem_free(p);
}

/* After a fatal error the handle is useless: report it once, start afresh. */
static int kq_producer_check_fatal(kq_producer *p, char *errbuf, size_t errlen)
{
    if (!atomic_load(&p->cl.fatal))
        return QUEUE_OK;
    char why[512];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(p->cl.rk, why, sizeof why);
    snprintf(errbuf, errlen,
             "kafka: the producer failed (%s: %s); unsent messages are dropped, it starts afresh",
             rd_kafka_err2name(err), why);
    rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    kq_client_closing(&p->cl);
    rd_kafka_destroy(p->cl.rk);
    p->cl.rk = NULL;
    p->n_failed = 0;
    p->first_err = 0;
    char es[512];
    if (kq_producer_start(p, es, sizeof es))
        log_error("kafka producer could not be re-created", "err=\"%s\"", es);
    return QUEUE_EBROKER;
}

static int kq_producer_ready(kq_producer *p, char *errbuf, size_t errlen)
{
    int rc = kq_producer_check_fatal(p, errbuf, errlen);
    if (rc)
        return rc;
    if (!p->cl.rk) {
        rc = kq_producer_start(p, errbuf, errlen);
        if (rc)
            return rc;
    }
    return QUEUE_OK;
}

/* Whether this producer already created (or found) topic. */
static int kq_producer_ensured(const kq_producer *p, const char *topic)
{
    for (int i = 0; i < p->n_ensured; i++)
        if (!strcmp(p->ensured[i], topic))
            return 1;
    return 0;
}

static int kq_producer_ensure(kq_producer *p, const char *topic, const char *label, char *errbuf,
                              size_t errlen)
{
    if (kq_producer_ensured(p, topic))
        return QUEUE_OK;
    int rc =
        kq_topic_create(p->cl.rk, label, topic, p->s.partitions, p->s.replication, errbuf, errlen);
    if (rc)
        return rc;
    p->ensured = mem_realloc(p->ensured, sizeof *p->ensured * (size_t)(p->n_ensured + 1));
    p->ensured[p->n_ensured++] = mem_strdup(topic);
    return QUEUE_OK;
}

/* Hands one message to librdkafka; hdrs (may be NULL) is owned by the
 * message on success, still the caller's on failure. */
static int kq_producer_send(kq_producer *p, const char *topic, const void *data, size_t len,
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
        snprintf(errbuf, errlen, "kafka: producing to %s: %s", topic, rd_kafka_err2str(err));
        return kq_code(err);
    }
    return QUEUE_OK;
}

static int kq_producer_flush(kq_producer *p, int timeout_ms, char *errbuf, size_t errlen)
{
    int rc = kq_producer_ready(p, errbuf, errlen);
    if (rc)
        return rc;
    rd_kafka_resp_err_t err = rd_kafka_flush(p->cl.rk, timeout_ms < 0 ? 0 : timeout_ms);
    rc = kq_producer_check_fatal(p, errbuf, errlen);
    if (rc)
        return rc;
    if (err) {
        /* What is still queued is dropped, not left to arrive later: the
         * caller re-pushes (the scheduler after its next pass, or the
         * queued-timeout re-push), and an outage would otherwise pile up
         * copies of every batch to be delivered all at once. A message
         * that was in flight may still have been stored (a duplicate the
         * claim absorbs). */
        int left = rd_kafka_outq_len(p->cl.rk);
        rd_kafka_purge(p->cl.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->cl.rk, 0);
        snprintf(errbuf, errlen,
                 "kafka: %d message(s) not acknowledged by the broker within %d ms, dropped%s%s",
                 left, timeout_ms, p->n_failed ? "; first failure: " : "",
                 p->n_failed ? p->first_errstr : "");
        p->n_failed = 0;
        p->first_err = 0;
        return QUEUE_ECONN;
    }
    if (p->n_failed) {
        snprintf(errbuf, errlen, "kafka: %d message(s) not delivered; first: %s", p->n_failed,
                 p->first_errstr);
        rc = kq_code(p->first_err);
        p->n_failed = 0;
        p->first_err = 0;
        return rc;
    }
    return QUEUE_OK;
}

/* ---- queue.h producer side ---- */

static int kq_open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen)
{
    kq_settings s;
    int rc = kq_settings_init(&s, conf, errbuf, errlen);
    if (rc)
        return rc;
    kq_producer *p = NULL;
    rc = kq_producer_new(&s, "-", &p, errbuf, errlen);
    kq_settings_free(&s);
    if (rc)
        return rc;
    *impl = p;
    return QUEUE_OK;
}

static void kq_free(void *impl)
{
    kq_producer_free(impl);
}

static int kq_ensure_group(void *impl, const char *group, char *errbuf, size_t errlen)
{
    kq_producer *p = impl;
    char *topic = NULL;
    int rc = kq_topic_name(&p->s, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ready(p, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ensure(p, topic, group, errbuf, errlen);
    mem_free(topic);
    return rc;
}

/* The first push to a group creates its topic (the scheduler need not call
 * queue_ensure_group first). */
static int kq_push_ensure(kq_producer *p, const char *topic, const char *group, char *errbuf,
                          size_t errlen)
{
    if (kq_producer_ensured(p, topic))
        return QUEUE_OK;
    if (kq_now_ms() < p->ensure_retry_at) {
        snprintf(errbuf, errlen, "%s", p->ensure_err);
        return QUEUE_ECONN;
    }
    int rc = kq_producer_ensure(p, topic, group, errbuf, errlen);
    if (rc == QUEUE_ECONN) {
        p->ensure_retry_at = kq_now_ms() + 2000;
        snprintf(p->ensure_err, sizeof p->ensure_err, "%s", errbuf);
    }
    return rc;
}

static int kq_push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                   size_t errlen)
{
    kq_producer *p = impl;
    char *topic = NULL;
    int rc = kq_topic_name(&p->s, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ready(p, errbuf, errlen);
    if (!rc)
        rc = kq_push_ensure(p, topic, group, errbuf, errlen);
    if (!rc)
        rc = kq_producer_send(p, topic, data, len, NULL, errbuf, errlen);
    mem_free(topic);
    return rc;
}

static int kq_flush(void *impl, int timeout_ms, char *errbuf, size_t errlen)
{
    return kq_producer_flush(impl, timeout_ms, errbuf, errlen);
}

/* ---- backlog: the consumer group's lag ---- */

/* Errors of a backlog reader: an outage is logged by the producer (and the
 * consumers) already, so only a fatal error is more than debug. */
static void kq_lag_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kq_client *cl = opaque;
    char q[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        atomic_store(&cl->fatal, 1);
        log_warn("kafka backlog reader failed; it is made again",
                 "kafka=%s group=%s err=%s reason=\"%s\"", rd_kafka_name(rk), cl->label,
                 rd_kafka_err2name(orig), log_quote(why, q, sizeof q));
        return;
    }
    log_debug("kafka backlog reader error", "kafka=%s group=%s err=%s reason=\"%s\"",
              rd_kafka_name(rk), cl->label, rd_kafka_err2name(err), log_quote(reason, q, sizeof q));
}

static void kq_lag_free(kq_lag *l)
{
    if (!l)
        return;
    kq_client_closing(&l->cl);
    if (l->cl.rk) {
        /* never subscribed nor assigned: nothing to leave, nothing to commit */
        rd_kafka_consumer_close(l->cl.rk);
        rd_kafka_destroy(l->cl.rk);
    }
    kq_client_fini(&l->cl);
    mem_free(l->group);
    mem_free(l->group_id);
    mem_free(l);
}

static int kq_lag_new(const kq_settings *s, const char *group, const char *group_id, kq_lag **out,
                      char *errbuf, size_t errlen)
{
    /* The handle must never take part in the group: no subscribe, no
     * assign (so no join, no heartbeats), no commits. The assignor is never
     * used; roundrobin keeps clear of librdkafka issue 4312 (cooperative-
     * sticky consumers abort when destroyed before an assignment, < 2.3). */
    static const kq_kv defaults[] = {{NULL, NULL}};
    char es[512];
    kq_lag *l = mem_calloc(1, sizeof *l);
    l->group = mem_strdup(group);
    l->group_id = mem_strdup(group_id);
    kq_client_init(&l->cl, "backlog", l->group);
    const kq_kv forced[] = {{"group.id", l->group_id},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"partition.assignment.strategy", "roundrobin"},
                            {NULL, NULL}};
    rd_kafka_conf_t *conf = kq_conf_new(&l->cl, s, defaults, forced, errbuf, errlen);
    if (!conf) {
        kq_lag_free(l);
        return QUEUE_EINVAL;
    }
    rd_kafka_conf_set_error_cb(conf, kq_lag_error_cb);
    l->cl.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!l->cl.rk) {
        rd_kafka_conf_destroy(conf); /* not owned by rk when rd_kafka_new fails */
        snprintf(errbuf, errlen, "kafka: creating the backlog reader of group %s: %s", group_id,
                 es);
        kq_lag_free(l);
        return QUEUE_EINVAL;
    }
    *out = l;
    return QUEUE_OK;
}

/* The producer's backlog reader for the consumer group group_id, made on
 * first use; the least recently used goes when KQ_LAG_MAX are kept. */
static int kq_lag_get(kq_producer *p, const char *group, const char *group_id, kq_lag **out,
                      char *errbuf, size_t errlen)
{
    kq_lag *l = NULL;
    int at = -1;
    for (int i = 0; i < p->n_lags; i++) {
        if (!strcmp(p->lags[i]->group_id, group_id)) {
            l = p->lags[i];
            at = i;
            break;
        }
    }
    if (l && atomic_load(&l->cl.fatal)) { /* useless now: make it again */
        p->lags[at] = p->lags[--p->n_lags];
        kq_lag_free(l);
        l = NULL;
    }
    if (!l) {
        int rc = kq_lag_new(&p->s, group, group_id, &l, errbuf, errlen);
        if (rc)
            return rc;
        if (p->n_lags >= KQ_LAG_MAX) {
            int old = 0;
            for (int i = 1; i < p->n_lags; i++)
                if (p->lags[i]->used < p->lags[old]->used)
                    old = i;
            kq_lag_free(p->lags[old]);
            p->lags[old] = p->lags[--p->n_lags];
        }
        p->lags = mem_realloc(p->lags, sizeof *p->lags * (size_t)(p->n_lags + 1));
        p->lags[p->n_lags++] = l;
    }
    l->used = kq_now_ms();
    rd_kafka_poll(l->cl.rk, 0); /* serve its error events: they pile up otherwise */
    *out = l;
    return QUEUE_OK;
}

/* Lag of the consumer group over the topic's partitions: high watermark
 * minus the committed offset (the low watermark where none is committed). */
static int kq_backlog(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen)
{
    kq_producer *p = impl;
    char *topic = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    kq_lag *l = NULL;
    *backlog = 0;
    int rc = kq_topic_name(&p->s, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ready(p, errbuf, errlen);
    if (rc)
        goto done;

    rkt = rd_kafka_topic_new(p->cl.rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->cl.rk, 0, rkt, &md, KQ_ADMIN_TIMEOUT_MS);
    if (err) {
        snprintf(errbuf, errlen, "kafka: metadata of topic %s: %s", topic, rd_kafka_err2str(err));
        rc = kq_code(err);
        goto done;
    }
    if (md->topic_cnt != 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        goto done; /* no topic: nothing waits */
    if (md->topics[0].err) {
        snprintf(errbuf, errlen, "kafka: metadata of topic %s: %s", topic,
                 rd_kafka_err2str(md->topics[0].err));
        rc = kq_code(md->topics[0].err);
        goto done;
    }
    int np = md->topics[0].partition_cnt;
    if (np == 0)
        goto done;
    parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id);

    /* The consumer group's id is the topic's name. rd_kafka_committed waits
     * for the group's coordinator (and looks it up again after
     * NOT_COORDINATOR) up to the timeout. */
    rc = kq_lag_get(p, group, topic, &l, errbuf, errlen);
    if (rc)
        goto done;
    err = rd_kafka_committed(l->cl.rk, parts, KQ_ADMIN_TIMEOUT_MS);
    if (err) {
        snprintf(errbuf, errlen, "kafka: committed offsets of group %s: %s%s", topic,
                 rd_kafka_err2str(err),
                 err == RD_KAFKA_RESP_ERR__TIMED_OUT ? " (group coordinator not reachable)" : "");
        rc = kq_code(err);
        goto done;
    }
    int64_t sum = 0, deadline = kq_now_ms() + KQ_ADMIN_TIMEOUT_MS;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *c = &parts->elems[i];
        if (c->err) {
            snprintf(errbuf, errlen, "kafka: committed offset of group %s on %s [%d]: %s", topic,
                     topic, (int)c->partition, rd_kafka_err2str(c->err));
            rc = kq_code(c->err);
            goto done;
        }
        int64_t lo = 0, hi = 0;
        for (;;) {
            err = rd_kafka_query_watermark_offsets(p->cl.rk, topic, c->partition, &lo, &hi,
                                                   KQ_ADMIN_TIMEOUT_MS);
            /* right after the topic is created its leaders may not be
             * known everywhere yet: that settles within moments */
            if ((err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                 err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                 err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) ||
                kq_now_ms() >= deadline)
                break;
            usleep(100 * 1000);
        }
        if (err) {
            snprintf(errbuf, errlen, "kafka: watermarks of %s [%d]: %s", topic, (int)c->partition,
                     rd_kafka_err2str(err));
            rc = kq_code(err);
            goto done;
        }
        int64_t at = c->offset >= 0 && c->offset > lo ? c->offset : lo;
        if (hi > at)
            sum += hi - at;
    }
    *backlog = sum;
done:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    mem_free(topic);
    return rc;
}

/* ---- consumer: partition state (under c->mu) ---- */

static kq_part *kc_part(kq_consumer *c, int32_t partition, bool add)
{
    for (int i = 0; i < c->n_parts; i++)
        if (c->parts[i].partition == partition)
            return &c->parts[i];
    if (!add)
        return NULL;
    c->parts = mem_realloc(c->parts, sizeof *c->parts * (size_t)(c->n_parts + 1));
    kq_part *p = &c->parts[c->n_parts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    p->next = p->stored = -1;
    return p;
}

static void kc_stash_drop(kq_consumer *c, int32_t partition)
{
    int j = 0;
    for (int i = 0; i < c->n_stash; i++) {
        if (c->stash[i]->partition == partition)
            mem_free(c->stash[i]);
        else
            c->stash[j++] = c->stash[i];
    }
    c->n_stash = j;
}

static void kc_partitions_str(const rd_kafka_topic_partition_list_t *l, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && n + 12 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : "", (int)l->elems[i].partition);
}

/* Pauses the partitions of l this consumer has not paused, or resumes those
 * of l it has paused; the others are left alone. */
static void kc_pause_list(kq_consumer *c, const rd_kafka_topic_partition_list_t *l, bool pause)
{
    rd_kafka_topic_partition_list_t *change = rd_kafka_topic_partition_list_new(l->cnt + 1);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < l->cnt; i++) {
        kq_part *p = kc_part(c, l->elems[i].partition, true);
        if (p->paused != pause) {
            p->paused = pause;
            rd_kafka_topic_partition_list_add(change, c->topic, p->partition);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (change->cnt > 0) {
        rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(c->cl.rk, change)
                                        : rd_kafka_resume_partitions(c->cl.rk, change);
        if (err)
            log_warn(pause ? "kafka pause failed" : "kafka resume failed", "group=%s err=%s",
                     c->group, rd_kafka_err2str(err));
        else
            log_debug(pause ? "kafka partitions paused" : "kafka partitions resumed",
                      "group=%s partitions=%d", c->group, change->cnt);
    }
    rd_kafka_topic_partition_list_destroy(change);
}

/* Pauses every assigned partition, or resumes every one this consumer paused. */
static void kc_pause(kq_consumer *c, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (pause) {
        if (rd_kafka_assignment(c->cl.rk, &l))
            l = rd_kafka_topic_partition_list_new(0);
    } else {
        pthread_mutex_lock(&c->mu);
        l = rd_kafka_topic_partition_list_new(c->n_parts + 1);
        for (int i = 0; i < c->n_parts; i++)
            if (c->parts[i].paused)
                rd_kafka_topic_partition_list_add(l, c->topic, c->parts[i].partition);
        pthread_mutex_unlock(&c->mu);
    }
    kc_pause_list(c, l, pause);
    rd_kafka_topic_partition_list_destroy(l);
    c->paused = pause;
}

static void kc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kq_consumer *c = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    char list[256];
    kc_partitions_str(parts, list, sizeof list);

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        pthread_mutex_lock(&c->mu);
        for (int i = 0; i < parts->cnt; i++) {
            kq_part *p = kc_part(c, parts->elems[i].partition, true);
            p->assigned = true;
            p->gen = ++c->gen;
            p->next = p->stored = -1;
            p->n_out = 0;
        }
        pthread_mutex_unlock(&c->mu);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        /* Paused with enough stashed: so are the new partitions. The
         * stash lost what came from revoked partitions: if little is left,
         * fetch again. (A partition this consumer paused under an earlier
         * assignment is paused still: kc_pause_list resumes it.) */
        if (c->paused && c->n_stash < KQ_STASH_LOW)
            kc_pause(c, false);
        kc_pause_list(c, parts, c->paused);
        log_info("kafka partitions assigned", "group=%s topic=%s partitions=%s paused=%d", c->group,
                 c->topic, list, c->paused);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        pthread_mutex_lock(&c->mu);
        for (int i = 0; i < parts->cnt; i++) {
            kq_part *p = kc_part(c, parts->elems[i].partition, false);
            if (p) {
                p->assigned = false;
                p->n_out = 0;
            }
            kc_stash_drop(c, parts->elems[i].partition);
        }
        pthread_mutex_unlock(&c->mu);
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
        log_info("kafka partitions revoked", "group=%s topic=%s partitions=%s lost=%d", c->group,
                 c->topic, list, lost);
    } else {
        log_error("kafka rebalance failed", "group=%s err=%s", c->group, rd_kafka_err2str(err));
        aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        log_error("kafka assignment failed", "group=%s err=\"%s\"", c->group,
                  rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (aerr)
        log_error("kafka assignment failed", "group=%s err=\"%s\"", c->group,
                  rd_kafka_err2str(aerr));
}

/* ---- consumer: queue.h ---- */

/* See "Consumer" at the top: cooperative-sticky only where librdkafka can
 * destroy a consumer that never had an assignment. */
static const char *kq_assignor(void)
{
    return rd_kafka_version() >= 0x02030000 ? "cooperative-sticky" : "roundrobin";
}

static void kq_consumer_free(void *impl);

static int kq_consumer_open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                            size_t errlen)
{
    const kq_kv defaults[] = {{"partition.assignment.strategy", kq_assignor()},
                              {"session.timeout.ms", "10000"},
                              {"heartbeat.interval.ms", "1000"},
                              {"fetch.wait.max.ms", "100"},
                              {"auto.commit.interval.ms", "500"},
                              {"auto.offset.reset", "earliest"},
                              {"enable.partition.eof", "false"},
                              {"queued.min.messages", "1000"},
                              {NULL, NULL}};
    char es[512];
    kq_consumer *c = mem_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->dl_mu, NULL);
    kq_client_init(&c->cl, "consumer", "-");
    int rc = kq_settings_init(&c->s, conf, errbuf, errlen);
    if (rc) {
        kq_consumer_free(c);
        return rc;
    }
    rc = kq_topic_name(&c->s, group, &c->topic, errbuf, errlen);
    if (rc) {
        kq_consumer_free(c);
        return rc;
    }
    c->group = mem_strdup(group);
    c->dl_topic = mem_printf("%s%s", c->s.prefix, KQ_DEAD_LETTER);
    c->cl.label = c->group;
    const kq_kv forced[] = {{"group.id", c->topic},
                            {"enable.auto.offset.store", "false"},
                            {"enable.auto.commit", "true"},
                            {NULL, NULL}};
    rd_kafka_conf_t *kconf = kq_conf_new(&c->cl, &c->s, defaults, forced, errbuf, errlen);
    if (!kconf) {
        kq_consumer_free(c);
        return QUEUE_EINVAL;
    }
    rd_kafka_conf_set_rebalance_cb(kconf, kc_rebalance_cb);
    c->cl.rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, es, sizeof es);
    if (!c->cl.rk) {
        rd_kafka_conf_destroy(kconf); /* not owned by rk when rd_kafka_new fails */
        snprintf(errbuf, errlen, "kafka: creating the consumer: %s", es);
        kq_consumer_free(c);
        return QUEUE_EINVAL;
    }
    /* error and log events are served by rd_kafka_consumer_poll */
    rd_kafka_poll_set_consumer(c->cl.rk);
    c->cq = rd_kafka_queue_get_consumer(c->cl.rk);

    rc = kq_topic_create(c->cl.rk, c->group, c->topic, c->s.partitions, c->s.replication, errbuf,
                         errlen);
    if (rc) {
        kq_consumer_free(c);
        return rc;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->cl.rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errbuf, errlen, "kafka: subscribing to %s: %s", c->topic, rd_kafka_err2str(err));
        kq_consumer_free(c);
        return kq_code(err);
    }
    log_info("kafka consumer subscribed", "kafka=%s group=%s topic=%s", rd_kafka_name(c->cl.rk),
             c->group, c->topic);
    *impl = c;
    return QUEUE_OK;
}

static void kq_consumer_free(void *impl)
{
    kq_consumer *c = impl;
    if (!c)
        return;
    kq_client_closing(&c->cl);
    if (c->cl.rk) {
        /* leaves the group: revocation (rebalance_cb) and the final commit */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->cl.rk);
        if (err)
            log_warn("kafka consumer close", "group=%s err=%s", c->group ? c->group : "",
                     rd_kafka_err2str(err));
    }
    for (int i = 0; i < c->n_stash; i++)
        mem_free(c->stash[i]);
    mem_free(c->stash);
    if (c->cq)
        rd_kafka_queue_destroy(c->cq);
    if (c->cl.rk)
        rd_kafka_destroy(c->cl.rk);
    kq_producer_free(c->dl);
    for (int i = 0; i < c->n_parts; i++)
        mem_free(c->parts[i].out);
    mem_free(c->parts);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->dl_mu);
    kq_client_fini(&c->cl);
    kq_settings_free(&c->s);
    mem_free(c->group);
    mem_free(c->topic);
    mem_free(c->dl_topic);
    mem_free(c);
}

/* A copy of m, recorded as handed out. */
static kq_msg *kc_take(kq_consumer *c, const rd_kafka_message_t *m)
{
    kq_msg *km = mem_alloc(sizeof *km + m->len + 1);
    km->ops = &queue__kafka_ops;
    km->partition = m->partition;
    km->offset = m->offset;
    if (m->len)
        memcpy(km->data, m->payload, m->len);
    km->data[m->len] = '\0';
    km->pub.data = km->data;
    km->pub.len = m->len;
    km->pub.priv = km;
    snprintf(km->pub.id, sizeof km->pub.id, "p%d@%lld", (int)m->partition, (long long)m->offset);

    pthread_mutex_lock(&c->mu);
    kq_part *p = kc_part(c, m->partition, false);
    if (p && p->assigned) {
        if (p->n_out == p->cap_out) {
            p->cap_out = p->cap_out ? p->cap_out * 2 : 16;
            p->out = mem_realloc(p->out, sizeof *p->out * (size_t)p->cap_out);
        }
        p->out[p->n_out++] = m->offset;
        if (m->offset + 1 > p->next)
            p->next = m->offset + 1;
        km->gen = p->gen;
    } else {
        km->gen = 0; /* not ours (cannot happen): its ack stores nothing */
        log_warn("kafka message from an unassigned partition", "group=%s id=%s", c->group,
                 km->pub.id);
    }
    pthread_mutex_unlock(&c->mu);
    return km;
}

static void kc_consumer_error(kq_consumer *c, const rd_kafka_message_t *m)
{
    char q[512];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    log_warn("kafka consumer error", "group=%s topic=%s partition=%d err=%s reason=\"%s\"",
             c->group, m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
             rd_kafka_err2name(m->err), log_quote(rd_kafka_message_errstr(m), q, sizeof q));
}

static int kq_consumer_poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n,
                            char *errbuf, size_t errlen)
{
    kq_consumer *c = impl;
    int64_t deadline = kq_now_ms() + timeout_ms;

    if (max == 0) {
        /* No free slot: take nothing, stay in the group. */
        do {
            if (!c->paused && c->n_stash >= KQ_STASH_HIGH)
                kc_pause(c, true);
            int64_t left = deadline - kq_now_ms();
            int t = left <= 0 ? 0 : left > KQ_POLL_SLICE_MS ? KQ_POLL_SLICE_MS : (int)left;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cl.rk, t);
            if (!m)
                continue;
            if (m->err) {
                kc_consumer_error(c, m);
            } else {
                if (c->n_stash == c->cap_stash) {
                    c->cap_stash = c->cap_stash ? c->cap_stash * 2 : 16;
                    c->stash = mem_realloc(c->stash, sizeof *c->stash * (size_t)c->cap_stash);
                }
                c->stash[c->n_stash++] = kc_take(c, m);
            }
            rd_kafka_message_destroy(m);
        } while (!atomic_load(&c->wake) && kq_now_ms() < deadline);
        atomic_store(&c->wake, 0);
        if (atomic_load(&c->cl.fatal)) {
            snprintf(errbuf, errlen, "kafka: the consumer hit a fatal error");
            return QUEUE_EBROKER;
        }
        return QUEUE_OK;
    }

    if (c->n_stash > 0) { /* what came during max == 0 polls goes first */
        int k = c->n_stash < max ? c->n_stash : max;
        for (int i = 0; i < k; i++)
            msgs[(*n)++] = &c->stash[i]->pub;
        memmove(c->stash, c->stash + k, sizeof *c->stash * (size_t)(c->n_stash - k));
        c->n_stash -= k;
    }
    if (c->paused && c->n_stash < KQ_STASH_LOW)
        kc_pause(c, false);

    while (*n < max && !atomic_load(&c->wake)) {
        int64_t left = deadline - kq_now_ms();
        /* wait for the first message only; then take what is already there */
        int t = *n > 0 || left <= 0 ? 0 : left > KQ_POLL_SLICE_MS ? KQ_POLL_SLICE_MS : (int)left;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cl.rk, t);
        if (!m) {
            if (*n > 0 || kq_now_ms() >= deadline)
                break;
            continue;
        }
        if (m->err)
            kc_consumer_error(c, m);
        else
            msgs[(*n)++] = &kc_take(c, m)->pub;
        rd_kafka_message_destroy(m);
    }
    atomic_store(&c->wake, 0);
    if (*n == 0 && atomic_load(&c->cl.fatal)) {
        snprintf(errbuf, errlen, "kafka: the consumer hit a fatal error");
        return QUEUE_EBROKER;
    }
    return QUEUE_OK;
}

static int kq_consumer_ack(void *impl, queue_msg *qm, char *errbuf, size_t errlen)
{
    kq_consumer *c = impl;
    kq_msg *m = qm->priv;
    int rc = QUEUE_OK;
    pthread_mutex_lock(&c->mu);
    kq_part *p = kc_part(c, m->partition, false);
    int i = 0;
    if (p && p->assigned && p->gen == m->gen)
        for (; i < p->n_out && p->out[i] != m->offset; i++)
            ;
    if (!p || !p->assigned || p->gen != m->gen || i == p->n_out) {
        /* revoked since (the new owner reads it again) or acked twice */
        pthread_mutex_unlock(&c->mu);
        log_debug("kafka ack of a message no longer tracked", "group=%s id=%s", c->group, qm->id);
        return QUEUE_OK;
    }
    p->out[i] = p->out[--p->n_out];
    int64_t pos = p->next;
    for (int j = 0; j < p->n_out; j++)
        if (p->out[j] < pos)
            pos = p->out[j];
    if (pos > p->stored) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, c->topic, m->partition)->offset = pos;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->cl.rk, l);
        if (!err)
            err = l->elems[0].err;
        rd_kafka_topic_partition_list_destroy(l);
        if (!err) {
            p->stored = pos;
        } else if (err == RD_KAFKA_RESP_ERR__STATE) {
            log_debug("kafka offset not stored: partition no longer assigned", "group=%s id=%s",
                      c->group, qm->id);
        } else {
            snprintf(errbuf, errlen, "kafka: storing offset %lld of %s [%d]: %s", (long long)pos,
                     c->topic, (int)m->partition, rd_kafka_err2str(err));
            rc = kq_code(err);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int kq_consumer_dead_letter(void *impl, queue_msg *qm, const char *reason,
                                   const char **where, int *acked, char *errbuf, size_t errlen)
{
    kq_consumer *c = impl;
    kq_msg *m = qm->priv;
    char source[400];
    snprintf(source, sizeof source, "%s/%s", c->topic, qm->id);
    char *topic = mem_printf("%s%s", c->s.prefix, KQ_DEAD_LETTER);
    int rc = QUEUE_OK;

    pthread_mutex_lock(&c->dl_mu);
    if (!c->dl)
        rc = kq_producer_new(&c->s, c->group, &c->dl, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ready(c->dl, errbuf, errlen);
    if (!rc)
        rc = kq_producer_ensure(c->dl, topic, KQ_DEAD_LETTER, errbuf, errlen);
    if (!rc) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, KQ_HEADER_REASON, -1, reason ? reason : "", -1);
        rd_kafka_header_add(h, KQ_HEADER_SOURCE, -1, source, -1);
        rc = kq_producer_send(c->dl, topic, m->data, m->pub.len, h, errbuf, errlen);
        if (rc)
            rd_kafka_headers_destroy(h);
    }
    if (!rc)
        rc = kq_producer_flush(c->dl, KQ_DEAD_LETTER_TIMEOUT_MS, errbuf, errlen);
    pthread_mutex_unlock(&c->dl_mu);

    (void)acked;
    *where = c->dl_topic;
    mem_free(topic);
    return rc;
}

static void kq_consumer_wake(void *impl)
{
    kq_consumer *c = impl;
    atomic_store(&c->wake, 1);
    if (c->cq)
        rd_kafka_queue_yield(c->cq);
}

static void kq_msg_free(queue_msg *m)
{
    mem_free(m->priv); /* the kq_msg holds m and the payload */
}

static const char *const queue_kafka_schemes[] = {"kafka", NULL};

const queue__ops queue__kafka_ops = {
    .schemes = queue_kafka_schemes,
    .url_check = kq_url_check,
    .open = kq_open,
    .free = kq_free,
    .ensure_group = kq_ensure_group,
    .push = kq_push,
    .flush = kq_flush,
    .backlog = kq_backlog,
    .consumer_open = kq_consumer_open,
    .consumer_free = kq_consumer_free,
    .consumer_poll = kq_consumer_poll,
    .consumer_ack = kq_consumer_ack,
    .dead_letter = kq_consumer_dead_letter,
    .consumer_wake = kq_consumer_wake,
    .msg_free = kq_msg_free,
};

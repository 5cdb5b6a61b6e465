/* check_kafka — Kafka-specific checks of queue_kafka.c against the real broker
 * named by DAGQ_BROKER_URL (kafka://host:port); exits 2 when it is unset.
 * The broker-neutral contract is tests/broker/check_queue.c; this file checks
 * what only Kafka has: topics and their partition counts, librdkafka
 * properties from DAGQ_KAFKA_* and --kafka-conf, pausing past
 * max.poll.interval.ms, a worker joining a busy group, offsets committed only
 * up to the lowest unacked message, dead letters with their reason header.
 *
 * The broker restart check runs only when DAGQ_CHECK_KAFKA_SYNC_DIR names a
 * folder in which a runner (tests/kafka_restart_check.sh) and this program
 * hand over: the check writes `ready`, the runner kills the broker and writes
 * `killed`, the check writes `down-checked`, the runner starts the broker
 * again and writes `restarted`.
 *
 * DAGQ_CHECK_KAFKA_ONLY=name runs one check. Every name is unique to this run
 * (pid and time), so runs may share a broker. One line per check, then
 * "N passed, N failed"; exit 1 when a check failed. This program includes
 * librdkafka itself to look at the broker from outside (metadata, group
 * descriptions, the dead-letter topic). */
#include "log.h"
#include "queue.h"

#include <librdkafka/rdkafka.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *url;
static char uniq[64];
static int n_passed, n_failed;

/* ---- harness ---- */

static char why[1024];

#define FAILIF(cond, ...)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            snprintf(why, sizeof why, __VA_ARGS__);                                                \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
}

static void run(const char *name, int (*fn)(void))
{
    const char *only = getenv("DAGQ_CHECK_KAFKA_ONLY");
    if (only && *only && strcmp(only, name))
        return;
    why[0] = '\0';
    int t0 = (int)time(NULL);
    int rc = fn();
    int secs = (int)time(NULL) - t0;
    if (rc)
        n_passed++;
    else
        n_failed++;
    printf("%s %s (%d s)%s%s\n", rc ? "ok  " : "FAIL", name, secs, why[0] ? ": " : "", why);
    fflush(stdout);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static queue_conf conf_base(void)
{
    queue_conf c;
    memset(&c, 0, sizeof c);
    c.broker_url = url;
    c.client_name = "check_kafka";
    return c;
}

static void group_name(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s-%s", uniq, what);
}

/* Pushes n payloads "tag:i" (i from first) and flushes. */
static int push_n(queue *q, const char *group, const char *tag, int first, int n, char *err,
                  size_t errlen)
{
    for (int i = first; i < first + n; i++) {
        char p[128];
        int len = snprintf(p, sizeof p, "%s:%d", tag, i);
        int rc = queue_push(q, group, p, (size_t)len, err, errlen);
        if (rc)
            return rc;
    }
    return queue_flush(q, 15000, err, errlen);
}

/* Per-payload receive counts for payloads "tag:i", 0 <= i < n. */
typedef struct tally {
    const char *tag;
    int n;
    int *seen;
    int distinct, dups, foreign;
} tally;

static void tally_init(tally *t, const char *tag, int n)
{
    t->tag = tag;
    t->n = n;
    t->seen = calloc((size_t)n, sizeof *t->seen);
    t->distinct = t->dups = t->foreign = 0;
}

static void tally_add(tally *t, const queue_msg *m)
{
    size_t tl = strlen(t->tag);
    int i = -1;
    if (m->len > tl + 1 && !memcmp(m->data, t->tag, tl) && ((const char *)m->data)[tl] == ':') {
        char num[32];
        size_t nl = m->len - tl - 1 < sizeof num - 1 ? m->len - tl - 1 : sizeof num - 1;
        memcpy(num, (const char *)m->data + tl + 1, nl);
        num[nl] = '\0';
        i = atoi(num);
    }
    if (i < 0 || i >= t->n) {
        t->foreign++;
        return;
    }
    if (t->seen[i]++)
        t->dups++;
    else
        t->distinct++;
}

/* Polls c (max per call) for up to ms, acking and tallying every message;
 * stops early once t has `want` distinct payloads. Returns the count. */
static int drain(queue_consumer *c, tally *t, int max, int ms, int want)
{
    queue_msg *msgs[64];
    char err[512];
    int got = 0;
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline && (want <= 0 || t->distinct < want)) {
        int n = 0;
        int rc = queue_consumer_poll(c, max, 200, msgs, &n, err, sizeof err);
        if (rc)
            fprintf(stderr, "poll: %s\n", err);
        for (int i = 0; i < n; i++) {
            tally_add(t, msgs[i]);
            if (queue_consumer_ack(c, msgs[i], err, sizeof err))
                fprintf(stderr, "ack: %s\n", err);
            queue_msg_free(msgs[i]);
        }
        got += n;
    }
    return got;
}

/* ---- looking at the broker from outside ---- */

static rd_kafka_t *raw_new(rd_kafka_type_t type, const char *group)
{
    char es[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", url + strlen("kafka://"), es, sizeof es);
    rd_kafka_conf_set(conf, "log_level", "3", es, sizeof es);
    if (group) {
        rd_kafka_conf_set(conf, "group.id", group, es, sizeof es);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", es, sizeof es);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, es, sizeof es);
    if (!rk) {
        fprintf(stderr, "rd_kafka_new: %s\n", es);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partition count of topic, -1 if unknown. */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;
    if (!rd_kafka_metadata(rk, 0, rkt, &md, 10000)) {
        if (md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

typedef struct member {
    char consumer_id[256];
    char client_id[256];
    int partitions;
} member;

/* Members of consumer group gid (at most max); -1 on error. */
static int describe_group(rd_kafka_t *rk, const char *gid, member *out, int max)
{
    char es[256];
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_AdminOptions_set_request_timeout(opts, 10000, es, sizeof es);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    const char *groups[] = {gid};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int n = -1;
    if (ev && !rd_kafka_event_error(ev)) {
        size_t cnt = 0;
        const rd_kafka_ConsumerGroupDescription_t **g =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
        if (cnt == 1 && !rd_kafka_ConsumerGroupDescription_error(g[0])) {
            size_t m = rd_kafka_ConsumerGroupDescription_member_count(g[0]);
            n = 0;
            for (size_t i = 0; i < m && n < max; i++, n++) {
                const rd_kafka_MemberDescription_t *md =
                    rd_kafka_ConsumerGroupDescription_member(g[0], i);
                snprintf(out[n].consumer_id, sizeof out[n].consumer_id, "%s",
                         rd_kafka_MemberDescription_consumer_id(md));
                snprintf(out[n].client_id, sizeof out[n].client_id, "%s",
                         rd_kafka_MemberDescription_client_id(md));
                const rd_kafka_MemberAssignment_t *a = rd_kafka_MemberDescription_assignment(md);
                const rd_kafka_topic_partition_list_t *pl =
                    a ? rd_kafka_MemberAssignment_partitions(a) : NULL;
                out[n].partitions = pl ? pl->cnt : 0;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    return n;
}

/* ---- checks ---- */

static int check_url(void)
{
    static const char *const good[] = {"kafka://127.0.0.1:9092", "kafka://a:1,b:2,c:65535",
                                       "kafka://[::1]:9092", "kafka://broker-1.example:9093/"};
    static const char *const bad[] = {
        "kafka://",           "kafka://host", "kafka://host:", "kafka://host:0",
        "kafka://host:99999", "kafka://a:1,", "kafka://u@h:1", "kafka://h:1/topic",
        "kafka://h:x1",       "kafka://:9092"};
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        FAILIF(queue_url_check(good[i], err, sizeof err) != QUEUE_OK, "%s rejected: %s", good[i],
               err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        FAILIF(queue_url_check(bad[i], err, sizeof err) != QUEUE_EINVAL, "%s accepted", bad[i]);
        FAILIF(!strstr(err, bad[i]) || !strstr(err, "host:port"), "%s: unclear error \"%s\"",
               bad[i], err);
    }
    note("e.g. %s", err);
    return 1;
fail:
    return 0;
}

static int check_topic_partitions(void)
{
    char g[128], topic[160], err[512];
    group_name(g, sizeof g, "parts");
    snprintf(topic, sizeof topic, "dagq.%s", g);
    queue_conf conf = conf_base();
    conf.kafka_partitions = 3;
    queue *q = NULL, *q2 = NULL;
    rd_kafka_t *rk = raw_new(RD_KAFKA_PRODUCER, NULL);
    int ok = 0;
    FAILIF(!rk, "raw client");
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_ensure_group(q, g, err, sizeof err), "ensure_group: %s", err);
    FAILIF(queue_ensure_group(q, g, err, sizeof err), "second ensure_group: %s", err);
    int n = topic_partitions(rk, topic);
    FAILIF(n != 3, "topic %s has %d partitions, want 3", topic, n);
    /* an existing topic is left as it is */
    conf.kafka_partitions = 5;
    FAILIF(queue_open(&conf, &q2, err, sizeof err), "open: %s", err);
    FAILIF(queue_ensure_group(q2, g, err, sizeof err), "ensure_group again: %s", err);
    n = topic_partitions(rk, topic);
    FAILIF(n != 3, "existing topic changed to %d partitions", n);
    /* names Kafka cannot hold, and the reserved dead-letter group */
    FAILIF(queue_ensure_group(q, "bad name!", err, sizeof err) != QUEUE_EINVAL,
           "\"bad name!\" accepted");
    FAILIF(queue_ensure_group(q, "dead-letter", err, sizeof err) != QUEUE_EINVAL,
           "group \"dead-letter\" accepted");
    /* the default is 6; the prefix is configurable */
    queue_conf d = conf_base();
    d.kafka_topic_prefix = "ck-prefix.";
    queue *q3 = NULL;
    group_name(g, sizeof g, "partsdef");
    snprintf(topic, sizeof topic, "ck-prefix.%s", g);
    FAILIF(queue_open(&d, &q3, err, sizeof err), "open: %s", err);
    int rc = queue_ensure_group(q3, g, err, sizeof err);
    queue_free(q3);
    FAILIF(rc, "ensure_group: %s", err);
    n = topic_partitions(rk, topic);
    FAILIF(n != 6, "topic %s: default partition count %d, want 6", topic, n);
    note("3 as configured, 6 by default, prefix as configured, existing topic untouched");
    ok = 1;
fail:
    queue_free(q);
    queue_free(q2);
    if (rk)
        rd_kafka_destroy(rk);
    return ok;
}

static int check_property_errors(void)
{
    char err[512];
    queue_conf conf = conf_base();
    queue *q = NULL;
    queue_consumer *c = NULL;
    int ok = 0;

    setenv("DAGQ_KAFKA_SOCKET_TIMEOUT_MS", "not-a-number", 1);
    int rc = queue_open(&conf, &q, err, sizeof err);
    FAILIF(rc != QUEUE_EINVAL, "bad DAGQ_KAFKA_SOCKET_TIMEOUT_MS: open returned %d", rc);
    FAILIF(!strstr(err, "socket.timeout.ms") || !strstr(err, "DAGQ_KAFKA_SOCKET_TIMEOUT_MS"),
           "error does not name the property and variable: %s", err);
    rc = queue_consumer_open(&conf, "x", &c, err, sizeof err);
    FAILIF(rc != QUEUE_EINVAL, "bad env property: consumer_open returned %d", rc);
    unsetenv("DAGQ_KAFKA_SOCKET_TIMEOUT_MS");

    setenv("DAGQ_KAFKA_NO_SUCH_PROPERTY", "1", 1);
    rc = queue_open(&conf, &q, err, sizeof err);
    unsetenv("DAGQ_KAFKA_NO_SUCH_PROPERTY");
    FAILIF(rc != QUEUE_EINVAL || !strstr(err, "no.such.property"),
           "unknown env property: rc=%d err=%s", rc, err);

    char *props[] = {"security.protocol=carrier-pigeon"};
    conf.kafka_props = props;
    conf.n_kafka_props = 1;
    rc = queue_open(&conf, &q, err, sizeof err);
    FAILIF(rc != QUEUE_EINVAL || !strstr(err, "security.protocol") || !strstr(err, "--kafka-conf"),
           "bad --kafka-conf: rc=%d err=%s", rc, err);
    char *props2[] = {"no-equals-sign"};
    conf.kafka_props = props2;
    rc = queue_open(&conf, &q, err, sizeof err);
    FAILIF(rc != QUEUE_EINVAL, "--kafka-conf without '=': rc=%d", rc);
    conf.kafka_props = NULL;
    conf.n_kafka_props = 0;

    /* dagq's own DAGQ_KAFKA_* options are not librdkafka properties */
    setenv("DAGQ_KAFKA_PARTITIONS", "4", 1);
    setenv("DAGQ_KAFKA_TOPIC_PREFIX", "x.", 1);
    setenv("DAGQ_KAFKA_CONF", "a=b", 1);
    setenv("DAGQ_KAFKA_REPLICATION", "1", 1);
    rc = queue_open(&conf, &q, err, sizeof err);
    unsetenv("DAGQ_KAFKA_PARTITIONS");
    unsetenv("DAGQ_KAFKA_TOPIC_PREFIX");
    unsetenv("DAGQ_KAFKA_CONF");
    unsetenv("DAGQ_KAFKA_REPLICATION");
    FAILIF(rc, "DAGQ_KAFKA_PARTITIONS etc. taken as properties: %s", err);
    queue_free(q);
    q = NULL;
    conf.broker_url = "kafka://nohost";
    rc = queue_open(&conf, &q, err, sizeof err);
    FAILIF(rc != QUEUE_EINVAL, "bad URL: open returned %d", rc);
    note("bad DAGQ_KAFKA_* and --kafka-conf properties are QUEUE_EINVAL naming them");
    ok = 1;
fail:
    unsetenv("DAGQ_KAFKA_SOCKET_TIMEOUT_MS");
    queue_free(q);
    queue_consumer_free(c);
    return ok;
}

static int check_property_applied(void)
{
    char g[128], gid[160], err[512];
    group_name(g, sizeof g, "props");
    snprintf(gid, sizeof gid, "dagq.%s", g);
    queue_conf conf = conf_base();
    queue_consumer *c1 = NULL, *c2 = NULL;
    rd_kafka_t *rk = raw_new(RD_KAFKA_PRODUCER, NULL);
    member m[4];
    int ok = 0;
    FAILIF(!rk, "raw client");
    char env_id[100], conf_id[100];
    snprintf(env_id, sizeof env_id, "env-%s", uniq);
    snprintf(conf_id, sizeof conf_id, "conf-%s", uniq);
    setenv("DAGQ_KAFKA_CLIENT_ID", env_id, 1);
    int rc = queue_consumer_open(&conf, g, &c1, err, sizeof err);
    FAILIF(rc, "consumer_open: %s", err);
    /* --kafka-conf wins over the environment */
    char prop[128];
    snprintf(prop, sizeof prop, "client.id=%s", conf_id);
    char *props[] = {prop};
    conf.kafka_props = props;
    conf.n_kafka_props = 1;
    rc = queue_consumer_open(&conf, g, &c2, err, sizeof err);
    unsetenv("DAGQ_KAFKA_CLIENT_ID");
    FAILIF(rc, "consumer_open: %s", err);
    int n = 0, found_env = 0, found_conf = 0;
    int64_t deadline = now_ms() + 20000;
    tally t;
    tally_init(&t, "none", 1);
    while (now_ms() < deadline && !(found_env && found_conf)) {
        drain(c1, &t, 1, 200, 0);
        drain(c2, &t, 1, 200, 0);
        n = describe_group(rk, gid, m, 4);
        found_env = found_conf = 0;
        for (int i = 0; i < n; i++) {
            found_env |= !strcmp(m[i].client_id, env_id);
            found_conf |= !strcmp(m[i].client_id, conf_id);
        }
    }
    free(t.seen);
    FAILIF(!found_env, "no member with client.id %s from DAGQ_KAFKA_CLIENT_ID (%d members)", env_id,
           n);
    FAILIF(!found_conf, "no member with client.id %s from --kafka-conf (%d members)", conf_id, n);
    note("client.id from DAGQ_KAFKA_CLIENT_ID and (winning) --kafka-conf seen by the broker");
    ok = 1;
fail:
    unsetenv("DAGQ_KAFKA_CLIENT_ID");
    queue_consumer_free(c1);
    queue_consumer_free(c2);
    if (rk)
        rd_kafka_destroy(rk);
    return ok;
}

/* The member that consumes g, when it is alone and has all its partitions. */
static int sole_member(rd_kafka_t *rk, const char *gid, int partitions, member *out)
{
    member m[4];
    int n = describe_group(rk, gid, m, 4);
    if (n != 1 || m[0].partitions != partitions)
        return 0;
    *out = m[0];
    return 1;
}

#define PAUSE_TOTAL 1300 /* past the stash at which partitions are paused */

static int check_pause(void)
{
    char g[128], gid[160], err[512];
    group_name(g, sizeof g, "pause");
    snprintf(gid, sizeof gid, "dagq.%s", g);
    queue_conf conf = conf_base();
    char *props[] = {"max.poll.interval.ms=6000", "session.timeout.ms=6000"};
    conf.kafka_props = props;
    conf.n_kafka_props = 2;
    queue *q = NULL;
    queue_consumer *c = NULL;
    rd_kafka_t *rk = raw_new(RD_KAFKA_PRODUCER, NULL);
    tally t;
    tally_init(&t, "pause", PAUSE_TOTAL);
    queue_msg *held[2] = {NULL, NULL};
    queue_msg *msgs[64];
    member before, after;
    int ok = 0, n = 0;
    FAILIF(!rk, "raw client");
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    FAILIF(push_n(q, g, "pause", 0, 20, err, sizeof err), "push: %s", err);
    /* take two and hold them unacked across the pause, as running tasks */
    int64_t deadline = now_ms() + 20000;
    int nheld = 0;
    while (nheld < 2 && now_ms() < deadline) {
        FAILIF(queue_consumer_poll(c, 2 - nheld, 500, msgs, &n, err, sizeof err), "poll: %s", err);
        for (int i = 0; i < n; i++)
            held[nheld++] = msgs[i];
    }
    FAILIF(nheld < 2, "got %d messages in 20 s", nheld);
    FAILIF(!sole_member(rk, gid, 6, &before), "the consumer is not the group's sole member");

    /* no free slot: poll(max=0) for 9 s, past max.poll.interval.ms=6000 */
    deadline = now_ms() + 9000;
    bool pushed = false;
    while (now_ms() < deadline) {
        n = -1;
        int rc = queue_consumer_poll(c, 0, 500, msgs, &n, err, sizeof err);
        FAILIF(rc || n != 0, "poll(max=0): rc=%d n=%d %s", rc, n, err);
        if (!pushed && now_ms() > deadline - 6000) {
            /* more than the consumer stashes before it pauses its partitions
             * (KQ_STASH_HIGH, 1024, in queue_kafka.c) */
            FAILIF(push_n(q, g, "pause", 20, PAUSE_TOTAL - 20, err, sizeof err), "push: %s", err);
            pushed = true;
        }
    }
    FAILIF(!sole_member(rk, gid, 6, &after), "after the pause the consumer is not the sole member");
    FAILIF(strcmp(before.consumer_id, after.consumer_id),
           "the member was replaced during the pause: %s -> %s", before.consumer_id,
           after.consumer_id);
    for (int i = 0; i < 2; i++) {
        tally_add(&t, held[i]);
        FAILIF(queue_consumer_ack(c, held[i], err, sizeof err), "ack: %s", err);
        queue_msg_free(held[i]);
        held[i] = NULL;
    }
    drain(c, &t, 64, 30000, PAUSE_TOTAL);
    FAILIF(t.distinct != PAUSE_TOTAL, "after resuming got %d of %d messages", t.distinct,
           PAUSE_TOTAL);
    drain(c, &t, 8, 1500, 0);
    FAILIF(t.dups || t.foreign, "%d duplicates, %d foreign", t.dups, t.foreign);
    note("busy 9 s > max.poll.interval.ms 6 s, member %.40s kept, %d/%d once", after.consumer_id,
         PAUSE_TOTAL, PAUSE_TOTAL);
    ok = 1;
fail:
    for (int i = 0; i < 2; i++)
        queue_msg_free(held[i]);
    queue_consumer_free(c);
    queue_free(q);
    if (rk)
        rd_kafka_destroy(rk);
    free(t.seen);
    return ok;
}

static int check_join(void)
{
    char g[128], gid[160], err[512];
    group_name(g, sizeof g, "join");
    snprintf(gid, sizeof gid, "dagq.%s", g);
    queue_conf conf = conf_base();
    queue *q = NULL;
    queue_consumer *a = NULL, *b = NULL;
    rd_kafka_t *rk = raw_new(RD_KAFKA_PRODUCER, NULL);
    tally t;
    tally_init(&t, "join", 200);
    queue_msg *msgs[16];
    member m;
    int ok = 0, n = 0;
    FAILIF(!rk, "raw client");
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_consumer_open(&conf, g, &a, err, sizeof err), "consumer_open a: %s", err);
    int64_t deadline = now_ms() + 20000;
    while (!sole_member(rk, gid, 6, &m) && now_ms() < deadline)
        queue_consumer_poll(a, 0, 300, msgs, &n, err, sizeof err);
    FAILIF(now_ms() >= deadline, "a never held all 6 partitions");
    /* a is busy (paused) and holds every partition; work waits */
    FAILIF(push_n(q, g, "join", 0, 200, err, sizeof err), "push: %s", err);
    queue_consumer_poll(a, 0, 300, msgs, &n, err, sizeof err);

    int64_t t0 = now_ms();
    FAILIF(queue_consumer_open(&conf, g, &b, err, sizeof err), "consumer_open b: %s", err);
    int64_t first = -1;
    deadline = t0 + 20000;
    while (first < 0 && now_ms() < deadline) {
        queue_consumer_poll(a, 0, 100, msgs, &n, err, sizeof err);
        n = 0;
        queue_consumer_poll(b, 16, 100, msgs, &n, err, sizeof err);
        if (n > 0)
            first = now_ms() - t0;
        for (int i = 0; i < n; i++) {
            tally_add(&t, msgs[i]);
            queue_consumer_ack(b, msgs[i], err, sizeof err);
            queue_msg_free(msgs[i]);
        }
    }
    FAILIF(first < 0, "the new consumer got no message within 20 s while the other was paused");
    int by_b_early = t.distinct;
    /* b takes all of its partitions' share while a stays paused */
    for (int i = 0; i < 10; i++) {
        queue_consumer_poll(a, 0, 100, msgs, &n, err, sizeof err);
        drain(b, &t, 16, 100, 0);
    }
    int by_b = t.distinct;
    /* a resumes: everything arrives exactly once */
    deadline = now_ms() + 20000;
    while (t.distinct < 200 && now_ms() < deadline) {
        drain(a, &t, 16, 200, 200);
        drain(b, &t, 16, 200, 200);
    }
    drain(a, &t, 16, 500, 0);
    drain(b, &t, 16, 500, 0);
    FAILIF(t.distinct != 200 || t.dups || t.foreign, "got %d of 200, %d duplicates, %d foreign",
           t.distinct, t.dups, t.foreign);
    FAILIF(by_b == 0 || by_b == 200, "b took %d of 200 while a was busy", by_b);
    note("b's first message %.1f s after it opened (%d at once, %d of 200 while a was busy)",
         first / 1000.0, by_b_early, by_b);
    ok = 1;
fail:
    queue_consumer_free(a);
    queue_consumer_free(b);
    queue_free(q);
    if (rk)
        rd_kafka_destroy(rk);
    free(t.seen);
    return ok;
}

/* Offsets are committed only up to the lowest message not acked. */
static int check_ack_order(void)
{
    char g[128], err[512];
    group_name(g, sizeof g, "order");
    queue_conf conf = conf_base();
    conf.kafka_partitions = 1;
    queue *q = NULL;
    queue_consumer *c = NULL;
    queue_msg *got[3] = {NULL, NULL, NULL};
    queue_msg *msgs[3];
    int64_t backlog = -1;
    int ok = 0, n = 0;
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    FAILIF(push_n(q, g, "order", 0, 3, err, sizeof err), "push: %s", err);
    for (int round = 0; round < 2; round++) {
        int have = 0;
        int64_t deadline = now_ms() + 20000;
        while (have < 3 && now_ms() < deadline) {
            FAILIF(queue_consumer_poll(c, 3 - have, 500, msgs, &n, err, sizeof err), "poll: %s",
                   err);
            for (int i = 0; i < n; i++)
                got[have++] = msgs[i];
        }
        FAILIF(have != 3, "round %d: got %d of 3", round, have);
        for (int i = 0; i < 3; i++) {
            char want[32];
            snprintf(want, sizeof want, "order:%d", i);
            FAILIF(got[i]->len != strlen(want) || memcmp(got[i]->data, want, got[i]->len),
                   "round %d: message %d is not %s", round, i, want);
        }
        if (round == 0) {
            /* the later two are done, the first still running: then a crash */
            FAILIF(queue_consumer_ack(c, got[2], err, sizeof err), "ack: %s", err);
            FAILIF(queue_consumer_ack(c, got[1], err, sizeof err), "ack: %s", err);
        } else {
            for (int i = 0; i < 3; i++)
                FAILIF(queue_consumer_ack(c, got[i], err, sizeof err), "ack: %s", err);
        }
        sleep_ms(1000); /* auto-commit */
        queue_consumer_free(c);
        c = NULL;
        for (int i = 0; i < 3; i++) {
            queue_msg_free(got[i]);
            got[i] = NULL;
        }
        FAILIF(queue_backlog(q, g, &backlog, err, sizeof err), "backlog: %s", err);
        FAILIF(backlog != (round == 0 ? 3 : 0), "round %d: backlog %lld, want %d", round,
               (long long)backlog, round == 0 ? 3 : 0);
        if (round == 0)
            FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    }
    note("acks of 2,1 before 0 commit nothing; all three come again; then backlog 0");
    ok = 1;
fail:
    for (int i = 0; i < 3; i++)
        queue_msg_free(got[i]);
    queue_consumer_free(c);
    queue_free(q);
    return ok;
}

static int check_dead_letter(void)
{
    char g[128], err[512], payload[128], reason[128];
    group_name(g, sizeof g, "dl");
    snprintf(payload, sizeof payload, "\x81\xa1v\xcc\xff not msgpack %s", uniq);
    snprintf(reason, sizeof reason, "unknown message version 255 (%s)", uniq);
    queue_conf conf = conf_base();
    queue *q = NULL;
    queue_consumer *c = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    queue_msg *msgs[1];
    int ok = 0, n = 0;
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    FAILIF(queue_push(q, g, payload, strlen(payload), err, sizeof err) ||
               queue_flush(q, 15000, err, sizeof err),
           "push: %s", err);
    int64_t deadline = now_ms() + 20000;
    while (n == 0 && now_ms() < deadline)
        FAILIF(queue_consumer_poll(c, 1, 500, msgs, &n, err, sizeof err), "poll: %s", err);
    FAILIF(n != 1, "no message");
    int rc = queue_consumer_dead_letter(c, msgs[0], reason, err, sizeof err);
    queue_msg_free(msgs[0]);
    FAILIF(rc, "dead_letter: %s", err);

    /* read dagq.dead-letter from the start, looking for it */
    rk = raw_new(RD_KAFKA_CONSUMER, "check-kafka-dl-reader");
    FAILIF(!rk, "raw consumer");
    rd_kafka_poll_set_consumer(rk);
    int np = topic_partitions(rk, "dagq.dead-letter");
    FAILIF(np < 1, "no topic dagq.dead-letter");
    parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, "dagq.dead-letter", i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    FAILIF(rd_kafka_assign(rk, parts), "assign");
    bool found = false;
    char got_reason[256] = "";
    deadline = now_ms() + 15000;
    while (!found && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && m->len == strlen(payload) && !memcmp(m->payload, payload, m->len)) {
            found = true;
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vl = 0;
            if (!rd_kafka_message_headers(m, &h) &&
                !rd_kafka_header_get_last(h, "dagq-reason", &v, &vl))
                snprintf(got_reason, sizeof got_reason, "%.*s", (int)vl, (const char *)v);
        }
        rd_kafka_message_destroy(m);
    }
    FAILIF(!found, "the message is not in dagq.dead-letter");
    FAILIF(strcmp(got_reason, reason), "dagq-reason header \"%s\", want \"%s\"", got_reason,
           reason);
    /* and it was acked: the group has nothing left */
    sleep_ms(1000);
    queue_consumer_free(c);
    c = NULL;
    int64_t backlog = -1;
    FAILIF(queue_backlog(q, g, &backlog, err, sizeof err), "backlog: %s", err);
    FAILIF(backlog != 0, "backlog %lld after dead-lettering", (long long)backlog);
    note("payload and dagq-reason header in dagq.dead-letter, source acked");
    ok = 1;
fail:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    queue_consumer_free(c);
    queue_free(q);
    return ok;
}

static int check_backlog(void)
{
    char g[128], err[512];
    group_name(g, sizeof g, "backlog");
    queue_conf conf = conf_base();
    conf.kafka_partitions = 3;
    queue *q = NULL;
    queue_consumer *c = NULL;
    int64_t b = -1;
    tally t;
    tally_init(&t, "bl", 7);
    int ok = 0;
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_backlog(q, g, &b, err, sizeof err) || b != 0,
           "backlog of a group without a topic: %lld %s", (long long)b, err);
    FAILIF(queue_ensure_group(q, g, err, sizeof err), "ensure: %s", err);
    FAILIF(push_n(q, g, "bl", 0, 7, err, sizeof err), "push: %s", err);
    FAILIF(queue_backlog(q, g, &b, err, sizeof err) || b != 7, "backlog %lld, want 7 %s",
           (long long)b, err);
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    drain(c, &t, 4, 20000, 7);
    FAILIF(t.distinct != 7, "consumed %d of 7", t.distinct);
    int64_t deadline = now_ms() + 5000;
    do {
        sleep_ms(200);
        FAILIF(queue_backlog(q, g, &b, err, sizeof err), "backlog: %s", err);
    } while (b != 0 && now_ms() < deadline);
    FAILIF(b != 0, "backlog %lld after acking everything", (long long)b);
    note("0 without topic, 7 after pushing 7, 0 after acks");
    ok = 1;
fail:
    queue_consumer_free(c);
    queue_free(q);
    free(t.seen);
    return ok;
}

typedef struct waker {
    queue_consumer *c;
    int64_t returned_after;
    int n;
} waker;

static void *wake_thread(void *arg)
{
    waker *w = arg;
    queue_msg *msgs[4];
    char err[256];
    int64_t t0 = now_ms();
    queue_consumer_poll(w->c, 4, 20000, msgs, &w->n, err, sizeof err);
    w->returned_after = now_ms() - t0;
    for (int i = 0; i < w->n; i++)
        queue_msg_free(msgs[i]);
    return NULL;
}

static int check_wake(void)
{
    char g[128], err[512];
    group_name(g, sizeof g, "wake");
    queue_conf conf = conf_base();
    queue_consumer *c = NULL;
    int ok = 0;
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    waker w = {c, -1, 0};
    pthread_t th;
    pthread_create(&th, NULL, wake_thread, &w);
    sleep_ms(1500);
    queue_consumer_wake(c);
    pthread_join(th, NULL);
    FAILIF(w.returned_after < 0 || w.returned_after > 2500,
           "a 20 s poll returned %lld ms after it started (woken at 1500)",
           (long long)w.returned_after);
    note("woken poll returned after %lld ms (wake at 1500)", (long long)w.returned_after);
    ok = 1;
fail:
    queue_consumer_free(c);
    return ok;
}

static int sync_wait(const char *dir, const char *name, int secs)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    for (int i = 0; i < secs * 10; i++) {
        if (!stat(path, &st))
            return 1;
        sleep_ms(100);
    }
    return 0;
}

static void sync_say(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

static int check_broker_restart(void)
{
    const char *dir = getenv("DAGQ_CHECK_KAFKA_SYNC_DIR");
    char g[128], err[512];
    group_name(g, sizeof g, "restart");
    queue_conf conf = conf_base();
    queue *q = NULL;
    queue_consumer *c = NULL;
    tally t;
    tally_init(&t, "rs", 30);
    int ok = 0, rc;
    FAILIF(queue_open(&conf, &q, err, sizeof err), "open: %s", err);
    FAILIF(queue_consumer_open(&conf, g, &c, err, sizeof err), "consumer_open: %s", err);
    FAILIF(push_n(q, g, "rs", 0, 20, err, sizeof err), "push: %s", err);
    drain(c, &t, 1, 20000, 10); /* ten consumed and acked before the crash */
    FAILIF(t.distinct != 10, "consumed %d of the first 10", t.distinct);
    sleep_ms(1200); /* their offsets committed */

    sync_say(dir, "ready");
    FAILIF(!sync_wait(dir, "killed", 120), "the runner never killed the broker");
    for (int i = 20; i < 30; i++) {
        char p[32];
        int len = snprintf(p, sizeof p, "rs:%d", i);
        FAILIF(queue_push(q, g, p, (size_t)len, err, sizeof err), "push while down: %s", err);
    }
    rc = queue_flush(q, 1500, err, sizeof err);
    FAILIF(rc != QUEUE_ECONN, "flush while the broker is down returned %d (%s), want ECONN", rc,
           rc ? err : "ok");
    char down_err[512];
    snprintf(down_err, sizeof down_err, "%s", err);
    queue_msg *msgs[8];
    int n = 0;
    rc = queue_consumer_poll(c, 8, 1000, msgs, &n, err, sizeof err);
    FAILIF(rc != QUEUE_OK, "poll while the broker is down: %d %s", rc, err);
    for (int i = 0; i < n; i++) {
        tally_add(&t, msgs[i]);
        queue_consumer_ack(c, msgs[i], err, sizeof err);
        queue_msg_free(msgs[i]);
    }
    sync_say(dir, "down-checked");
    FAILIF(!sync_wait(dir, "restarted", 180), "the runner never restarted the broker");

    /* a failed flush dropped its batch: the caller pushes it again */
    rc = push_n(q, g, "rs", 20, 10, err, sizeof err);
    /* the broker may still be settling (QUEUE_ECONN), or the idempotent
     * producer lost its sequence to the broker's lost log and was re-created
     * (QUEUE_ECONN, as for a lost broker; QUEUE_EBROKER before): the caller pushes again */
    for (int again = 0; again < 3 && (rc == QUEUE_ECONN || rc == QUEUE_EBROKER); again++)
        rc = push_n(q, g, "rs", 20, 10, err, sizeof err);
    FAILIF(rc, "push after the restart: %s", err);
    drain(c, &t, 8, 60000, 30);
    drain(c, &t, 8, 1000, 0);
    FAILIF(t.distinct != 30 || t.foreign, "after the restart got %d of 30 (%d foreign)", t.distinct,
           t.foreign);
    note("flush while down: \"%.90s\"; 30/30 after restart, %d more than once", down_err, t.dups);
    ok = 1;
fail:
    queue_consumer_free(c);
    queue_free(q);
    free(t.seen);
    return ok;
}

int main(void)
{
    url = getenv("DAGQ_BROKER_URL");
    if (!url || strncmp(url, "kafka://", 8) != 0) {
        fprintf(stderr, "check_kafka: set DAGQ_BROKER_URL=kafka://host:port\n");
        return 2;
    }
    log_init("check_kafka");
    const char *lvl = getenv("DAGQ_LOG_LEVEL");
    log_set_level_name(lvl && *lvl ? lvl : "warn");
    snprintf(uniq, sizeof uniq, "ck%d-%lx", (int)getpid(), (unsigned long)time(NULL));
    setvbuf(stdout, NULL, _IOLBF, 0);

    run("url_check", check_url);
    run("property_errors", check_property_errors);
    run("topic_partitions", check_topic_partitions);
    run("property_applied", check_property_applied);
    run("backlog", check_backlog);
    run("wake", check_wake);
    run("ack_order", check_ack_order);
    run("dead_letter", check_dead_letter);
    run("pause_past_max_poll_interval", check_pause);
    run("join_busy_group", check_join);
    /* needs a runner that kills and restarts the broker on cue:
     * tests/kafka_restart_check.sh, which make test runs */
    const char *sync = getenv("DAGQ_CHECK_KAFKA_SYNC_DIR");
    if (sync && *sync)
        run("broker_restart", check_broker_restart);

    rd_kafka_wait_destroyed(10000);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

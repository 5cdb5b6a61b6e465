/* check_queue — conformance of a queue.h implementation, against the live
 * broker named by DAGQ_BROKER_URL (redis://... or kafka://...). Broker-neutral:
 * it uses queue.h only, so the same checks run against Redis and Kafka.
 *
 * Every run uses fresh worker groups (pid and time in the name), so runs
 * against the same broker do not see each other's messages. Prints one line
 * per check ("ok   name ..." or "FAIL name: ..."; details of a failure on
 * stderr) and ends with "N passed, N failed"; exits 1 on any failure, 2 when
 * DAGQ_BROKER_URL is unset.
 *
 * Environment:
 *   DAGQ_BROKER_URL       required
 *   DAGQ_CHECK_WARMUP_MS  extra wait before pushing to consumers that just
 *                         joined (default 1000; Kafka may want its group's
 *                         initial rebalance delay)
 *   DAGQ_CHECK_RESTART=<file>  run only the restart check, driven by the
 *                         runner: the check prints "restart now" on stdout
 *                         when it is ready and goes on pushing and polling
 *                         (~20 messages a second) with one producer and one
 *                         consumer; the runner kills and restarts the broker
 *                         (tests/lib.sh redis_restart), then creates <file>.
 *                         The check passes when the same producer and
 *                         consumer then work again (20 clean rounds), every
 *                         error they returned meanwhile was QUEUE_ECONN, and
 *                         every message whose flush succeeded was delivered
 *                         (at least once). For example:
 *
 *     source tests/lib.sh; trap t_cleanup EXIT; redis_start
 *     DAGQ_BROKER_URL=$REDIS_URL DAGQ_CHECK_RESTART=$T_ROOT/restarted \
 *         build/san/tests/check_queue >"$T_ROOT/restart.out" &
 *     pid=$!
 *     t_wait_for grep -q '^restart now' "$T_ROOT/restart.out"
 *     redis_restart && touch "$T_ROOT/restarted"
 *     wait $pid; rc=$?; cat "$T_ROOT/restart.out"; exit $rc
 */
#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N_MESSAGES 500
#define PAYLOAD_MAX 512
#define REDELIVERY_WAIT_MS 30000
#define SLACK_MS 1000 /* allowed lateness of a timed return (sanitizer builds, CI) */

static const char *broker_url;
static char scheme[16];
static char run_tag[64];
static int checks_passed, checks_failed;
static int cur_failed;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------ reporting */

static void check_begin(void)
{
    cur_failed = 0;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    cur_failed = 1;
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

#define EXPECT_RC(rc, want, err)                                                                   \
    EXPECT((rc) == (want), "%s:%d: got %d (%s), want %d (%s); errbuf: %s", __FILE__, __LINE__,     \
           (rc), queue_strerror(rc), (want), queue_strerror(want), (err))

static void check_end(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_end(const char *name, const char *fmt, ...)
{
    char detail[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    if (cur_failed)
        checks_failed++;
    else
        checks_passed++;
    printf("%s %s%s%s\n", cur_failed ? "FAIL" : "ok  ", name, detail[0] ? " " : "", detail);
    fflush(stdout);
}

/* --------------------------------------------------------------- helpers */

static void group_name(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s-%s", run_tag, what);
}

static queue_conf base_conf(const char *client)
{
    static char names[16][96];
    static int next;
    char *name = names[next++ % 16];
    snprintf(name, sizeof names[0], "%s-%s", run_tag, client);
    queue_conf conf = {0};
    conf.broker_url = broker_url;
    conf.client_name = name;
    conf.reclaim_idle_ms = 500; /* Redis: reclaim quickly; ignored by Kafka */
    conf.kafka_partitions = 2;
    conf.kafka_replication = 1;
    return conf;
}

/* "<tag>:<i>:" then binary bytes (NUL included), length varying with i. */
static size_t payload_make(int i, unsigned char *buf)
{
    int h = snprintf((char *)buf, PAYLOAD_MAX, "%s:%d:", run_tag, i);
    size_t len = (size_t)h + (size_t)(i * 7 % 300);
    for (size_t k = (size_t)h; k < len; k++)
        buf[k] = (unsigned char)((k * 31 + (size_t)i) & 0xff);
    return len;
}

/* The index of a payload made by payload_make, or -1 when it is not one
 * (wrong tag, or bytes changed). */
static int payload_index(const void *data, size_t len)
{
    size_t tl = strlen(run_tag);
    const char *p = data;
    if (!data || len < tl + 3 || memcmp(p, run_tag, tl) != 0 || p[tl] != ':')
        return -1;
    int i = 0;
    size_t k = tl + 1;
    if (k >= len || p[k] < '0' || p[k] > '9')
        return -1;
    while (k < len && p[k] >= '0' && p[k] <= '9' && i < 1000000)
        i = i * 10 + (p[k++] - '0');
    unsigned char want[PAYLOAD_MAX];
    size_t wl = payload_make(i, want);
    if (wl != len || memcmp(want, data, len) != 0)
        return -1;
    return i;
}

static int push_range(queue *q, const char *group, int from, int to, char *err, size_t errlen)
{
    unsigned char buf[PAYLOAD_MAX];
    for (int i = from; i < to; i++) {
        size_t len = payload_make(i, buf);
        int rc = queue_push(q, group, buf, len, err, errlen);
        if (rc)
            return rc;
    }
    return queue_flush(q, 10000, err, errlen);
}

/* Polls until `want` messages came or timeout_ms passed; returns how many,
 * filling msgs. Stops early on a poll error (stored in *rc). */
static int poll_some(queue_consumer *c, int want, int timeout_ms, queue_msg **msgs, int *rc,
                     char *err, size_t errlen)
{
    int got = 0;
    int64_t deadline = now_ms() + timeout_ms;
    *rc = 0;
    while (got < want && now_ms() < deadline) {
        int n = 0, left = (int)(deadline - now_ms());
        *rc = queue_consumer_poll(c, want - got, left < 1000 ? (left > 0 ? left : 1) : 1000,
                                  msgs + got, &n, err, errlen);
        got += n;
        if (*rc)
            break;
    }
    return got;
}

static int backlog_wait(queue *q, const char *group, int64_t want, int timeout_ms, int64_t *last,
                        char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    int rc;
    for (;;) {
        rc = queue_backlog(q, group, last, err, errlen);
        if ((rc == 0 && *last == want) || now_ms() >= deadline)
            return rc;
        sleep_ms(200);
    }
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int port = 0;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

/* ---------------------------------------------------------------- checks */

static void check_bad_url(void)
{
    check_begin();
    char err[512], url[128];
    queue *q = NULL;
    queue_consumer *c = NULL;
    queue_conf conf = base_conf("badurl");

    err[0] = '\0';
    int rc = queue_url_check("bogus://127.0.0.1:1", err, sizeof err);
    EXPECT_RC(rc, QUEUE_EINVAL, err);
    EXPECT(err[0], "no words for an unknown scheme");

    snprintf(url, sizeof url, "%s://", scheme);
    conf.broker_url = url;
    err[0] = '\0';
    rc = queue_open(&conf, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_EINVAL, err);
    EXPECT(q == NULL, "queue_open failed but returned a queue");
    EXPECT(err[0], "no words for \"%s\"", url);
    queue_free(q);
    q = NULL;

    snprintf(url, sizeof url, "%s://127.0.0.1:99999", scheme);
    err[0] = '\0';
    rc = queue_open(&conf, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_EINVAL, err);
    EXPECT(strstr(err, "99999"), "errbuf for \"%s\" should name the bad port: \"%s\"", url, err);
    queue_free(q);
    char err2[512] = "";
    rc = queue_url_check(url, err2, sizeof err2);
    EXPECT_RC(rc, QUEUE_EINVAL, err2);

    snprintf(url, sizeof url, "%s://127.0.0.1:notaport", scheme);
    err2[0] = '\0';
    rc = queue_consumer_open(&conf, "g", &c, err2, sizeof err2);
    EXPECT_RC(rc, QUEUE_EINVAL, err2);
    EXPECT(c == NULL && err2[0], "consumer_open(\"%s\") gave no words", url);
    queue_consumer_free(c);

    EXPECT(queue_url_check(broker_url, err2, sizeof err2) == QUEUE_OK,
           "the broker URL under test does not pass queue_url_check: %s", err2);
    check_end("bad_url_is_einval", "(errbuf: %s)", err);
}

static void check_refused(void)
{
    check_begin();
    char err[512] = "", cerr[512] = "", url[128], group[128];
    int port = free_port();
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", scheme, port);
    group_name(group, sizeof group, "refused");
    queue_conf conf = base_conf("refused");
    conf.broker_url = url;
    int64_t t0 = now_ms();

    /* open may connect at once (Redis) or lazily (Kafka): the error must come
     * by the first flush */
    queue *q = NULL;
    int rc = queue_open(&conf, &q, err, sizeof err);
    if (rc == 0)
        rc = queue_push(q, group, "x", 1, err, sizeof err);
    if (rc == 0)
        rc = queue_flush(q, 3000, err, sizeof err);
    EXPECT_RC(rc, QUEUE_ECONN, err);
    queue_free(q);

    queue_consumer *c = NULL;
    rc = queue_consumer_open(&conf, group, &c, cerr, sizeof cerr);
    int64_t deadline = now_ms() + 10000;
    while (rc == 0 && now_ms() < deadline) {
        queue_msg *m[1];
        int n = 0;
        rc = queue_consumer_poll(c, 1, 1000, m, &n, cerr, sizeof cerr);
        for (int i = 0; i < n; i++)
            queue_msg_free(m[i]);
    }
    EXPECT_RC(rc, QUEUE_ECONN, cerr);
    queue_consumer_free(c);
    check_end("connection_refused_is_econn", "(%lld ms; errbuf: %s)", (long long)(now_ms() - t0),
              err);
}

typedef struct rt_shared {
    pthread_mutex_t mu;
    int seen[N_MESSAGES];
    int delivered, bad_payload, ack_failed, poll_failed;
    char first_err[256];
    atomic_int stop;
} rt_shared;

typedef struct rt_worker {
    queue_consumer *c;
    rt_shared *sh;
    int got;
    atomic_int polls;
} rt_worker;

static void *rt_run(void *arg)
{
    rt_worker *w = arg;
    rt_shared *sh = w->sh;
    char err[256];
    while (!atomic_load(&sh->stop)) {
        queue_msg *msgs[16];
        int n = 0;
        int rc = queue_consumer_poll(w->c, 16, 500, msgs, &n, err, sizeof err);
        atomic_fetch_add(&w->polls, 1);
        if (rc) {
            pthread_mutex_lock(&sh->mu);
            if (!sh->poll_failed++)
                snprintf(sh->first_err, sizeof sh->first_err, "poll: %.200s", err);
            pthread_mutex_unlock(&sh->mu);
            sleep_ms(100);
        }
        for (int i = 0; i < n; i++) {
            int idx = payload_index(msgs[i]->data, msgs[i]->len);
            int arc = queue_consumer_ack(w->c, msgs[i], err, sizeof err);
            pthread_mutex_lock(&sh->mu);
            if (idx < 0 || idx >= N_MESSAGES)
                sh->bad_payload++;
            else
                sh->seen[idx]++;
            sh->delivered++;
            if (arc && !sh->ack_failed++)
                snprintf(sh->first_err, sizeof sh->first_err, "ack: %.200s", err);
            pthread_mutex_unlock(&sh->mu);
            w->got++;
            queue_msg_free(msgs[i]);
        }
    }
    return NULL;
}

static int warmup_ms(void)
{
    const char *s = getenv("DAGQ_CHECK_WARMUP_MS");
    return s && *s ? atoi(s) : 1000;
}

static void check_two_consumers(void)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "pair");
    queue *q = NULL;
    queue_consumer *c[2] = {NULL, NULL};
    rt_shared *sh = calloc(1, sizeof *sh);
    rt_worker w[2];
    pthread_t th[2];
    int started = 0;
    int64_t took = 0;
    pthread_mutex_init(&sh->mu, NULL);

    queue_conf pc = base_conf("pair-producer");
    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    for (int i = 0; i < 2 && !rc; i++) {
        queue_conf cc = base_conf(i ? "pair-b" : "pair-a");
        rc = queue_consumer_open(&cc, group, &c[i], err, sizeof err);
        EXPECT_RC(rc, QUEUE_OK, err);
    }
    if (rc)
        goto out;
    for (int i = 0; i < 2; i++) {
        w[i].c = c[i];
        w[i].sh = sh;
        w[i].got = 0;
        atomic_init(&w[i].polls, 0);
        pthread_create(&th[i], NULL, rt_run, &w[i]);
        started++;
    }
    /* both consumers have polled (joined) before anything is pushed */
    int64_t deadline = now_ms() + 30000;
    while ((atomic_load(&w[0].polls) < 1 || atomic_load(&w[1].polls) < 1) && now_ms() < deadline)
        sleep_ms(20);
    sleep_ms(warmup_ms());

    int64_t t0 = now_ms();
    rc = push_range(q, group, 0, N_MESSAGES, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    deadline = now_ms() + 60000;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        int d = sh->delivered;
        pthread_mutex_unlock(&sh->mu);
        if (d >= N_MESSAGES || now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    took = now_ms() - t0;
    /* keep polling a while: a message delivered twice (e.g. an ack that did
     * not take, then a reclaim) shows up here */
    sleep_ms(2000);
out:
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < started; i++)
        queue_consumer_wake(c[i]);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    int missing = 0, dup = 0;
    for (int i = 0; i < N_MESSAGES; i++) {
        if (sh->seen[i] == 0)
            missing++;
        else if (sh->seen[i] > 1)
            dup++;
    }
    if (started == 2) {
        EXPECT(missing == 0, "%d of %d messages never delivered", missing, N_MESSAGES);
        EXPECT(dup == 0, "%d messages delivered more than once", dup);
        EXPECT(sh->bad_payload == 0, "%d payloads changed in transit", sh->bad_payload);
        EXPECT(sh->ack_failed == 0, "%d acks failed; first: %s", sh->ack_failed, sh->first_err);
        EXPECT(sh->poll_failed == 0, "%d polls failed; first: %s", sh->poll_failed, sh->first_err);
        EXPECT(sh->delivered == N_MESSAGES, "%d deliveries for %d messages", sh->delivered,
               N_MESSAGES);
    }
    for (int i = 0; i < 2; i++)
        queue_consumer_free(c[i]);
    queue_free(q);
    check_end("two_consumers_each_message_once", "(%d messages, consumer a %d, b %d, %lld ms)",
              N_MESSAGES, started == 2 ? w[0].got : 0, started == 2 ? w[1].got : 0,
              started == 2 ? (long long)took : 0LL);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

/* backlog, and poll with max == 0 */
static void check_backlog_and_pause(void)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "backlog");
    queue *q = NULL;
    queue_consumer *c = NULL;
    queue_msg *msgs[8];
    int64_t b = -1, pause_ms = -1;
    queue_conf pc = base_conf("backlog-producer"), cc = base_conf("backlog-consumer");

    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = queue_backlog(q, group, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 0, "backlog of an empty group: rc %d, %lld; %s", rc, (long long)b, err);
    rc = queue_consumer_open(&cc, group, &c, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = push_range(q, group, 0, 7, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = backlog_wait(q, group, 7, 15000, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 7, "backlog after 7 pushed: rc %d, %lld; %s", rc, (long long)b, err);

    /* max == 0 takes nothing and returns within its timeout */
    for (int i = 0; i < 3; i++) {
        int n = -1;
        int64_t t0 = now_ms();
        rc = queue_consumer_poll(c, 0, 400, msgs, &n, err, sizeof err);
        int64_t el = now_ms() - t0;
        if (el > pause_ms)
            pause_ms = el;
        EXPECT(rc == 0 && n == 0, "poll max=0: rc %d, n %d; %s", rc, n, err);
        EXPECT(el <= 400 + SLACK_MS, "poll max=0 timeout 400 ms took %lld ms", (long long)el);
    }
    rc = queue_backlog(q, group, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 7, "backlog after max=0 polls: rc %d, %lld (something was taken)", rc,
           (long long)b);

    /* the next poll with max >= 1 resumes: take 3 */
    int got = poll_some(c, 3, 30000, msgs, &rc, err, sizeof err);
    EXPECT(got == 3, "took %d of 3 after max=0 (rc %d: %s)", got, rc, err);
    for (int i = 0; i < got; i++) {
        int arc = queue_consumer_ack(c, msgs[i], err, sizeof err);
        EXPECT_RC(arc, QUEUE_OK, err);
        queue_msg_free(msgs[i]);
    }
    rc = backlog_wait(q, group, 4, 15000, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 4, "backlog after 3 of 7 taken: rc %d, %lld; %s", rc, (long long)b, err);
    got = poll_some(c, 4, 30000, msgs, &rc, err, sizeof err);
    EXPECT(got == 4, "took %d of the last 4 (rc %d: %s)", got, rc, err);
    for (int i = 0; i < got; i++) {
        int arc = queue_consumer_ack(c, msgs[i], err, sizeof err);
        EXPECT_RC(arc, QUEUE_OK, err);
        queue_msg_free(msgs[i]);
    }
    rc = backlog_wait(q, group, 0, 15000, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 0, "backlog after all taken: rc %d, %lld; %s", rc, (long long)b, err);
out:
    queue_consumer_free(c);
    queue_free(q);
    check_end("backlog_and_max0", "(max=0 poll of 400 ms took at most %lld ms)",
              (long long)pause_ms);
}

/* A message polled and never acked by a consumer that goes away is
 * delivered again to another consumer. */
static void check_redelivery(void)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "orphan");
    queue *q = NULL;
    queue_consumer *a = NULL, *b = NULL;
    queue_msg *m[1];
    char first_id[64] = "";
    int64_t waited = -1;
    queue_conf pc = base_conf("orphan-producer"), ac = base_conf("orphan-a"),
               bc = base_conf("orphan-b");

    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = queue_consumer_open(&ac, group, &a, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = push_range(q, group, 42, 43, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    int got = poll_some(a, 1, REDELIVERY_WAIT_MS, m, &rc, err, sizeof err);
    EXPECT(got == 1, "first consumer got nothing (rc %d: %s)", rc, err);
    if (got != 1)
        goto out;
    EXPECT(payload_index(m[0]->data, m[0]->len) == 42, "first delivery: wrong payload");
    snprintf(first_id, sizeof first_id, "%s", m[0]->id);
    EXPECT(first_id[0], "message without id");
    /* the consumer "dies": no ack, message and consumer dropped */
    queue_msg_free(m[0]);
    queue_consumer_free(a);
    a = NULL;

    rc = queue_consumer_open(&bc, group, &b, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    int64_t t0 = now_ms();
    got = poll_some(b, 1, REDELIVERY_WAIT_MS, m, &rc, err, sizeof err);
    waited = now_ms() - t0;
    EXPECT(got == 1, "not delivered again within %d ms (rc %d: %s)", REDELIVERY_WAIT_MS, rc, err);
    if (got != 1)
        goto out;
    EXPECT(payload_index(m[0]->data, m[0]->len) == 42, "redelivery: wrong payload");
    EXPECT(strcmp(m[0]->id, first_id) == 0, "redelivered id %s, first %s", m[0]->id, first_id);
    rc = queue_consumer_ack(b, m[0], err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    queue_msg_free(m[0]);
    /* acked: not delivered a third time */
    got = poll_some(b, 1, 2000, m, &rc, err, sizeof err);
    EXPECT(got == 0, "delivered again after the ack (id %s)", got ? m[0]->id : "");
    for (int i = 0; i < got; i++)
        queue_msg_free(m[i]);
out:
    queue_consumer_free(a);
    queue_consumer_free(b);
    queue_free(q);
    check_end("unacked_message_redelivered", "(id %s, again after %lld ms)", first_id,
              (long long)waited);
}

static void check_dead_letter(void)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "dead");
    queue *q = NULL;
    queue_consumer *c = NULL;
    queue_msg *m[1];
    int64_t b = -1;
    queue_conf pc = base_conf("dead-producer"), cc = base_conf("dead-consumer");

    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = queue_consumer_open(&cc, group, &c, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = push_range(q, group, 7, 8, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    int got = poll_some(c, 1, REDELIVERY_WAIT_MS, m, &rc, err, sizeof err);
    EXPECT(got == 1, "nothing delivered (rc %d: %s)", rc, err);
    if (got != 1)
        goto out;
    rc = queue_consumer_dead_letter(c, m[0], "check_queue: \"undecodable\" test message", err,
                                    sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    queue_msg_free(m[0]);
    got = poll_some(c, 1, 2500, m, &rc, err, sizeof err);
    EXPECT(got == 0, "a dead-lettered message was delivered again");
    for (int i = 0; i < got; i++)
        queue_msg_free(m[i]);
    rc = backlog_wait(q, group, 0, 15000, &b, err, sizeof err);
    EXPECT(rc == 0 && b == 0, "backlog after dead-letter: rc %d, %lld; %s", rc, (long long)b, err);
out:
    queue_consumer_free(c);
    queue_free(q);
    check_end("dead_letter_removes_message", NULL);
}

typedef struct wake_arg {
    queue_consumer *c;
    int max, timeout_ms, rc, n;
    int64_t returned_at;
    atomic_int entered;
    queue_msg *m[4];
    char err[256];
} wake_arg;

static void *wake_poller(void *p)
{
    wake_arg *a = p;
    atomic_store(&a->entered, 1);
    a->rc = queue_consumer_poll(a->c, a->max, a->timeout_ms, a->m, &a->n, a->err, sizeof a->err);
    a->returned_at = now_ms();
    return NULL;
}

static void check_wake(void)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "wake");
    queue *q = NULL;
    queue_consumer *c = NULL;
    int64_t worst = -1;
    queue_conf pc = base_conf("wake-producer"), cc = base_conf("wake-consumer");

    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = queue_consumer_open(&cc, group, &c, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    /* one poll so a consumer that joins lazily has joined */
    {
        queue_msg *m[1];
        int n = 0;
        queue_consumer_poll(c, 1, 500, m, &n, err, sizeof err);
        for (int i = 0; i < n; i++)
            queue_msg_free(m[i]);
    }
    for (int round = 0; round < 4; round++) {
        wake_arg a = {.c = c, .max = round % 2 ? 0 : 4, .timeout_ms = 15000};
        atomic_init(&a.entered, 0);
        pthread_t th;
        pthread_create(&th, NULL, wake_poller, &a);
        while (!atomic_load(&a.entered))
            sleep_ms(1);
        sleep_ms(round < 2 ? 700 : 5); /* well inside, or just entering */
        int64_t t0 = now_ms();
        queue_consumer_wake(c);
        pthread_join(th, NULL);
        int64_t el = a.returned_at - t0;
        if (el > worst)
            worst = el;
        EXPECT(a.rc == 0 && a.n == 0, "woken poll (max %d): rc %d, n %d; %s", a.max, a.rc, a.n,
               a.err);
        for (int i = 0; i < a.n; i++)
            queue_msg_free(a.m[i]);
        EXPECT(el <= SLACK_MS, "poll (max %d) returned %lld ms after wake", a.max, (long long)el);
    }
    /* still usable afterwards; and ack from another thread while poll blocks
     * (queue.h allows it), and a blocked poll takes a message pushed meanwhile */
    rc = push_range(q, group, 3, 4, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    queue_msg *m[1];
    int got = poll_some(c, 1, REDELIVERY_WAIT_MS, m, &rc, err, sizeof err);
    EXPECT(got == 1, "no delivery after wakes (rc %d: %s)", rc, err);
    if (got != 1)
        goto out;
    EXPECT(payload_index(m[0]->data, m[0]->len) == 3, "wrong payload after wakes");
    wake_arg a = {.c = c, .max = 4, .timeout_ms = 15000};
    atomic_init(&a.entered, 0);
    pthread_t th;
    pthread_create(&th, NULL, wake_poller, &a);
    while (!atomic_load(&a.entered))
        sleep_ms(1);
    sleep_ms(300);
    rc = queue_consumer_ack(c, m[0], err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    queue_msg_free(m[0]);
    int64_t t_push = now_ms();
    rc = push_range(q, group, 4, 5, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    pthread_join(th, NULL);
    EXPECT(a.rc == 0 && a.n == 1,
           "blocked poll did not take the message pushed meanwhile: rc %d, n %d; %s", a.rc, a.n,
           a.err);
    EXPECT(a.returned_at - t_push <= 5000, "blocked poll took %lld ms to see a new message",
           (long long)(a.returned_at - t_push));
    for (int i = 0; i < a.n; i++) {
        EXPECT(payload_index(a.m[i]->data, a.m[i]->len) == 4, "blocked poll: wrong payload");
        rc = queue_consumer_ack(c, a.m[i], err, sizeof err);
        EXPECT_RC(rc, QUEUE_OK, err);
        queue_msg_free(a.m[i]);
    }
    got = poll_some(c, 1, 2000, m, &rc, err, sizeof err);
    EXPECT(got == 0, "acked message delivered again (%s)", got ? m[0]->id : "");
    for (int i = 0; i < got; i++)
        queue_msg_free(m[i]);
out:
    queue_consumer_free(c);
    queue_free(q);
    check_end("wake_interrupts_poll", "(returned at most %lld ms after wake)", (long long)worst);
}

/* ------------------------------------------------------------- restart */

#define RS_MAX 4096

static void check_restart(const char *restarted_file)
{
    check_begin();
    char err[512] = "", group[128];
    group_name(group, sizeof group, "restart");
    queue *q = NULL;
    queue_consumer *c = NULL;
    static int pushed_ok[RS_MAX], seen[RS_MAX];
    int next = 0, push_err = 0, poll_err = 0, ack_err = 0, other_err = 0, dup = 0, missing = 0;
    int outage = 0, ok_streak = 0, restarted = 0;
    char other[512] = "";
    queue_conf pc = base_conf("restart-producer"), cc = base_conf("restart-consumer");
    unsigned char buf[PAYLOAD_MAX];
    queue_msg *msgs[16];

    int rc = queue_open(&pc, &q, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    rc = queue_ensure_group(q, group, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    rc = queue_consumer_open(&cc, group, &c, err, sizeof err);
    EXPECT_RC(rc, QUEUE_OK, err);
    if (rc)
        goto out;
    sleep_ms(1200); /* let the broker persist the group */
    printf("restart now\n");
    fflush(stdout);

    int64_t deadline = now_ms() + 90000;
    while (now_ms() < deadline && next < RS_MAX && !(restarted && ok_streak >= 20)) {
        if (!restarted && access(restarted_file, F_OK) == 0) {
            restarted = 1;
            ok_streak = 0;
            deadline = now_ms() + 60000; /* to recover */
        }
        int round_ok = 1;
        int64_t round_start = now_ms();
        size_t len = payload_make(next, buf);
        rc = queue_push(q, group, buf, len, err, sizeof err);
        if (!rc)
            rc = queue_flush(q, 2000, err, sizeof err);
        if (rc == 0) {
            pushed_ok[next] = 1;
        } else {
            round_ok = 0;
            push_err++;
            if (rc != QUEUE_ECONN && !other_err++)
                snprintf(other, sizeof other, "push: %d %s", rc, err);
        }
        next++;
        int n = 0;
        rc = queue_consumer_poll(c, 16, 200, msgs, &n, err, sizeof err);
        if (rc) {
            round_ok = 0;
            poll_err++;
            if (rc != QUEUE_ECONN && !other_err++)
                snprintf(other, sizeof other, "poll: %d %s", rc, err);
        }
        for (int i = 0; i < n; i++) {
            int idx = payload_index(msgs[i]->data, msgs[i]->len);
            if (idx >= 0 && idx < RS_MAX && seen[idx]++)
                dup++;
            int arc = queue_consumer_ack(c, msgs[i], err, sizeof err);
            if (arc) {
                round_ok = 0;
                ack_err++;
                if (arc != QUEUE_ECONN && !other_err++)
                    snprintf(other, sizeof other, "ack: %d %s", arc, err);
            }
            queue_msg_free(msgs[i]);
        }
        if (!round_ok) {
            outage++;
            ok_streak = 0;
        } else {
            ok_streak++;
        }
        int64_t spent = now_ms() - round_start;
        if (spent < 50)
            sleep_ms((int)(50 - spent)); /* ~20 messages a second */
    }
    /* drain: everything whose flush succeeded arrives (unacked ones by
     * reclaim/rebalance) */
    int64_t drain_deadline = now_ms() + REDELIVERY_WAIT_MS + 5000;
    for (;;) {
        missing = 0;
        for (int i = 0; i < next; i++)
            if (pushed_ok[i] && !seen[i])
                missing++;
        if (!missing || now_ms() >= drain_deadline)
            break;
        int n = 0;
        rc = queue_consumer_poll(c, 16, 500, msgs, &n, err, sizeof err);
        for (int i = 0; i < n; i++) {
            int idx = payload_index(msgs[i]->data, msgs[i]->len);
            if (idx >= 0 && idx < RS_MAX && seen[idx]++)
                dup++;
            queue_consumer_ack(c, msgs[i], err, sizeof err);
            queue_msg_free(msgs[i]);
        }
    }
    EXPECT(restarted, "%s did not appear within 90 s of \"restart now\"", restarted_file);
    EXPECT(!restarted || ok_streak >= 20, "producer and consumer did not recover within 60 s");
    EXPECT(!other_err, "errors other than QUEUE_ECONN during the outage; first: %s", other);
    EXPECT(missing == 0, "%d messages flushed successfully were never delivered", missing);
out:
    queue_consumer_free(c);
    queue_free(q);
    check_end("survives_broker_restart",
              "(%d pushed; %d rounds with errors: push %d, poll %d, ack %d; duplicates %d)", next,
              outage, push_err, poll_err, ack_err, dup);
}

int main(void)
{
    broker_url = getenv("DAGQ_BROKER_URL");
    if (!broker_url || !*broker_url) {
        fprintf(stderr, "check_queue: set DAGQ_BROKER_URL (redis://host:port or "
                        "kafka://host:port) to a broker the check may use\n");
        return 2;
    }
    const char *sep = strstr(broker_url, "://");
    snprintf(scheme, sizeof scheme, "%.*s", sep ? (int)(sep - broker_url) : 0, broker_url);
    snprintf(run_tag, sizeof run_tag, "chk-%ld-%lld", (long)getpid(), (long long)time(NULL));
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *restart = getenv("DAGQ_CHECK_RESTART");
    if (restart && *restart) {
        check_restart(restart);
    } else {
        check_bad_url();
        check_refused();
        check_two_consumers();
        check_backlog_and_pause();
        check_redelivery();
        check_dead_letter();
        check_wake();
    }
    printf("%d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}

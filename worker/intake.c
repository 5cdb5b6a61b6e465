#include "intake.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INTAKE_MAX_BATCH 64

typedef struct intake_consumer {
    intake *in;
    const char *group;
    queue_consumer *c; /* set by the thread; freed by intake_stop */
    pthread_t thread;
    int want; /* under mu: the batch its current poll asked for; -1 between polls */
} intake_consumer;

/* Broker work for the settler thread: a message decided on, to ack (or
 * dead-letter with reason), or an idle consumer to wake. */
typedef struct intake_settle_item {
    intake_item *it;      /* NULL for a wake */
    char *reason;         /* NULL: ack */
    queue_consumer *wake; /* set for a wake */
    struct intake_settle_item *next;
} intake_settle_item;

struct intake {
    const queue_conf *conf;
    int slots, wake_fd, ngroups;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, inbox_n, reserved;
    intake_item *head, *tail;
    atomic_int stopping;
    intake_consumer *consumers;
    metrics *m; /* borrowed; may be NULL */
    /* broker writes the main loop asks for, done by the settler thread so
     * that a stalled broker never blocks the loop that heartbeats */
    pthread_t settler;
    pthread_cond_t settle_cv;
    intake_settle_item *settle_head, *settle_tail;
    int settle_stop; /* under mu: the settler exits once its list is empty */
};

/* Starts a thread or gives up: a worker without its threads cannot work. */
static void intake_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        log_error("cannot start a thread; exiting", "error=\"%s\"", strerror(rc));
        abort();
    }
}

static void intake_notify(intake *in)
{
    char b = 1;
    ssize_t w = write(in->wake_fd, &b, 1);
    (void)w; /* a full pipe already means "wake up" */
}

/* Waits on the intake's condition variable for up to ms (a reconnect
 * backoff; only stop ends it early). Called with mu held. */
static void intake_wait_locked(intake *in, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&in->cv, &in->mu, &ts);
}

/* Waits out a reconnect backoff (only stop ends it early). */
static void intake_backoff(intake *in, int ms)
{
    pthread_mutex_lock(&in->mu);
    if (!atomic_load(&in->stopping))
        intake_wait_locked(in, ms);
    pthread_mutex_unlock(&in->mu);
}

/* Opens ic's consumer. Returns 0, or -1 after a backoff when it failed. */
static int intake_open(intake_consumer *ic, int *attempt)
{
    intake *in = ic->in;
    char err[512], q[512];
    queue_consumer *c = NULL;
    if (queue_consumer_open(in->conf, ic->group, &c, err, sizeof err) != QUEUE_OK) {
        metrics_server_up(in->m, METRICS_BROKER, 0);
        int ms = backoff_reconnect_ms((*attempt)++);
        log_warn("cannot open the queue consumer, retrying", "group=%s retry_in_ms=%d error=\"%s\"",
                 ic->group, ms, log_quote(err, q, sizeof q));
        intake_backoff(in, ms);
        return -1;
    }
    pthread_mutex_lock(&in->mu);
    ic->c = c;
    pthread_mutex_unlock(&in->mu);
    if (*attempt)
        log_info("queue consumer open", "group=%s", ic->group);
    *attempt = 0;
    return 0;
}

/* Appends what a poll returned to the inbox. Called with mu held. */
static void intake_inbox_add(intake_consumer *ic, queue_msg **msgs, int n)
{
    intake *in = ic->in;
    for (int i = 0; i < n; i++) {
        intake_item *it = mem_calloc(1, sizeof *it);
        it->msg = msgs[i];
        it->consumer = ic->c;
        it->group = ic->group;
        if (in->tail)
            in->tail->next = it;
        else
            in->head = it;
        in->tail = it;
        in->inbox_n++;
    }
}

/* One poll for as many messages as there are free slots (none: the
 * consumer stays a live member of its group). */
static void intake_poll(intake_consumer *ic, int poll_ms, int *attempt)
{
    intake *in = ic->in;
    char err[512], q[512];
    pthread_mutex_lock(&in->mu);
    int want = in->slots - in->running - in->inbox_n - in->reserved;
    if (want > INTAKE_MAX_BATCH)
        want = INTAKE_MAX_BATCH;
    if (want < 0)
        want = 0;
    in->reserved += want;
    ic->want = want;
    pthread_mutex_unlock(&in->mu);

    queue_msg *msgs[INTAKE_MAX_BATCH];
    int n = 0;
    int rc = queue_consumer_poll(ic->c, want, poll_ms, msgs, &n, err, sizeof err);

    pthread_mutex_lock(&in->mu);
    in->reserved -= want;
    ic->want = -1;
    intake_inbox_add(ic, msgs, n);
    pthread_mutex_unlock(&in->mu);
    if (n > 0)
        intake_notify(in);
    metrics_server_up(in->m, METRICS_BROKER, rc == QUEUE_OK);
    if (rc == QUEUE_OK) {
        *attempt = 0;
        return;
    }
    int ms = backoff_reconnect_ms((*attempt)++);
    log_warn("queue poll failed, retrying", "group=%s retry_in_ms=%d error=\"%s\"", ic->group, ms,
             log_quote(err, q, sizeof q));
    intake_backoff(in, ms);
}

static void *intake_thread(void *arg)
{
    intake_consumer *ic = arg;
    int attempt = 0;
    /* several groups share the slots: poll in shorter slices so one group's
     * idle poll does not hold slots another group's messages could use */
    int poll_ms = ic->in->ngroups > 1 ? 200 : 1000;
    while (!atomic_load(&ic->in->stopping)) {
        if (!ic->c && intake_open(ic, &attempt) != 0)
            continue;
        intake_poll(ic, poll_ms, &attempt);
    }
    return NULL;
}

static void *intake_settler(void *arg);

intake *intake_start(const queue_conf *conf, char **groups, int ngroups, int slots, int wake_fd,
                     metrics *m)
{
    intake *in = mem_calloc(1, sizeof *in);
    in->m = m;
    in->conf = conf;
    in->slots = slots;
    in->wake_fd = wake_fd;
    in->ngroups = ngroups;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    atomic_init(&in->stopping, 0);
    pthread_cond_init(&in->settle_cv, NULL);
    in->consumers = mem_calloc((size_t)ngroups, sizeof *in->consumers);
    intake_thread_start(&in->settler, intake_settler, in);
    for (int i = 0; i < ngroups; i++) {
        in->consumers[i].in = in;
        in->consumers[i].group = groups[i];
        in->consumers[i].want = -1;
        intake_thread_start(&in->consumers[i].thread, intake_thread, &in->consumers[i]);
    }
    return in;
}

intake_item *intake_take(intake *in)
{
    pthread_mutex_lock(&in->mu);
    intake_item *it = in->head;
    if (it) {
        in->head = it->next;
        if (!in->head)
            in->tail = NULL;
        it->next = NULL;
        /* it still holds its slot until intake_done or a running try takes it */
    }
    pthread_mutex_unlock(&in->mu);
    return it;
}

void intake_unget(intake *in, intake_item *it)
{
    pthread_mutex_lock(&in->mu);
    it->next = in->head;
    in->head = it;
    if (!in->tail)
        in->tail = it;
    pthread_mutex_unlock(&in->mu);
}

static void intake_settle_later(intake *in, intake_item *it, const char *reason,
                                queue_consumer *wake);

/* A slot was freed: consumers polling with no slot to offer (max == 0)
 * look again at once. The others need no wake: a poll that asked for
 * messages returns with the first one. The wakes are the settler's to send
 * (on Redis a wake is a round trip). Called with mu held; releases it. */
static void intake_slot_freed_unlock(intake *in)
{
    for (int i = 0; i < in->ngroups; i++)
        if (in->consumers[i].c && in->consumers[i].want == 0)
            intake_settle_later(in, NULL, NULL, in->consumers[i].c);
    pthread_mutex_unlock(&in->mu);
}

/* Acks (or dead-letters, with reason) the item's message and frees it. */
static void intake_settle(intake_item *it, const char *reason)
{
    char err[512], q[512];
    int rc;
    if (reason)
        rc = queue_consumer_dead_letter(it->consumer, it->msg, reason, err, sizeof err);
    else
        rc = queue_consumer_ack(it->consumer, it->msg, err, sizeof err);
    if (rc != QUEUE_OK)
        log_warn(reason ? "dead-letter failed; the broker will deliver the message again"
                        : "ack failed; the broker will deliver the message again",
                 "group=%s id=%s error=\"%s\"", it->group, it->msg->id,
                 log_quote(err, q, sizeof q));
    queue_msg_free(it->msg);
    mem_free(it);
}

/* The settler thread: acks and dead-letters in the order they were asked
 * for, until stopped with nothing left to do. */
static void *intake_settler(void *arg)
{
    intake *in = arg;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        intake_settle_item *si = in->settle_head;
        if (!si) {
            if (in->settle_stop)
                break;
            pthread_cond_wait(&in->settle_cv, &in->mu);
            continue;
        }
        in->settle_head = si->next;
        if (!in->settle_head)
            in->settle_tail = NULL;
        pthread_mutex_unlock(&in->mu);
        if (si->wake)
            queue_consumer_wake(si->wake);
        else
            intake_settle(si->it, si->reason);
        mem_free(si->reason);
        mem_free(si);
        pthread_mutex_lock(&in->mu);
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

/* Hands it (or the wake) to the settler. Called with mu held. */
static void intake_settle_later(intake *in, intake_item *it, const char *reason,
                                queue_consumer *wake)
{
    intake_settle_item *si = mem_calloc(1, sizeof *si);
    si->it = it;
    si->reason = mem_strdup(reason);
    si->wake = wake;
    if (in->settle_tail)
        in->settle_tail->next = si;
    else
        in->settle_head = si;
    in->settle_tail = si;
    pthread_cond_signal(&in->settle_cv);
}

void intake_done(intake *in, intake_item *it, const char *reason)
{
    pthread_mutex_lock(&in->mu);
    intake_settle_later(in, it, reason, NULL);
    in->inbox_n--;
    intake_slot_freed_unlock(in);
}

void intake_claimed(intake *in, intake_item *it)
{
    pthread_mutex_lock(&in->mu);
    intake_settle_later(in, it, NULL, NULL);
    in->inbox_n--;
    in->running++;
    pthread_mutex_unlock(&in->mu);
}

void intake_set_running(intake *in, int running)
{
    if (!in)
        return; /* draining: the consumers are gone */
    pthread_mutex_lock(&in->mu);
    int freed = running < in->running;
    in->running = running;
    if (freed)
        intake_slot_freed_unlock(in);
    else
        pthread_mutex_unlock(&in->mu);
}

void intake_stop(intake *in)
{
    if (!in)
        return;
    atomic_store(&in->stopping, 1);
    pthread_mutex_lock(&in->mu);
    pthread_cond_broadcast(&in->cv);
    for (int i = 0; i < in->ngroups; i++)
        if (in->consumers[i].c)
            queue_consumer_wake(in->consumers[i].c);
    pthread_mutex_unlock(&in->mu);
    for (int i = 0; i < in->ngroups; i++)
        pthread_join(in->consumers[i].thread, NULL);
    /* what was decided is acked before the consumers go */
    pthread_mutex_lock(&in->mu);
    in->settle_stop = 1;
    pthread_cond_signal(&in->settle_cv);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->settler, NULL);
    /* untaken messages: not acked, the broker hands them to another worker */
    for (intake_item *it = in->head, *next; it; it = next) {
        next = it->next;
        queue_msg_free(it->msg);
        mem_free(it);
    }
    for (int i = 0; i < in->ngroups; i++)
        queue_consumer_free(in->consumers[i].c);
    mem_free(in->consumers);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    pthread_cond_destroy(&in->settle_cv);
    mem_free(in);
}

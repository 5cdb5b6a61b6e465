#include "metrics.h"

#include "clock.h"
#include "mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* Every metric a dagq daemon may export, with its type and help. A name not
 * in this table is still exported, as untyped. */
static const struct {
    const char *name;
    int type;
    const char *help;
} metrics_known[] = {
    {"dagq_scheduler_loop_duration_seconds", METRICS_HISTOGRAM,
     "Duration of one scheduling pass (transaction and pushes)."},
    {"dagq_task_instances_total", METRICS_COUNTER,
     "Task instances this process moved to a state, by worker group."},
    {"dagq_runs_finished_total", METRICS_COUNTER, "DAG runs this process finished, by state."},
    {"dagq_queue_backlog", METRICS_GAUGE,
     "Messages on the broker no consumer of the worker group has taken yet (stream or consumer "
     "lag)."},
    {"dagq_tries_queued", METRICS_GAUGE,
     "Task instances in state queued in the metastore, by worker group."},
    {"dagq_tries_ready", METRICS_GAUGE,
     "Task instances ready to be queued (trigger rule satisfied or retry due), by worker group."},
    {"dagq_tries_running", METRICS_GAUGE,
     "Task instances in state running in the metastore, by worker group."},
    {"dagq_group_live_workers", METRICS_GAUGE,
     "Workers of the group that heartbeated in the last 60 seconds and are not draining."},
    {"dagq_group_free_slots", METRICS_GAUGE, "Free slots of the group's live workers."},
    {"dagq_oldest_queued_try_age_seconds", METRICS_GAUGE,
     "Age of the oldest try in state queued, by worker group (0 when none)."},
    {"dagq_worker_slots", METRICS_GAUGE, "This worker's slots, busy or free."},
    {"dagq_worker_batches_total", METRICS_COUNTER,
     "Statements this worker claimed or finished tries with (op claim, finish)."},
    {"dagq_worker_batch_items_total", METRICS_COUNTER,
     "Messages claimed and results finished in those statements (items / batches is the mean "
     "batch)."},
    {"dagq_up", METRICS_GAUGE, "1 when the server (database or broker) is reachable."},
    {"dagq_reconnects_total", METRICS_COUNTER,
     "Times the connection to the server (database or broker) came back after a loss."},
    {"dagq_scheduler_pass_errors_total", METRICS_COUNTER,
     "Scheduling passes that failed and were rolled back (transient ones included)."},
    {"dagq_dags_parked_total", METRICS_COUNTER,
     "DAGs this scheduler parked because it could not evaluate or start them."},
    {"dagq_task_instances_failed_unscheduled_total", METRICS_COUNTER,
     "Task instances failed by the scheduler before any try (a command that does not render)."},
    {"dagq_alert_deliveries_total", METRICS_COUNTER,
     "Alert delivery attempts of this process, by channel and result (delivered, failed, "
     "undeliverable)."},
    {"dagq_alert_delivery_duration_seconds", METRICS_HISTOGRAM,
     "Duration of one alert delivery attempt, by channel kind."},
    {"dagq_alerts_pending", METRICS_GAUGE,
     "Alert deliveries not yet delivered nor given up, in the metastore."},
    {"dagq_alert_events_detected_total", METRICS_COUNTER,
     "Time-based alert events this process wrote (run_late, workers_missing)."},
};

#define METRICS_NBUCKETS 13
static const double metrics_bounds[METRICS_NBUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct metrics_series {
    char *name, *labels; /* labels: "" when none */
    int type;
    double value; /* counter, gauge; histogram: sum */
    unsigned long long count, buckets[METRICS_NBUCKETS];
} metrics_series;

typedef struct metrics_server {
    int up, ever_up;
    double down_since;
    double call_since; /* a blocking call in flight since; 0: none */
} metrics_server;

struct metrics {
    pthread_mutex_t mu;
    char *program;
    metrics_series *s;
    int n, cap;
    metrics_server srv[2];
    int pass_failing; /* scheduler: passes fail since pass_fail_since */
    double pass_fail_since;
    char pass_why[200];
};

static const char *const metrics_server_names[2] = {"database", "broker"};

metrics *metrics_new(const char *program)
{
    metrics *m = mem_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->program = mem_strdup(program);
    double t = clock_now_s();
    for (int i = 0; i < 2; i++)
        m->srv[i].down_since = t; /* not reached yet: counts from the start */
    metrics_counter_add(m, "dagq_reconnects_total", "server=\"database\"", 0);
    metrics_counter_add(m, "dagq_reconnects_total", "server=\"broker\"", 0);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        mem_free(m->s[i].name);
        mem_free(m->s[i].labels);
    }
    mem_free(m->s);
    mem_free(m->program);
    pthread_mutex_destroy(&m->mu);
    mem_free(m);
}

/* The series name{labels}, created when missing. Called with mu held. */
static metrics_series *metrics_find(metrics *m, const char *name, const char *labels, int type)
{
    if (!labels)
        labels = "";
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].name, name) && !strcmp(m->s[i].labels, labels))
            return &m->s[i];
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->s = mem_realloc(m->s, sizeof *m->s * (size_t)m->cap);
    }
    metrics_series *s = &m->s[m->n++];
    memset(s, 0, sizeof *s);
    s->name = mem_strdup(name);
    s->labels = mem_strdup(labels);
    s->type = type;
    return s;
}

void metrics_counter_add(metrics *m, const char *name, const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    metrics_find(m, name, labels, METRICS_COUNTER)->value += v;
    pthread_mutex_unlock(&m->mu);
}

void metrics_gauge_set(metrics *m, const char *name, const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    metrics_find(m, name, labels, METRICS_GAUGE)->value = v;
    pthread_mutex_unlock(&m->mu);
}

void metrics_histogram_observe(metrics *m, const char *name, const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    metrics_series *s = metrics_find(m, name, labels, METRICS_HISTOGRAM);
    s->value += v;
    s->count++;
    for (int i = 0; i < METRICS_NBUCKETS; i++)
        if (v <= metrics_bounds[i])
            s->buckets[i]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_label_escape(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    if (len == 0)
        return;
    for (; s && *s && o + 2 < len; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
}

void metrics_ti_state(metrics *m, const char *group, const char *state, long long n)
{
    if (!m)
        return;
    char g[600], st[64], labels[800];
    metrics_label_escape(group, g, sizeof g);
    metrics_label_escape(state, st, sizeof st);
    snprintf(labels, sizeof labels, "group=\"%s\",state=\"%s\"", g, st);
    metrics_counter_add(m, "dagq_task_instances_total", labels, n);
}

void metrics_run_finished(metrics *m, const char *state)
{
    if (!m)
        return;
    char st[64], labels[128];
    metrics_label_escape(state, st, sizeof st);
    snprintf(labels, sizeof labels, "state=\"%s\"", st);
    metrics_counter_add(m, "dagq_runs_finished_total", labels, 1);
}

void metrics_worker_slots(metrics *m, int busy, int slots)
{
    metrics_gauge_set(m, "dagq_worker_slots", "state=\"busy\"", busy);
    metrics_gauge_set(m, "dagq_worker_slots", "state=\"free\"", slots > busy ? slots - busy : 0);
}

void metrics_server_up(metrics *m, int server, int up)
{
    if (!m || server < 0 || server > 1)
        return;
    pthread_mutex_lock(&m->mu);
    metrics_server *s = &m->srv[server];
    if (up && !s->up) {
        if (s->ever_up) {
            char labels[64];
            snprintf(labels, sizeof labels, "server=\"%s\"", metrics_server_names[server]);
            metrics_find(m, "dagq_reconnects_total", labels, METRICS_COUNTER)->value += 1;
        }
        s->ever_up = 1;
    } else if (!up && s->up) {
        s->down_since = clock_now_s();
    }
    s->up = up ? 1 : 0;
    pthread_mutex_unlock(&m->mu);
}

void metrics_pass_result(metrics *m, int ok, const char *why)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    if (ok) {
        m->pass_failing = 0;
    } else {
        if (!m->pass_failing)
            m->pass_fail_since = clock_now_s();
        m->pass_failing = 1;
        snprintf(m->pass_why, sizeof m->pass_why, "%s", why ? why : "");
        metrics_find(m, "dagq_scheduler_pass_errors_total", NULL, METRICS_COUNTER)->value += 1;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_server_call(metrics *m, int server, int begin)
{
    if (!m || server < 0 || server > 1)
        return;
    pthread_mutex_lock(&m->mu);
    m->srv[server].call_since = begin ? clock_now_s() : 0;
    pthread_mutex_unlock(&m->mu);
}

int metrics_healthy(metrics *m, double timeout_s, char *reason, size_t len)
{
    if (len)
        reason[0] = '\0';
    if (!m)
        return 1;
    int ok = 1;
    double t = clock_now_s();
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < 2; i++) {
        double down = t - m->srv[i].down_since;
        double waiting = m->srv[i].call_since ? t - m->srv[i].call_since : 0;
        int is_down = !m->srv[i].up && down > timeout_s;
        if (is_down || waiting > timeout_s) {
            size_t o = strlen(reason);
            snprintf(reason + o, len - o, "%s%s unreachable for %.0fs%s", ok ? "" : "; ",
                     metrics_server_names[i], is_down ? down : waiting,
                     is_down ? "" : " (a call has waited so long)");
            ok = 0;
        }
    }
    if (m->pass_failing && t - m->pass_fail_since > timeout_s) {
        size_t o = strlen(reason);
        snprintf(reason + o, len - o, "%sscheduling passes failing for %.0fs: %s", ok ? "" : "; ",
                 t - m->pass_fail_since, m->pass_why);
        ok = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

void metrics_gauge_zero(metrics *m, const char *name)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++)
        if (m->s[i].type == METRICS_GAUGE && !strcmp(m->s[i].name, name))
            m->s[i].value = 0;
    pthread_mutex_unlock(&m->mu);
}

static int metrics_cmp(const void *a, const void *b)
{
    const metrics_series *x = *(const metrics_series *const *)a;
    const metrics_series *y = *(const metrics_series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

/* A growing output buffer. */
typedef struct metrics_buf {
    char *p;
    size_t len, cap;
} metrics_buf;

static void metrics_printf(metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void metrics_printf(metrics_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0) + 1;
        b->p = mem_realloc(b->p, b->cap);
    }
}

static void metrics_header(metrics_buf *b, const char *name, int type)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const char *help = NULL;
    for (size_t k = 0; k < sizeof metrics_known / sizeof metrics_known[0]; k++)
        if (!strcmp(metrics_known[k].name, name)) {
            help = metrics_known[k].help;
            type = metrics_known[k].type;
        }
    if (help)
        metrics_printf(b, "# HELP %s %s\n", name, help);
    metrics_printf(b, "# TYPE %s %s\n", name, types[type]);
}

/* "name{labels}" or "name{labels,extra}" for one sample. */
static void metrics_sample(metrics_buf *b, const char *name, const char *suffix, const char *labels,
                           const char *extra, double v)
{
    int any = labels[0] || extra;
    metrics_printf(b, "%s%s%s%s%s%s%s %.17g\n", name, suffix, any ? "{" : "", labels,
                   labels[0] && extra ? "," : "", extra ? extra : "", any ? "}" : "", v);
}

char *metrics_render(metrics *m)
{
    metrics_buf b = {mem_alloc(4096), 0, 4096};
    b.p[0] = '\0';
    if (!m)
        return b.p;
    pthread_mutex_lock(&m->mu);
    metrics_header(&b, "dagq_up", METRICS_GAUGE);
    for (int i = 0; i < 2; i++)
        metrics_printf(&b, "dagq_up{server=\"%s\"} %d\n", metrics_server_names[i], m->srv[i].up);
    metrics_series **order = mem_calloc((size_t)m->n + 1, sizeof *order);
    for (int i = 0; i < m->n; i++)
        order[i] = &m->s[i];
    qsort(order, (size_t)m->n, sizeof *order, metrics_cmp);
    for (int i = 0; i < m->n; i++) {
        const metrics_series *s = order[i];
        if (i == 0 || strcmp(order[i - 1]->name, s->name))
            metrics_header(&b, s->name, s->type);
        if (s->type != METRICS_HISTOGRAM) {
            metrics_sample(&b, s->name, "", s->labels, NULL, s->value);
            continue;
        }
        for (int k = 0; k < METRICS_NBUCKETS; k++) {
            char le[48];
            snprintf(le, sizeof le, "le=\"%g\"", metrics_bounds[k]);
            metrics_sample(&b, s->name, "_bucket", s->labels, le, (double)s->buckets[k]);
        }
        metrics_sample(&b, s->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
        metrics_sample(&b, s->name, "_sum", s->labels, NULL, s->value);
        metrics_sample(&b, s->name, "_count", s->labels, NULL, (double)s->count);
    }
    mem_free(order);
    pthread_mutex_unlock(&m->mu);
    return b.p;
}

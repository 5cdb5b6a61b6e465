#include "kafka_parts.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

kq_part *kq_parts__find(kq_consumer *c, int32_t partition, bool add)
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

static void kq_parts_stash_drop(kq_consumer *c, int32_t partition)
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

static void kq_parts_str(const rd_kafka_topic_partition_list_t *l, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && n + 12 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : "", (int)l->elems[i].partition);
}

/* Pauses the partitions of l this consumer has not paused, or resumes those
 * of l it has paused; the others are left alone. */
static void kq_parts_pause_list(kq_consumer *c, const rd_kafka_topic_partition_list_t *l,
                                bool pause)
{
    rd_kafka_topic_partition_list_t *change = rd_kafka_topic_partition_list_new(l->cnt + 1);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < l->cnt; i++) {
        kq_part *p = kq_parts__find(c, l->elems[i].partition, true);
        if (p->paused != pause) {
            p->paused = pause;
            rd_kafka_topic_partition_list_add(change, c->topic, p->partition);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (change->cnt > 0) {
        rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(c->cl.rk, change)
                                        : rd_kafka_resume_partitions(c->cl.rk, change);
        char q[512];
        if (err)
            log_warn(pause ? "kafka pause failed" : "kafka resume failed", "group=%s err=\"%s\"",
                     c->group, log_quote(rd_kafka_err2str(err), q, sizeof q));
        else
            log_debug(pause ? "kafka partitions paused" : "kafka partitions resumed",
                      "group=%s partitions=%d", c->group, change->cnt);
    }
    rd_kafka_topic_partition_list_destroy(change);
}

void kq_parts__pause(kq_consumer *c, bool pause)
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
    kq_parts_pause_list(c, l, pause);
    rd_kafka_topic_partition_list_destroy(l);
    c->paused = pause;
}

/* New partitions: a fresh state (a new generation), then paused if the
 * consumer is. */
static void kq_parts_assign(kq_consumer *c, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                            bool coop, rd_kafka_error_t **error, rd_kafka_resp_err_t *aerr)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < parts->cnt; i++) {
        kq_part *p = kq_parts__find(c, parts->elems[i].partition, true);
        p->assigned = true;
        p->gen = ++c->gen;
        p->next = p->stored = -1;
        p->n_out = 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (coop)
        *error = rd_kafka_incremental_assign(rk, parts);
    else
        *aerr = rd_kafka_assign(rk, parts);
    /* Paused with enough stashed: so are the new partitions. The stash lost
     * what came from revoked partitions: if little is left, fetch again. (A
     * partition this consumer paused under an earlier assignment is paused
     * still: kq_parts_pause_list resumes it.) */
    if (c->paused && c->n_stash < KQ_STASH_LOW)
        kq_parts__pause(c, false);
    kq_parts_pause_list(c, parts, c->paused);
}

/* Revoked partitions: their state and stashed messages are dropped. */
static void kq_parts_revoke(kq_consumer *c, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                            bool coop, rd_kafka_error_t **error, rd_kafka_resp_err_t *aerr)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < parts->cnt; i++) {
        kq_part *p = kq_parts__find(c, parts->elems[i].partition, false);
        if (p) {
            p->assigned = false;
            p->n_out = 0;
        }
        kq_parts_stash_drop(c, parts->elems[i].partition);
    }
    pthread_mutex_unlock(&c->mu);
    if (coop)
        *error = rd_kafka_incremental_unassign(rk, parts);
    else
        *aerr = rd_kafka_assign(rk, NULL);
}

void kq_parts__rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kq_consumer *c = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    char list[256], q[512];
    kq_parts_str(parts, list, sizeof list);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        kq_parts_assign(c, rk, parts, coop, &error, &aerr);
        log_info("kafka partitions assigned", "group=%s topic=%s partitions=%s paused=%d", c->group,
                 c->topic, list, c->paused);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        kq_parts_revoke(c, rk, parts, coop, &error, &aerr);
        log_info("kafka partitions revoked", "group=%s topic=%s partitions=%s lost=%d", c->group,
                 c->topic, list, lost);
    } else {
        log_error("kafka rebalance failed", "group=%s err=\"%s\"", c->group,
                  log_quote(rd_kafka_err2str(err), q, sizeof q));
        aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        log_error("kafka assignment failed", "group=%s err=\"%s\"", c->group,
                  log_quote(rd_kafka_error_string(error), q, sizeof q));
        rd_kafka_error_destroy(error);
    }
    if (aerr)
        log_error("kafka assignment failed", "group=%s err=\"%s\"", c->group,
                  log_quote(rd_kafka_err2str(aerr), q, sizeof q));
}

#include "pool.h"

#include "clock.h"
#include "errbuf.h"
#include "mem.h"

#include <pthread.h>

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    db **all;
    db **free_list; /* a stack of the idle ones */
    int n, nfree;
};

pool *pool_new(const char *conninfo, int n, const char *session_sql)
{
    pool *p = mem_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->n = n;
    p->all = mem_calloc((size_t)n, sizeof *p->all);
    p->free_list = mem_calloc((size_t)n, sizeof *p->free_list);
    for (int i = 0; i < n; i++) {
        p->all[i] = db_new(conninfo, "dagq-web");
        db_set_session_sql(p->all[i], session_sql);
        p->free_list[p->nfree++] = p->all[i];
    }
    return p;
}

void pool_free(pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        db_free(p->all[i]);
    mem_free(p->all);
    mem_free(p->free_list);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    mem_free(p);
}

int pool_take(pool *p, int wait_ms, db **out, char *errbuf, size_t errlen)
{
    struct timespec deadline = clock_after_ms(wait_ms);
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) != 0 && p->nfree == 0) {
            pthread_mutex_unlock(&p->mu);
            errbuf_printf(errbuf, errlen, "all %d database connections stayed busy for %d ms", p->n,
                          wait_ms);
            return DB_ECONN;
        }
    }
    db *d = p->free_list[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    if (!db_connected(d) && db_connect(d, errbuf, errlen) != DB_OK) {
        pool_give(p, d);
        return DB_ECONN;
    }
    *out = d;
    return DB_OK;
}

void pool_give(pool *p, db *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&p->mu);
    p->free_list[p->nfree++] = d;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

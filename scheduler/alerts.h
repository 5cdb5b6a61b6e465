/* alerts — every dagq-scheduler delivers alerts on threads of its own, each
 * with its own database connection, so no receiver, however slow or dead,
 * delays a scheduling pass:
 *
 *   --alert-threads delivery threads  claim a pending delivery
 *                   (dagq.alert_claim: SKIP LOCKED, then a lease), send it
 *                   (alert_send.h, bounded by the channel's timeout), record
 *                   the outcome (dagq.alert_result, fenced on the lease);
 *                   woken by NOTIFY dagq_event, polling every 500 ms
 *   one detector    writes the time-based events once a second
 *                   (alert_detect.h: run_late, workers_missing)
 *
 * Several schedulers share the work through the metastore: each delivery is
 * held by one thread of one process at a time. A thread killed mid-send
 * (kill -9 of its process) leaves a lease that expires after the channel's
 * timeout plus 5 s; then any thread sends the event again, with the same
 * event_id. SQL: sql/012_alerts.sql, sql/012b_alert_delivery.sql. */
#ifndef DAGQ_ALERTS_H
#define DAGQ_ALERTS_H

#include "config.h"
#include "metrics.h"

#include <stddef.h>

typedef struct alerts_opts {
    long long threads, workers_missing_after;
    char *base_url, *secrets_dir, *ca_file;
    char *smtp_url, *smtp_user, *smtp_password, *smtp_from, *smtp_tls;
} alerts_opts;

/* The option rows (config_option initialisers) for the fields of *o. */
#define ALERTS_OPTIONS(o)                                                                          \
    {"alert-threads",                                                                              \
     CONFIG_INT,                                                                                   \
     "2",                                                                                          \
     "threads delivering alerts (0: this scheduler sends none and detects no deadlines)",          \
     &(o)->threads,                                                                                \
     0,                                                                                            \
     64},                                                                                          \
        {"base-url", CONFIG_STRING, NULL,                                                          \
         "the web UI's address; alerts link to BASE_URL/runs/RUN_ID", &(o)->base_url},             \
        {"alert-secrets-dir", CONFIG_STRING, NULL,                                                 \
         "where alert channels' file:NAME references (URLs, header lines) are read",               \
         &(o)->secrets_dir},                                                                       \
        {"alert-ca-file", CONFIG_STRING, NULL,                                                     \
         "CA certificates (PEM) for https:// receivers and SMTP TLS (unset: the system's)",        \
         &(o)->ca_file},                                                                           \
        {"smtp-url", CONFIG_STRING, NULL,                                                          \
         "e-mail alerts: smtp://host[:port] (STARTTLS, see --smtp-tls) or smtps://host[:port]",    \
         &(o)->smtp_url},                                                                          \
        {"smtp-tls", CONFIG_STRING, "starttls",                                                    \
         "smtp://: starttls (required) or none (in the clear, no login allowed)", &(o)->smtp_tls}, \
        {"smtp-user", CONFIG_STRING, NULL, "SMTP login (unset: none)", &(o)->smtp_user},           \
        {"smtp-password", CONFIG_SECRET, NULL, "SMTP password", &(o)->smtp_password},              \
        {"smtp-from", CONFIG_STRING, NULL, "e-mail alerts' sender address", &(o)->smtp_from},      \
    {                                                                                              \
        "workers-missing-after", CONFIG_INT, "120",                                                \
            "seconds a worker group with queued tries may have no live worker before a "           \
            "workers_missing alert",                                                               \
            &(o)->workers_missing_after, 1, 86400                                                  \
    }

/* Checks the options together (--smtp-tls, a login without TLS). Returns 0,
 * or -1 with the problem in errbuf. */
int alerts_check(const alerts_opts *o, char *errbuf, size_t errlen);

typedef struct alerts alerts; /* opaque */

/* Starts the threads (none when o->threads is 0). name: this process's name
 * in the metastore and logs (copied); database_url and o borrowed, they
 * must outlive alerts_stop; m may be NULL. Returns NULL with errbuf on
 * failure. */
alerts *alerts_start(const char *name, const char *database_url, const alerts_opts *o, metrics *m,
                     char *errbuf, size_t errlen);

/* Stops the threads (a send under way is abandoned and handed back within
 * about a second) and frees a. NULL does nothing. */
void alerts_stop(alerts *a);

#endif

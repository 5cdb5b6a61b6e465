/* alert_send — the transports of alert deliveries, one message at a time,
 * each bounded by the channel's timeout:
 *
 *   webhook, slack  HTTP POST (libcurl) of the body the metastore built, with
 *                   Content-Type: application/json, Idempotency-Key and
 *                   X-Dagq-Event-Id (the event_id), and the header lines
 *                   named by headers_from; 2xx is delivered
 *   email           SMTP (libcurl) through --smtp-url, STARTTLS required by
 *                   default, login with --smtp-user / --smtp-password; the
 *                   metastore built the message, this adds From:
 *   command         /bin/sh -c TARGET on this host (alert_command.h); exit 0
 *                   is delivered
 *
 * A target or headers_from that is a reference (env:DAGQ_ALERT_NAME, or
 * file:NAME inside --alert-secrets-dir) is resolved here at each send, and
 * whatever it resolved to is redacted from the response and the error, so
 * neither ever holds a secret. Only http and https (smtp and smtps for
 * e-mail) are allowed, and redirects are not followed.
 *
 * Thread-safe: each call uses its own libcurl handle; alert_send_global_init
 * must have run once before any thread calls alert_send. */
#ifndef DAGQ_ALERT_SEND_H
#define DAGQ_ALERT_SEND_H

#include <stddef.h>

typedef struct alert_send_conf {
    const char *secrets_dir; /* file:NAME references resolve in it; NULL: they fail */
    const char *ca_file;     /* CA bundle for https:// and SMTP TLS; NULL: the system's */
    const char *smtp_url;    /* smtp://host[:port] or smtps://...; NULL: e-mail fails */
    const char *smtp_user;   /* NULL: no login */
    const char *smtp_password;
    const char *smtp_from;    /* the envelope sender and From: */
    int smtp_starttls;        /* smtp://: 1 requires STARTTLS, 0 sends in the clear */
    const volatile int *stop; /* a send under way is abandoned once *stop != 0 */
} alert_send_conf;

typedef struct alert_msg {
    const char *channel, *kind, *target, *headers_from; /* headers_from may be NULL */
    const char *event;
    long long event_id;
    int timeout_ms;
    const char *body; /* the request body, the e-mail, or the command's stdin */
    char **env;       /* command: NAME=value strings, nenv of them */
    int nenv;
} alert_msg;

#define ALERT_SEND_OK 0
#define ALERT_SEND_FAILED (-1)  /* unreachable, refused, timed out: try again later */
#define ALERT_SEND_STOPPED (-2) /* abandoned because *stop became non-zero */

/* Once per process, before any thread sends (curl_global_init). */
int alert_send_global_init(char *errbuf, size_t errlen);
void alert_send_global_cleanup(void);

/* Sends m. response gets the receiver's answer ("HTTP 200: ok", "SMTP 250",
 * "exit 0: ...", empty when there was none), errbuf why it failed. */
int alert_send(const alert_send_conf *c, const alert_msg *m, char *response, size_t rlen,
               char *errbuf, size_t errlen);

/* Resolves a target or headers_from reference: env:DAGQ_ALERT_NAME (the
 * variable's value) or file:NAME (the file secrets_dir/NAME, without its
 * trailing newlines, at most 64 KiB); anything else is returned as it is.
 * Returns a new string (caller frees with mem_free, after wiping it), or
 * NULL with errbuf naming the reference (never its value). */
char *alert_send_resolve(const char *ref, const char *secrets_dir, char *errbuf, size_t errlen);

#endif

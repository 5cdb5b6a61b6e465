#include "alert_send.h"

#include "alert_command.h"
#include "errbuf.h"
#include "mem.h"
#include "redact.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERT_SECRET_MAX (64 * 1024)
#define ALERT_RESPONSE_KEEP 1024 /* bytes of a receiver's answer kept */
#define ALERT_MAX_SECRETS 34     /* a target and up to 32 header lines, + 1 */

int alert_send_global_init(char *errbuf, size_t errlen)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        errbuf_printf(errbuf, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void alert_send_global_cleanup(void)
{
    curl_global_cleanup();
}

static void alert_wipe_free(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    mem_free(s);
}

/* The file secrets_dir/name, its trailing newlines cut. */
static char *alert_read_secret(const char *ref, const char *dir, const char *name, char *errbuf,
                               size_t errlen)
{
    if (!dir || !*dir) {
        errbuf_printf(errbuf, errlen, "%s: no --alert-secrets-dir is set on this process", ref);
        return NULL;
    }
    char *path = mem_printf("%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        errbuf_printf(errbuf, errlen, "%s: cannot open %s: %s", ref, path, strerror(errno));
        mem_free(path);
        return NULL;
    }
    char *buf = mem_alloc(ALERT_SECRET_MAX + 1);
    size_t n = fread(buf, 1, ALERT_SECRET_MAX + 1, f);
    int bad = ferror(f) || n > ALERT_SECRET_MAX || memchr(buf, '\0', n);
    fclose(f);
    while (!bad && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n > ALERT_SECRET_MAX ? ALERT_SECRET_MAX : n] = '\0';
    if (bad || n == 0) {
        errbuf_printf(errbuf, errlen, "%s: %s is %s", ref, path,
                      n == 0 ? "empty" : "unreadable, larger than 64 KiB or holds a NUL byte");
        alert_wipe_free(buf);
        buf = NULL;
    }
    mem_free(path);
    return buf;
}

char *alert_send_resolve(const char *ref, const char *secrets_dir, char *errbuf, size_t errlen)
{
    if (!strncmp(ref, "env:", 4)) {
        const char *v = getenv(ref + 4);
        if (!v || !*v) {
            errbuf_printf(errbuf, errlen, "%s: the variable is not set on this process", ref);
            return NULL;
        }
        return mem_strdup(v);
    }
    if (!strncmp(ref, "file:", 5)) {
        const char *name = ref + 5;
        if (!*name || strchr(name, '/') || name[0] == '.') {
            errbuf_printf(errbuf, errlen, "%s: not a file name inside --alert-secrets-dir", ref);
            return NULL;
        }
        return alert_read_secret(ref, secrets_dir, name, errbuf, errlen);
    }
    return mem_strdup(ref);
}

/* What a send collects: the receiver's answer, and the secrets to keep out
 * of it and of the error. */
typedef struct alert_ctx {
    const alert_send_conf *conf;
    char body[ALERT_RESPONSE_KEEP + 1];
    size_t got;
    const char *upload; /* e-mail: what is left to send */
    size_t upload_left;
    const char *secrets[ALERT_MAX_SECRETS];
    size_t nsecrets;
    char *url, *headers; /* resolved; owned, wiped when the send is over */
} alert_ctx;

static size_t alert_on_body(char *p, size_t size, size_t n, void *arg)
{
    alert_ctx *x = arg;
    size_t len = size * n, room = ALERT_RESPONSE_KEEP - x->got;
    size_t k = len < room ? len : room;
    memcpy(x->body + x->got, p, k);
    x->got += k;
    x->body[x->got] = '\0';
    return len;
}

static size_t alert_on_read(char *p, size_t size, size_t n, void *arg)
{
    alert_ctx *x = arg;
    size_t room = size * n, k = x->upload_left < room ? x->upload_left : room;
    memcpy(p, x->upload, k);
    x->upload += k;
    x->upload_left -= k;
    return k;
}

static int alert_on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    const alert_ctx *x = arg;
    return x->conf->stop && *x->conf->stop ? 1 : 0;
}

/* Header lines "Name: value" from headers_from, appended to *h; their
 * values become secrets of x. */
static int alert_headers(alert_ctx *x, const char *ref, struct curl_slist **h, char *errbuf,
                         size_t errlen)
{
    x->headers = alert_send_resolve(ref, x->conf->secrets_dir, errbuf, errlen);
    if (!x->headers)
        return -1;
    int line = 0;
    for (char *save = NULL, *l = strtok_r(x->headers, "\r\n", &save); l;
         l = strtok_r(NULL, "\r\n", &save)) {
        line++;
        size_t nl = strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-");
        if (nl == 0 || l[nl] != ':' || x->nsecrets + 1 >= ALERT_MAX_SECRETS) {
            errbuf_printf(errbuf, errlen,
                          "%s: line %d is not \"Name: value\" (or more than 32 lines)", ref, line);
            return -1;
        }
        const char *v = l + nl + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v)
            x->secrets[x->nsecrets++] = v;
        *h = curl_slist_append(*h, l);
    }
    return 0;
}

/* Settings every transfer shares. */
static void alert_curl_common(CURL *e, alert_ctx *x, const alert_msg *m, char *cerr)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)m->timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, alert_on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, alert_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (x->conf->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, x->conf->ca_file);
}

/* The outcome of curl_easy_perform as ALERT_SEND_*, with words. */
static int alert_curl_outcome(alert_ctx *x, CURLcode cc, const char *cerr, char *errbuf,
                              size_t errlen)
{
    if (cc == CURLE_ABORTED_BY_CALLBACK && x->conf->stop && *x->conf->stop)
        return ALERT_SEND_STOPPED;
    errbuf_printf(errbuf, errlen, "%s", *cerr ? cerr : curl_easy_strerror(cc));
    return ALERT_SEND_FAILED;
}

/* The first line of what the receiver said, control characters as blanks. */
static void alert_answer(alert_ctx *x, const char *proto, long code, char *response, size_t rlen)
{
    char *s = x->body;
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    snprintf(response, rlen, "%s %ld%s%.300s", proto, code, *s ? ": " : "", s);
}

static int alert_http(alert_ctx *x, const alert_msg *m, char *response, size_t rlen, char *errbuf,
                      size_t errlen)
{
    char *url = x->url = alert_send_resolve(m->target, x->conf->secrets_dir, errbuf, errlen);
    if (!url)
        return ALERT_SEND_FAILED;
    if (strcmp(url, m->target))
        x->secrets[x->nsecrets++] = url; /* it came from a reference */
    int rc = ALERT_SEND_FAILED;
    char cerr[CURL_ERROR_SIZE] = "", line[160];
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json; charset=utf-8");
    h = curl_slist_append(h, "Expect:");
    snprintf(line, sizeof line, "Idempotency-Key: %lld", m->event_id);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Dagq-Event-Id: %lld", m->event_id);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Dagq-Event: %.100s", m->event);
    h = curl_slist_append(h, line);
    CURL *e = NULL;
    if (m->headers_from && alert_headers(x, m->headers_from, &h, errbuf, errlen))
        goto out;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        errbuf_printf(errbuf, errlen, "target %s: not an http:// or https:// URL", m->target);
        goto out;
    }
    e = curl_easy_init();
    alert_curl_common(e, x, m, cerr);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "dagq-alerts/1");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, m->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(m->body));
    CURLcode cc = curl_easy_perform(e);
    if (cc != CURLE_OK) {
        rc = alert_curl_outcome(x, cc, cerr, errbuf, errlen);
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    alert_answer(x, "HTTP", code, response, rlen);
    if (code >= 200 && code < 300)
        rc = ALERT_SEND_OK;
    else
        errbuf_printf(errbuf, errlen, "the receiver answered %s", response);
out:
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return rc;
}

static int alert_smtp(alert_ctx *x, const alert_msg *m, char *response, size_t rlen, char *errbuf,
                      size_t errlen)
{
    const alert_send_conf *c = x->conf;
    if (!c->smtp_url || !*c->smtp_url || !c->smtp_from || !*c->smtp_from) {
        errbuf_printf(errbuf, errlen, "e-mail needs --smtp-url and --smtp-from on this process");
        return ALERT_SEND_FAILED;
    }
    char cerr[CURL_ERROR_SIZE] = "", from[512];
    snprintf(from, sizeof from, "<%s>", c->smtp_from);
    struct curl_slist *rcpt = NULL;
    char *to = mem_strdup(m->target);
    for (char *save = NULL, *a = strtok_r(to, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        while (*a == ' ')
            a++;
        char *end = a + strlen(a);
        while (end > a && end[-1] == ' ')
            *--end = '\0';
        char *r = mem_printf("<%s>", a);
        rcpt = curl_slist_append(rcpt, r);
        mem_free(r);
    }
    mem_free(to);
    char *mail = mem_printf("From: %s\r\n%s", c->smtp_from, m->body);
    x->upload = mail;
    x->upload_left = strlen(mail);
    if (c->smtp_password)
        x->secrets[x->nsecrets++] = c->smtp_password;

    CURL *e = curl_easy_init();
    alert_curl_common(e, x, m, cerr);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_URL, c->smtp_url);
    curl_easy_setopt(e, CURLOPT_USE_SSL,
                     (long)(c->smtp_starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
    if (c->smtp_user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, c->smtp_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->smtp_password ? c->smtp_password : "");
    }
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, alert_on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->upload_left);
    CURLcode cc = curl_easy_perform(e);
    int rc;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (cc == CURLE_OK) {
        snprintf(response, rlen, "SMTP %ld", code);
        rc = ALERT_SEND_OK;
    } else {
        rc = alert_curl_outcome(x, cc, cerr, errbuf, errlen);
        if (code)
            snprintf(response, rlen, "SMTP %ld", code);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(rcpt);
    mem_free(mail);
    return rc;
}

/* buf with every secret of x replaced by ***, in place. */
static void alert_redact(const alert_ctx *x, char *buf, size_t len)
{
    if (!buf || !len || !*buf)
        return;
    char *r = redact_secret_in(buf, x->secrets, x->nsecrets);
    char *t = redact_text(r);
    snprintf(buf, len, "%s", t);
    mem_free(r);
    mem_free(t);
}

int alert_send(const alert_send_conf *c, const alert_msg *m, char *response, size_t rlen,
               char *errbuf, size_t errlen)
{
    alert_ctx x = {.conf = c};
    response[0] = '\0';
    if (errbuf && errlen)
        errbuf[0] = '\0';
    int rc;
    if (!strcmp(m->kind, "webhook") || !strcmp(m->kind, "slack"))
        rc = alert_http(&x, m, response, rlen, errbuf, errlen);
    else if (!strcmp(m->kind, "email"))
        rc = alert_smtp(&x, m, response, rlen, errbuf, errlen);
    else if (!strcmp(m->kind, "command"))
        rc = alert_command_run(m->target, m->env, m->nenv, m->body, m->timeout_ms, c->stop,
                               response, rlen, errbuf, errlen);
    else {
        errbuf_printf(errbuf, errlen, "unknown channel kind \"%s\"", m->kind);
        rc = ALERT_SEND_FAILED;
    }
    alert_redact(&x, response, rlen);
    alert_redact(&x, errbuf, errlen);
    alert_wipe_free(x.url);
    alert_wipe_free(x.headers);
    return rc;
}

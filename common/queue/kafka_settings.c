#include "kafka_settings.h"

#include "errbuf.h"
#include "mem.h"
#include "queue_url.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

extern char **environ;

#define KQ_URL_FORM "kafka://host:port[,host:port...]"

/* dagq's own DAGQ_KAFKA_* options: not librdkafka properties. */
static const char *const kq_settings_own_env[] = {"CONF", "TOPIC_PREFIX", "PARTITIONS",
                                                  "REPLICATION"};

/* One host:port of the list, s[0..n): 0, or -1 with why. */
static int kq_settings_server(const char *s, size_t n, char *why, size_t whylen)
{
    if (n == 0) {
        errbuf_printf(why, whylen, "an empty host:port");
        return -1;
    }
    char *host = NULL;
    int port = 0;
    if (memchr(s, '@', n) || memchr(s, '/', n) || memchr(s, '?', n) || memchr(s, '#', n) ||
        memchr(s, ' ', n) || memchr(s, '\t', n)) {
        errbuf_printf(why, whylen, "\"%.*s\" is not host:port (no user, path or query allowed)",
                      (int)n, s);
        return -1;
    }
    char inner[256];
    if (queue_url__hostport(s, n, 0, &host, &port, inner, sizeof inner)) {
        errbuf_printf(why, whylen, "\"%.*s\": %s", (int)n, s, inner);
        return -1;
    }
    mem_free(host);
    return 0;
}

/* The bootstrap.servers list of a kafka:// URL, or NULL with the reason. */
static char *kq_settings_url(const char *url, char *errbuf, size_t errlen)
{
    static const char scheme[] = "kafka://";
    char shown[512], why[512] = "";
    queue_url_redact(url ? url : "", shown, sizeof shown);
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        errbuf_printf(errbuf, errlen, "broker URL \"%s\": must start with kafka://", shown);
        return NULL;
    }
    const char *rest = url + sizeof scheme - 1;
    size_t n = strlen(rest);
    if (n && rest[n - 1] == '/')
        n--; /* kafka://host:port/ is forgiven */
    if (n == 0)
        errbuf_printf(why, sizeof why, "no host:port");
    for (const char *p = rest, *end = rest + n; !why[0] && p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (kq_settings_server(p, (size_t)(e - p), why, sizeof why) == 0 && comma &&
            comma + 1 == end)
            errbuf_printf(why, sizeof why, "ends with a comma");
        p = comma ? comma + 1 : end;
    }
    if (why[0]) {
        errbuf_printf(errbuf, errlen, "broker URL \"%s\": %s; expected " KQ_URL_FORM, shown, why);
        return NULL;
    }
    return mem_strndup(rest, n);
}

int kq_settings__url_check(const char *url, char *errbuf, size_t errlen)
{
    char *list = kq_settings_url(url, errbuf, errlen);
    if (!list)
        return QUEUE_EINVAL;
    mem_free(list);
    return QUEUE_OK;
}

int kq_settings__topic_name(const kq_settings *s, const char *group, char **out, char *errbuf,
                            size_t errlen)
{
    *out = NULL;
    if (!strcmp(group, KQ_DEAD_LETTER)) {
        errbuf_printf(errbuf, errlen,
                      "kafka: worker group \"%s\" is reserved: its topic %s%s holds dead letters",
                      group, s->prefix, group);
        return QUEUE_EINVAL;
    }
    char *t = mem_printf("%s%s", s->prefix, group);
    size_t n = strlen(t);
    bool ok = n >= 1 && n <= 249 && strcmp(t, ".") && strcmp(t, "..");
    for (const char *p = t; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
    if (!ok) {
        errbuf_printf(errbuf, errlen,
                      "kafka: topic name \"%s\" (prefix + worker group) is not a valid Kafka "
                      "topic: 1-249 of A-Z a-z 0-9 . _ -",
                      t);
        mem_free(t);
        return QUEUE_EINVAL;
    }
    *out = t;
    return QUEUE_OK;
}

void kq_settings__free(kq_settings *s)
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

/* Takes key, value and origin. */
static void kq_settings_add(kq_settings *s, char *key, char *value, char *origin)
{
    s->props = mem_realloc(s->props, sizeof *s->props * (size_t)(s->n_props + 1));
    s->props[s->n_props++] = (kq_prop){key, value, origin};
}

void kq_settings__copy(kq_settings *d, const kq_settings *s)
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

/* The DAGQ_KAFKA_<NAME> variables that name properties. */
static int kq_settings_env(kq_settings *s, char *errbuf, size_t errlen)
{
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
        for (size_t i = 0; i < sizeof kq_settings_own_env / sizeof kq_settings_own_env[0]; i++)
            own |= strlen(kq_settings_own_env[i]) == n && !strncmp(kq_settings_own_env[i], name, n);
        if (own)
            continue;
        if (n == 0) {
            errbuf_printf(errbuf, errlen, "kafka: environment variable %.*s names no property",
                          (int)(eq - *e), *e);
            return QUEUE_EINVAL;
        }
        char *key = mem_strndup(name, n);
        for (char *k = key; *k; k++)
            *k = *k == '_' ? '.' : (char)tolower((unsigned char)*k);
        kq_settings_add(s, key, mem_strdup(eq + 1), mem_strndup(*e, (size_t)(eq - *e)));
    }
    return QUEUE_OK;
}

int kq_settings__init(kq_settings *s, const queue_conf *conf, char *errbuf, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->bootstrap = kq_settings_url(conf->broker_url, errbuf, errlen);
    if (!s->bootstrap)
        return QUEUE_EINVAL;
    s->prefix = mem_strdup(conf->kafka_topic_prefix ? conf->kafka_topic_prefix : "dagq.");
    s->client_name =
        mem_strdup(conf->client_name && *conf->client_name ? conf->client_name : "dagq");
    s->partitions = conf->kafka_partitions > 0 ? conf->kafka_partitions : 6;
    s->replication = conf->kafka_replication > 0 ? conf->kafka_replication : 1;
    if (kq_settings_env(s, errbuf, errlen)) {
        kq_settings__free(s);
        return QUEUE_EINVAL;
    }
    for (int i = 0; i < conf->n_kafka_props; i++) {
        const char *kv = conf->kafka_props[i];
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq == kv) {
            errbuf_printf(errbuf, errlen,
                          "kafka property \"%s\" (--kafka-conf): expected key=value", kv ? kv : "");
            kq_settings__free(s);
            return QUEUE_EINVAL;
        }
        kq_settings_add(s, mem_strndup(kv, (size_t)(eq - kv)), mem_strdup(eq + 1),
                        mem_strdup("--kafka-conf"));
    }
    return QUEUE_OK;
}

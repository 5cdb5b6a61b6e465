#include "config.h"

#include "log.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void config_env_name(const char *name, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "DAGQ_");
    for (const char *p = name; *p && n + 1 < len; p++)
        buf[n++] = (*p == '-') ? '_' : (char)toupper((unsigned char)*p);
    buf[n < len ? n : len - 1] = '\0';
}

void config_list_free(config_list *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        mem_free(l->items[i]);
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void config_list_add(config_list *l, const char *s, size_t n)
{
    l->items = mem_realloc(l->items, sizeof(char *) * (size_t)(l->n + 1));
    l->items[l->n++] = mem_strndup(s, n);
}

/* Sets one option from text; `from` names the source for errors. */
static int config_set(const config_option *o, const char *val, const char *from, char *errbuf,
                      size_t errlen)
{
    switch (o->type) {
    case CONFIG_STRING: {
        char **t = o->target;
        mem_free(*t);
        *t = mem_strdup(val);
        return 0;
    }
    case CONFIG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end) {
            snprintf(errbuf, errlen, "%s: --%s wants a whole number, got \"%s\"", from, o->name,
                     val);
            return CONFIG_ERR;
        }
        if ((o->min || o->max) && (v < o->min || v > o->max)) {
            snprintf(errbuf, errlen, "%s: --%s must be between %lld and %lld, got %lld", from,
                     o->name, o->min, o->max, v);
            return CONFIG_ERR;
        }
        *(long long *)o->target = v;
        return 0;
    }
    case CONFIG_FLAG: {
        int *t = o->target;
        if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") ||
            !strcasecmp(val, "on"))
            *t = 1;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") ||
                 !strcasecmp(val, "off") || !*val)
            *t = 0;
        else {
            snprintf(errbuf, errlen, "%s: --%s wants true or false, got \"%s\"", from, o->name,
                     val);
            return CONFIG_ERR;
        }
        return 0;
    }
    case CONFIG_LIST: {
        config_list *l = o->target;
        const char *p = val;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            if (n)
                config_list_add(l, p, n);
            if (!c)
                break;
            p = c + 1;
        }
        return 0;
    }
    }
    return 0;
}

static void config_reset(const config_option *o)
{
    switch (o->type) {
    case CONFIG_STRING:
        mem_free(*(char **)o->target);
        *(char **)o->target = NULL;
        break;
    case CONFIG_INT:
        *(long long *)o->target = 0;
        break;
    case CONFIG_FLAG:
        *(int *)o->target = 0;
        break;
    case CONFIG_LIST:
        config_list_free(o->target);
        break;
    }
}

int config_load(const config_option *opts, int argc, char **argv, config_list *positional,
                char *errbuf, size_t errlen)
{
    char env[128];
    positional->items = NULL;
    positional->n = 0;
    for (const config_option *o = opts; o->name; o++) {
        config_reset(o);
        if (o->defval && config_set(o, o->defval, "default", errbuf, errlen))
            return CONFIG_ERR;
        config_env_name(o->name, env, sizeof env);
        const char *ev = getenv(env);
        if (ev && *ev) {
            if (o->type == CONFIG_LIST)
                config_list_free(o->target);
            char from[160];
            snprintf(from, sizeof from, "environment %s", env);
            if (config_set(o, ev, from, errbuf, errlen))
                return CONFIG_ERR;
        }
    }
    /* lists given on the command line replace those from default/env */
    unsigned char *cleared = mem_calloc(256, 1);
    int rc = CONFIG_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            rc = CONFIG_HELP;
            goto out;
        }
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                config_list_add(positional, argv[i], strlen(argv[i]));
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            config_list_add(positional, a, strlen(a));
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const config_option *o = NULL;
        int idx = 0;
        for (const config_option *p = opts; p->name; p++, idx++) {
            if (strlen(p->name) == nlen && !strncmp(p->name, name, nlen)) {
                o = p;
                break;
            }
        }
        if (!o) {
            snprintf(errbuf, errlen, "unknown option --%.*s (see --help)", (int)nlen, name);
            rc = CONFIG_ERR;
            goto out;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == CONFIG_FLAG)
            val = "1";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(errbuf, errlen, "option --%s needs a value", o->name);
            rc = CONFIG_ERR;
            goto out;
        }
        if (o->type == CONFIG_LIST && idx < 256 && !cleared[idx]) {
            config_list_free(o->target);
            cleared[idx] = 1;
        }
        if (o->type == CONFIG_LIST) {
            config_list_add(o->target, val, strlen(val)); /* one item per flag */
            continue;
        }
        if (config_set(o, val, "command line", errbuf, errlen)) {
            rc = CONFIG_ERR;
            goto out;
        }
    }
out:
    mem_free(cleared);
    return rc;
}

void config_usage(FILE *out, const config_option *opts)
{
    char env[128];
    for (const config_option *o = opts; o->name; o++) {
        const char *arg = o->type == CONFIG_FLAG ? "" : o->type == CONFIG_INT ? " N" : " VALUE";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        config_env_name(o->name, env, sizeof env);
        fprintf(out, "  %-26s %s\n  %-26s (env %s%s%s%s)\n", left, o->help, "", env,
                o->defval ? ", default " : "", o->defval ? o->defval : "",
                o->type == CONFIG_LIST ? ", repeatable" : "");
    }
}

void config_free(const config_option *opts)
{
    for (const config_option *o = opts; o->name; o++)
        config_reset(o);
}

int config_load_daemon(const config_option *opts, int argc, char **argv, char *const *log_level,
                       char *errbuf, size_t errlen)
{
    config_list pos;
    int rc = config_load(opts, argc, argv, &pos, errbuf, errlen);
    if (rc == CONFIG_OK && pos.n > 0) {
        snprintf(errbuf, errlen, "unexpected argument \"%s\" (see --help)", pos.items[0]);
        rc = CONFIG_ERR;
    }
    config_list_free(&pos);
    if (rc == CONFIG_OK && log_set_level_name(*log_level ? *log_level : "")) {
        snprintf(errbuf, errlen, "--log-level must be debug, info, warn or error, got \"%s\"",
                 *log_level ? *log_level : "");
        rc = CONFIG_ERR;
    }
    return rc;
}

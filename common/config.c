#include "config.h"

#include "log.h"
#include "mem.h"
#include "redact.h"

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

/* Sets one option from text; `from` names the source for errors. Only the
 * value of a number or a flag is quoted in an error: a string, and so a
 * secret, cannot be wrong here. */
static int config_set(const config_option *o, const char *val, const char *from, char *errbuf,
                      size_t errlen)
{
    switch (o->type) {
    case CONFIG_STRING:
    case CONFIG_SECRET: {
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
    case CONFIG_SECRET: {
        char *v = *(char **)o->target;
        if (v)
            explicit_bzero(v, strlen(v));
    } /* fall through */
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

#define CONFIG_FILE_MAX (64 * 1024)

/* Sets secret o from the file at path; from names where the path came from.
 * The content never goes into errbuf. */
static int config_set_file(const config_option *o, const char *path, const char *from, char *errbuf,
                           size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open %s: %s", from, path, strerror(errno));
        return CONFIG_ERR;
    }
    char *buf = mem_alloc(CONFIG_FILE_MAX + 1);
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int rc = CONFIG_ERR;
    if (ferror(f))
        snprintf(errbuf, errlen, "%s: cannot read %s: %s", from, path, strerror(errno));
    else if (n > CONFIG_FILE_MAX)
        snprintf(errbuf, errlen, "%s: %s is larger than %d bytes", from, path, CONFIG_FILE_MAX);
    else if (memchr(buf, '\0', n))
        snprintf(errbuf, errlen, "%s: %s holds a NUL byte", from, path);
    else
        rc = CONFIG_OK;
    while (rc == CONFIG_OK && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (rc == CONFIG_OK && n == 0) {
        snprintf(errbuf, errlen, "%s: %s is empty", from, path);
        rc = CONFIG_ERR;
    }
    if (rc == CONFIG_OK) {
        buf[n] = '\0';
        rc = config_set(o, buf, from, errbuf, errlen);
    }
    explicit_bzero(buf, CONFIG_FILE_MAX + 1);
    mem_free(buf);
    fclose(f);
    return rc;
}

/* The environment's say for o: DAGQ_NAME, or for a secret DAGQ_NAME_FILE. */
static int config_from_env(const config_option *o, char *errbuf, size_t errlen)
{
    char env[128], envf[140], from[160];
    config_env_name(o->name, env, sizeof env);
    snprintf(envf, sizeof envf, "%s_FILE", env);
    const char *ev = getenv(env);
    const char *fv = o->type == CONFIG_SECRET ? getenv(envf) : NULL;
    ev = ev && *ev ? ev : NULL;
    fv = fv && *fv ? fv : NULL;
    if (ev && fv) {
        snprintf(errbuf, errlen, "both %s and %s are set; set one of them", env, envf);
        return CONFIG_ERR;
    }
    if (!ev && !fv)
        return CONFIG_OK;
    if (o->type == CONFIG_LIST)
        config_list_free(o->target);
    snprintf(from, sizeof from, "environment %s", fv ? envf : env);
    return fv ? config_set_file(o, fv, from, errbuf, errlen)
              : config_set(o, ev, from, errbuf, errlen);
}

/* The option --name[0..nlen) names, or NULL; *file is set for a secret's
 * --name-file. */
static const config_option *config_find(const config_option *opts, const char *name, size_t nlen,
                                        int *file)
{
    *file = 0;
    for (const config_option *p = opts; p->name; p++)
        if (strlen(p->name) == nlen && !strncmp(p->name, name, nlen))
            return p;
    if (nlen <= 5 || strncmp(name + nlen - 5, "-file", 5) != 0)
        return NULL;
    for (const config_option *p = opts; p->name; p++) {
        if (p->type == CONFIG_SECRET && strlen(p->name) == nlen - 5 &&
            !strncmp(p->name, name, nlen - 5)) {
            *file = 1;
            return p;
        }
    }
    return NULL;
}

enum { GIVEN_VALUE = 1, GIVEN_FILE = 2 }; /* how an option was given on the command line */

/* One option of the command line, at argv[*i]; *given has its flags. */
static int config_from_arg(const config_option *opts, int argc, char **argv, int *i,
                           unsigned char *given, char *errbuf, size_t errlen)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    int file;
    const config_option *o = config_find(opts, name, nlen, &file);
    if (!o) {
        char *shown = redact_text(name); /* "--postgresql://u:pw@h" is an unknown option too */
        snprintf(errbuf, errlen, "unknown option --%.*s (see --help)",
                 (int)(eq ? strcspn(shown, "=") : strlen(shown)), shown);
        mem_free(shown);
        return CONFIG_ERR;
    }
    const char *val;
    if (eq)
        val = eq + 1;
    else if (o->type == CONFIG_FLAG)
        val = "1";
    else if (*i + 1 < argc)
        val = argv[++*i];
    else {
        snprintf(errbuf, errlen, "option --%s%s needs a value", o->name, file ? "-file" : "");
        return CONFIG_ERR;
    }
    unsigned char *g = &given[o - opts];
    if (*g & (file ? GIVEN_VALUE : GIVEN_FILE)) {
        snprintf(errbuf, errlen, "both --%s and --%s-file given; give one of them", o->name,
                 o->name);
        return CONFIG_ERR;
    }
    if (o->type == CONFIG_LIST) {
        if (!*g) /* lists given on the command line replace those from default/env */
            config_list_free(o->target);
        *g |= GIVEN_VALUE;
        config_list_add(o->target, val, strlen(val)); /* one item per flag */
        return CONFIG_OK;
    }
    *g |= file ? GIVEN_FILE : GIVEN_VALUE;
    if (file)
        return config_set_file(o, val, "command line", errbuf, errlen);
    return config_set(o, val, "command line", errbuf, errlen);
}

int config_load(const config_option *opts, int argc, char **argv, config_list *positional,
                char *errbuf, size_t errlen)
{
    positional->items = NULL;
    positional->n = 0;
    size_t nopts = 0;
    for (const config_option *o = opts; o->name; o++, nopts++) {
        config_reset(o);
        if (o->defval && config_set(o, o->defval, "default", errbuf, errlen))
            return CONFIG_ERR;
        if (config_from_env(o, errbuf, errlen))
            return CONFIG_ERR;
    }
    unsigned char *given = mem_calloc(nopts + 1, 1);
    int rc = CONFIG_OK;
    for (int i = 1; i < argc && rc == CONFIG_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            rc = CONFIG_HELP;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                config_list_add(positional, argv[i], strlen(argv[i]));
        } else if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            config_list_add(positional, a, strlen(a));
        } else {
            rc = config_from_arg(opts, argc, argv, &i, given, errbuf, errlen);
        }
    }
    mem_free(given);
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
        if (o->type == CONFIG_SECRET) {
            char leftf[80];
            snprintf(leftf, sizeof leftf, "--%s-file PATH", o->name);
            fprintf(out, "  %-26s %s\n  %-26s (env %s; or read from a file: %s, env %s_FILE%s)\n",
                    left, o->help, "", env, leftf, env,
                    o->defval ? "; a default is set, not shown: it is secret" : "");
            continue;
        }
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
        char *shown = redact_text(pos.items[0]);
        snprintf(errbuf, errlen, "unexpected argument \"%s\" (see --help)", shown);
        mem_free(shown);
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

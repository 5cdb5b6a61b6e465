/* config — each program's options as one table (PgBouncer's habit):
 * name, type, default, help. Every option `--some-name` can also be set by the
 * environment variable `DAGQ_SOME_NAME`; the command line wins over the
 * environment, which wins over the default. A list option is repeatable on
 * the command line and comma-separated in the environment.
 *
 * A secret option (CONFIG_SECRET: a password, a URL that may hold one) can
 * also be read from a file, the `*_FILE` convention of Docker and Kubernetes
 * secrets: `--some-name-file PATH` on the command line, `DAGQ_SOME_NAME_FILE`
 * in the environment. The file's content is the value, without its trailing
 * newlines (\n or \r\n); an unreadable, empty or oversized file is an error
 * that names the file, never its content. A file is one more way to give the
 * value at its level, so the order stays: command line (--some-name or
 * --some-name-file) > environment (DAGQ_SOME_NAME or DAGQ_SOME_NAME_FILE) >
 * default. Giving both forms at one level is an error. --help shows neither a
 * secret's value nor its default, and no error quotes it. */
#ifndef DAGQ_CONFIG_H
#define DAGQ_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CONFIG_STRING,
    CONFIG_INT,
    CONFIG_LIST,
    CONFIG_FLAG,
    CONFIG_SECRET, /* a string that is a secret: see above */
} config_type;

typedef struct config_list {
    char **items; /* owned; freed by config_free */
    int n;
} config_list;

typedef struct config_option {
    const char *name; /* long option without dashes: "database-url" */
    config_type type;
    const char *defval; /* default as text; NULL: unset (string NULL, int 0, empty list) */
    const char *help;
    void *target;       /* char ** (string, secret) | long long * | config_list * | int * (flag) */
    long long min, max; /* bounds for CONFIG_INT (ignored when min == max == 0) */
} config_option;

#define CONFIG_OK 0
#define CONFIG_HELP 1 /* --help or -h was given */
#define CONFIG_ERR (-1)

/* Fills every target from defaults, then the environment, then argv[1..].
 * Arguments that are not options are returned in *positional (owned by the
 * caller, free with config_list_free). The table ends with a {NULL} row.
 * Returns CONFIG_OK, CONFIG_HELP, or CONFIG_ERR with the problem in errbuf
 * (which quotes no secret: an argument it quotes is passed through
 * redact_text first). */
int config_load(const config_option *opts, int argc, char **argv, config_list *positional,
                char *errbuf, size_t errlen);

/* Prints the option table: `--name VALUE  (env DAGQ_NAME, default X)  help`;
 * a secret also with its file forms, and without its default. */
void config_usage(FILE *out, const config_option *opts);

/* Frees what config_load allocated into the targets (secrets are wiped). */
void config_free(const config_option *opts);
void config_list_free(config_list *l);

/* What a daemon does first: config_load, no positional arguments allowed,
 * the log level set from *log_level. Returns CONFIG_OK, CONFIG_HELP, or
 * CONFIG_ERR with the problem in errbuf. */
int config_load_daemon(const config_option *opts, int argc, char **argv, char *const *log_level,
                       char *errbuf, size_t errlen);

/* "DAGQ_" + upper(name) with '-' as '_', written into buf. */
void config_env_name(const char *name, char *buf, size_t len);

#endif

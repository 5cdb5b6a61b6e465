#include "config.h"
#include "mem.h"
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *o_db, *o_name;
static long long o_slots;
static config_list o_groups;
static int o_flag;

static const config_option opts[] = {
    {"db-url", CONFIG_SECRET, "postgresql://dflt:dfltpw@h/db", "the metastore", &o_db},
    {"name", CONFIG_STRING, "n0", "a name", &o_name},
    {"slots", CONFIG_INT, "4", "slots", &o_slots, 1, 64},
    {"group", CONFIG_LIST, "default", "groups", &o_groups},
    {"flag", CONFIG_FLAG, NULL, "a flag", &o_flag},
    {NULL},
};

static char dir[] = "/tmp/dagq-test-config-XXXXXX";

/* A file in the scratch directory with content (n bytes); returns its path. */
static const char *file_with(const char *name, const char *content, size_t n)
{
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(content, 1, n, f) != n || fclose(f) != 0)
        TEST_FAIL_AT("cannot write %s", p);
    return p;
}

#define FILE_WITH(name, s) file_with((name), (s), sizeof(s) - 1)

static void clear_env(void)
{
    unsetenv("DAGQ_DB_URL");
    unsetenv("DAGQ_DB_URL_FILE");
    unsetenv("DAGQ_NAME");
    unsetenv("DAGQ_NAME_FILE");
    unsetenv("DAGQ_SLOTS");
    unsetenv("DAGQ_GROUP");
}

/* config_load with the arguments (NULL-terminated, after argv[0]). */
static int load(char *errbuf, const char *first, ...)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    config_list pos;
    errbuf[0] = '\0';
    int rc = config_load(opts, argc, argv, &pos, errbuf, 512);
    config_list_free(&pos);
    return rc;
}

TEST(precedence)
{
    char err[512];
    clear_env();
    ASSERT_EQ(load(err, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "postgresql://dflt:dfltpw@h/db");
    ASSERT_STR_EQ(o_name, "n0");

    /* environment over the default, as a value or from a file */
    setenv("DAGQ_DB_URL", "from-env", 1);
    ASSERT_EQ(load(err, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "from-env");
    unsetenv("DAGQ_DB_URL");
    setenv("DAGQ_DB_URL_FILE", FILE_WITH("envfile", "from-env-file\n"), 1);
    ASSERT_EQ(load(err, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "from-env-file");

    /* the command line over the environment, either form over either form */
    ASSERT_EQ(load(err, "--db-url", "from-cli", NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "from-cli");
    ASSERT_EQ(load(err, "--db-url-file", FILE_WITH("clifile", "from-cli-file"), NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "from-cli-file");
    unsetenv("DAGQ_DB_URL_FILE");
    setenv("DAGQ_DB_URL", "from-env", 1);
    ASSERT_EQ(load(err,
                   "--db-url-file="
                   "/dev/null",
                   NULL),
              CONFIG_ERR); /* empty */
    char arg[300];
    snprintf(arg, sizeof arg, "--db-url-file=%s", FILE_WITH("eqfile", "from-cli-eq\r\n"));
    ASSERT_EQ(load(err, arg, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "from-cli-eq");
    /* the last of one form wins, as for any option */
    ASSERT_EQ(load(err, "--db-url", "a", "--db-url=b", NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "b");
    clear_env();
    config_free(opts);
    ASSERT_TRUE(o_db == NULL && o_name == NULL);
}

TEST(file_contents)
{
    char err[512];
    clear_env();
    /* trailing newlines go, inner ones and other blanks stay */
    ASSERT_EQ(load(err, "--db-url-file", FILE_WITH("nl", "pw \n\n"), NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "pw ");
    ASSERT_EQ(load(err, "--db-url-file", FILE_WITH("crlf", "pw\r\n"), NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "pw");
    ASSERT_EQ(load(err, "--db-url-file", FILE_WITH("multi", "line1\nline2\n"), NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "line1\nline2");
    ASSERT_EQ(load(err, "--db-url-file", FILE_WITH("nonl", "  p'w\"\\ "), NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "  p'w\"\\ ");
    /* the largest file taken */
    size_t big = 64 * 1024;
    char *b = mem_alloc(big + 1);
    memset(b, 'x', big + 1);
    ASSERT_EQ(load(err, "--db-url-file", file_with("big", b, big), NULL), CONFIG_OK);
    ASSERT_EQ(strlen(o_db), big);
    ASSERT_EQ(load(err, "--db-url-file", file_with("bigger", b, big + 1), NULL), CONFIG_ERR);
    ASSERT_CONTAINS(err, "is larger than 65536 bytes");
    mem_free(b);
    config_free(opts);
}

/* err must name the file and hold none of secret. */
static void expect_file_err(const char *err, const char *path, const char *why, const char *secret)
{
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, why);
    if (secret && strstr(err, secret))
        TEST_FAIL_AT("\"%s\" quotes the file's content", err);
}

TEST(file_errors)
{
    char err[512], missing[300];
    clear_env();
    snprintf(missing, sizeof missing, "%s/missing", dir);
    ASSERT_EQ(load(err, "--db-url-file", missing, NULL), CONFIG_ERR);
    expect_file_err(err, missing, "command line: cannot open", NULL);
    ASSERT_CONTAINS(err, "No such file or directory");

    ASSERT_EQ(load(err, "--db-url-file", dir, NULL), CONFIG_ERR);
    expect_file_err(err, dir, "cannot read", NULL);

    const char *p = FILE_WITH("empty", "");
    ASSERT_EQ(load(err, "--db-url-file", p, NULL), CONFIG_ERR);
    expect_file_err(err, p, "is empty", NULL);
    p = FILE_WITH("newlines", "\n\r\n");
    ASSERT_EQ(load(err, "--db-url-file", p, NULL), CONFIG_ERR);
    expect_file_err(err, p, "is empty", NULL);
    p = FILE_WITH("nul", "s3cret\0more");
    ASSERT_EQ(load(err, "--db-url-file", p, NULL), CONFIG_ERR);
    expect_file_err(err, p, "holds a NUL byte", "s3cret");

    setenv("DAGQ_DB_URL_FILE", missing, 1);
    ASSERT_EQ(load(err, NULL), CONFIG_ERR);
    expect_file_err(err, missing, "environment DAGQ_DB_URL_FILE: cannot open", NULL);
    /* the command line does not rescue a broken environment */
    ASSERT_EQ(load(err, "--db-url", "x", NULL), CONFIG_ERR);
    clear_env();

    /* only a secret has a file form */
    ASSERT_EQ(load(err, "--name-file", FILE_WITH("name", "n"), NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "unknown option --name-file (see --help)");
    setenv("DAGQ_NAME_FILE", FILE_WITH("name2", "n2"), 1);
    ASSERT_EQ(load(err, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_name, "n0"); /* DAGQ_NAME_FILE means nothing */
    ASSERT_EQ(load(err, "--db-url-file", NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "option --db-url-file needs a value");
    clear_env();
    config_free(opts);
}

TEST(both_forms_is_an_error)
{
    char err[512];
    clear_env();
    const char *p = FILE_WITH("pw", "filepw");
    setenv("DAGQ_DB_URL", "envpw", 1);
    setenv("DAGQ_DB_URL_FILE", p, 1);
    ASSERT_EQ(load(err, NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "both DAGQ_DB_URL and DAGQ_DB_URL_FILE are set; set one of them");
    clear_env();
    ASSERT_EQ(load(err, "--db-url", "clipw", "--db-url-file", p, NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "both --db-url and --db-url-file given; give one of them");
    ASSERT_EQ(load(err, "--db-url-file", p, "--db-url=clipw", NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "both --db-url and --db-url-file given; give one of them");
    /* empty environment variables count as unset, as for every option */
    setenv("DAGQ_DB_URL", "", 1);
    setenv("DAGQ_DB_URL_FILE", p, 1);
    ASSERT_EQ(load(err, NULL), CONFIG_OK);
    ASSERT_STR_EQ(o_db, "filepw");
    clear_env();
    config_free(opts);
}

TEST(errors_quote_no_secret)
{
    char err[512];
    clear_env();
    /* an option name that is really a URL */
    ASSERT_EQ(load(err, "--postgresql://u:hunter2@h/db", NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "unknown option --postgresql://u:***@h/db (see --help)");
    ASSERT_EQ(load(err, "--db-ur=postgresql://u:hunter2@h/db", NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "unknown option --db-ur (see --help)");
    /* a stray argument */
    config_option dopts[] = {
        {"db-url", CONFIG_SECRET, NULL, "the metastore", &o_db},
        {"log-level", CONFIG_STRING, "info", "level", &o_name},
        {NULL},
    };
    char *argv[] = {"prog", "--log-level", "info", "postgresql://u:hunter2@h/db", NULL};
    ASSERT_EQ(config_load_daemon(dopts, 4, argv, &o_name, err, sizeof err), CONFIG_ERR);
    ASSERT_STR_EQ(err, "unexpected argument \"postgresql://u:***@h/db\" (see --help)");
    char *argv2[] = {"prog", "--db-url", "password=hunter2", "--log-level", "nope", NULL};
    ASSERT_EQ(config_load_daemon(dopts, 5, argv2, &o_name, err, sizeof err), CONFIG_ERR);
    ASSERT_TRUE(!strstr(err, "hunter2"));
    config_free(dopts);
    /* numbers and flags are no secrets: their errors quote the value */
    ASSERT_EQ(load(err, "--slots", "x9", NULL), CONFIG_ERR);
    ASSERT_STR_EQ(err, "command line: --slots wants a whole number, got \"x9\"");
    config_free(opts);
}

TEST(help_shows_no_secret)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_usage(f, opts);
    fclose(f);
    ASSERT_CONTAINS(text, "--db-url VALUE");
    ASSERT_CONTAINS(text, "--db-url-file PATH");
    ASSERT_CONTAINS(text, "env DAGQ_DB_URL_FILE");
    ASSERT_CONTAINS(text, "a default is set, not shown");
    ASSERT_TRUE(!strstr(text, "dfltpw") && !strstr(text, "postgresql://"));
    ASSERT_CONTAINS(text, "default n0"); /* other defaults are shown */
    ASSERT_CONTAINS(text, "--name VALUE");
    ASSERT_TRUE(!strstr(text, "--name-file"));
    free(text);
}

TEST(other_options_unchanged)
{
    char err[512];
    clear_env();
    setenv("DAGQ_GROUP", "a,,b", 1);
    setenv("DAGQ_SLOTS", "8", 1);
    ASSERT_EQ(load(err, "--flag", NULL), CONFIG_OK);
    ASSERT_EQ(o_groups.n, 2);
    ASSERT_EQ(o_slots, 8);
    ASSERT_EQ(o_flag, 1);
    ASSERT_EQ(load(err, "--group", "x", "--group=y", "--slots=2", NULL), CONFIG_OK);
    ASSERT_EQ(o_groups.n, 2);
    ASSERT_STR_EQ(o_groups.items[0], "x");
    ASSERT_STR_EQ(o_groups.items[1], "y");
    ASSERT_EQ(o_slots, 2);
    ASSERT_EQ(load(err, "--slots", "65", NULL), CONFIG_ERR);
    ASSERT_EQ(load(err, "-h", NULL), CONFIG_HELP);
    char *argv[] = {"prog", "a", "--", "--db-url", "b", NULL};
    config_list pos;
    ASSERT_EQ(config_load(opts, 5, argv, &pos, err, sizeof err), CONFIG_OK);
    ASSERT_EQ(pos.n, 3);
    ASSERT_STR_EQ(pos.items[1], "--db-url");
    config_list_free(&pos);
    clear_env();
    config_free(opts);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(precedence);
    RUN(file_contents);
    RUN(file_errors);
    RUN(both_forms_is_an_error);
    RUN(errors_quote_no_secret);
    RUN(help_shows_no_secret);
    RUN(other_options_unchanged);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        perror(cmd);
    return TEST_DONE();
}

#include "mem.h"
#include "test.h"
#include "tmpl.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* 2024-01-31T00:00:00Z, its data interval [2024-01-30, 2024-01-31) */
#define JAN31 1706659200LL
#define JAN30 (JAN31 - 86400)

/* A full context: the date variables plus run/dag/task ids and params. */
typedef struct ctx {
    tmpl_var vars[16];
    size_t n;
    char bufs[5][40];
} ctx;

static void ctx_init(ctx *c)
{
    tmpl_date_vars(JAN31, JAN30, JAN31, c->vars, c->bufs);
    c->n = 5;
    c->vars[c->n++] = (tmpl_var){"run_id", "scheduled__2024-01-31"};
    c->vars[c->n++] = (tmpl_var){"dag_id", "etl_daily"};
    c->vars[c->n++] = (tmpl_var){"task_id", "load_orders"};
    c->vars[c->n++] = (tmpl_var){"params.table", "orders"};
    c->vars[c->n++] = (tmpl_var){"params.schema", "sales"};
}

/* Renders src in the full context and compares with want. */
#define EXPECT_RENDER(src, want)                                                                   \
    do {                                                                                           \
        ctx c_;                                                                                    \
        ctx_init(&c_);                                                                             \
        char *out_ = NULL, err_[256] = "";                                                         \
        ASSERT_EQ(tmpl_render((src), c_.vars, c_.n, &out_, err_, sizeof(err_)), 0);                \
        ASSERT_STR_EQ(err_, "");                                                                   \
        ASSERT_STR_EQ(out_, (want));                                                               \
        mem_free(out_);                                                                            \
    } while (0)

/* Expects src to fail in the full context with exactly the reason want. */
#define EXPECT_RENDER_ERR(src, want)                                                               \
    do {                                                                                           \
        ctx c_;                                                                                    \
        ctx_init(&c_);                                                                             \
        char *out_ = (char *)"sentinel", err_[256] = "";                                           \
        ASSERT_EQ(tmpl_render((src), c_.vars, c_.n, &out_, err_, sizeof(err_)), -1);               \
        ASSERT_STR_EQ(err_, (want));                                                               \
        ASSERT_TRUE(out_ == NULL);                                                                 \
    } while (0)

TEST(each_variable)
{
    EXPECT_RENDER("{{ ds }}", "2024-01-31");
    EXPECT_RENDER("{{ ds_nodash }}", "20240131");
    EXPECT_RENDER("{{ ts }}", "2024-01-31T00:00:00+00:00");
    EXPECT_RENDER("{{ data_interval_start }}", "2024-01-30T00:00:00+00:00");
    EXPECT_RENDER("{{ data_interval_end }}", "2024-01-31T00:00:00+00:00");
    EXPECT_RENDER("{{ run_id }}", "scheduled__2024-01-31");
    EXPECT_RENDER("{{ dag_id }}", "etl_daily");
    EXPECT_RENDER("{{ task_id }}", "load_orders");
    EXPECT_RENDER("{{ params.table }}", "orders");
    EXPECT_RENDER("{{ params.schema }}.{{ params.table }}", "sales.orders");
}

TEST(a_real_command)
{
    EXPECT_RENDER("psql -c \"COPY {{ params.schema }}.{{ params.table }} FROM "
                  "'/data/{{ ds_nodash }}/orders.csv'\" # {{dag_id}}/{{task_id}}@{{ts}}",
                  "psql -c \"COPY sales.orders FROM '/data/20240131/orders.csv'\" "
                  "# etl_daily/load_orders@2024-01-31T00:00:00+00:00");
}

TEST(whitespace_variants)
{
    EXPECT_RENDER("{{ds}}", "2024-01-31");
    EXPECT_RENDER("{{ ds}}", "2024-01-31");
    EXPECT_RENDER("{{ds }}", "2024-01-31");
    EXPECT_RENDER("{{    ds    }}", "2024-01-31");
    EXPECT_RENDER("{{\tds\t}}", "2024-01-31");
    EXPECT_RENDER("{{\n  ds\n}}", "2024-01-31");
    EXPECT_RENDER("{{ \r\n params.table \t }}", "orders");
    /* whitespace outside the braces is text and stays */
    EXPECT_RENDER("  {{ ds }}  ", "  2024-01-31  ");
    /* inside the name it is not trimmed: that name is unknown */
    EXPECT_RENDER_ERR("{{ d s }}", "unknown template variable d s");
}

TEST(unknown_variable)
{
    EXPECT_RENDER_ERR("{{ foo }}", "unknown template variable foo");
    EXPECT_RENDER_ERR("run {{ds}} {{ foo }}", "unknown template variable foo");
    EXPECT_RENDER_ERR("{{ params.missing }}", "unknown template variable params.missing");
    EXPECT_RENDER_ERR("{{ params }}", "unknown template variable params");
    EXPECT_RENDER_ERR("{{ DS }}", "unknown template variable DS");
    EXPECT_RENDER_ERR("{{ ds_ }}", "unknown template variable ds_");
    EXPECT_RENDER_ERR("{{ d }}", "unknown template variable d"); /* a prefix of ds */
    EXPECT_RENDER_ERR("{{ ds | upper }}",
                      "unknown filter \"upper\" at offset 0 (the only filter is raw)");
    EXPECT_RENDER_ERR("{{ nope | raw }}", "unknown template variable nope");

    /* no variables at all */
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("{{ ds }}", NULL, 0, &out, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unknown template variable ds");
    ASSERT_TRUE(out == NULL);
}

TEST(unclosed)
{
    EXPECT_RENDER_ERR("echo {{ ds", "unclosed {{ at offset 5");
    EXPECT_RENDER_ERR("{{", "unclosed {{ at offset 0");
    EXPECT_RENDER_ERR("{{ ds }", "unclosed {{ at offset 0");
    EXPECT_RENDER_ERR("{{ ds } }", "unclosed {{ at offset 0");
    EXPECT_RENDER_ERR("a {{ ds }} b {{ ts", "unclosed {{ at offset 13");
}

TEST(empty_expression)
{
    EXPECT_RENDER_ERR("{{}}", "empty {{ }} at offset 0");
    EXPECT_RENDER_ERR("x {{ }}", "empty {{ }} at offset 2");
    EXPECT_RENDER_ERR("{{ \t\n }}", "empty {{ }} at offset 0");
}

TEST(adjacent_templates)
{
    EXPECT_RENDER("{{ds}}{{ds_nodash}}", "2024-01-3120240131");
    EXPECT_RENDER("{{ dag_id }}{{ task_id }}{{ run_id }}",
                  "etl_dailyload_ordersscheduled__2024-01-31");
    EXPECT_RENDER("{{ds}}-{{ds}}", "2024-01-31-2024-01-31");
}

TEST(single_braces_are_text)
{
    EXPECT_RENDER("awk '{print $1}' f", "awk '{print $1}' f");
    EXPECT_RENDER("{ ds }", "{ ds }");
    EXPECT_RENDER("a } b { c", "a } b { c");
    EXPECT_RENDER("}}", "}}");
    EXPECT_RENDER("x }} y {{ds}} z }}", "x }} y 2024-01-31 z }}");
    EXPECT_RENDER("{ {ds} }", "{ {ds} }");
    EXPECT_RENDER("${HOME}/{{ ds }}", "${HOME}/2024-01-31");
    EXPECT_RENDER("{\"day\": \"{{ ds }}\"}", "{\"day\": \"2024-01-31\"}");
}

TEST(plain_and_empty_input)
{
    EXPECT_RENDER("", "");
    EXPECT_RENDER("echo hello", "echo hello");
    EXPECT_RENDER("ünïcödé ✓ {{ ds }}", "ünïcödé ✓ 2024-01-31");

    char *out = (char *)"x", err[256] = "";
    ASSERT_EQ(tmpl_render(NULL, NULL, 0, &out, err, sizeof(err)), -1);
    ASSERT_TRUE(out == NULL);
    ASSERT_TRUE(err[0] != '\0');

    /* no errbuf at all is fine too */
    ASSERT_EQ(tmpl_render("{{ nope }}", NULL, 0, &out, NULL, 0), -1);
    ASSERT_TRUE(out == NULL);
}

TEST(last_duplicate_wins)
{
    tmpl_var v[] = {{"x", "first"}, {"y", "why"}, {"x", "second"}, {"x", "third"}};
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("{{x}} {{y}}", v, 4, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "third why");
    mem_free(out);

    /* only the first n entries count */
    ASSERT_EQ(tmpl_render("{{x}}", v, 3, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "second");
    mem_free(out);

    /* a NULL value renders as empty: quoted where a word must stay a word */
    tmpl_var e[] = {{"x", NULL}};
    ASSERT_EQ(tmpl_render("[{{x}}] '{{x}}' \"{{x}}\"", e, 1, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "[''] '' \"\"");
    mem_free(out);
}

TEST(values_are_not_rendered_again)
{
    tmpl_var v[] = {{"a", "{{ b }}"}, {"b", "B"}, {"c", "{{"}};
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("{{a}} {{c}} {{b}}", v, 3, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "'{{ b }}' '{{' B");
    mem_free(out);
    /* also as raw text */
    tmpl_var r[] = {{"a", "{{ b }}", TMPL_FROM_DAG}, {"b", "B"}};
    ASSERT_EQ(tmpl_render("{{a|raw}} {{b}}", r, 2, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "{{ b }} B");
    mem_free(out);
}

TEST(long_output)
{
    /* growth of the output buffer: 2000 expansions of a 200-byte value */
    static char big[201];
    memset(big, 'z', 200);
    tmpl_var v[] = {{"big", big}};
    char *src = mem_alloc(2000 * 7 + 1), *p = src;
    for (int i = 0; i < 2000; i++) {
        memcpy(p, "{{big}}", 7);
        p += 7;
    }
    *p = '\0';
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render(src, v, 1, &out, err, sizeof(err)), 0);
    ASSERT_EQ(strlen(out), 2000 * 200);
    ASSERT_TRUE(out[0] == 'z' && out[2000 * 200 - 1] == 'z');
    mem_free(out);
    mem_free(src);

    /* a long unknown name is cut to fit errbuf, never overflowing it */
    char name[600] = "{{ ";
    memset(name + 3, 'q', 500);
    strcpy(name + 503, " }}");
    char small[32];
    ASSERT_EQ(tmpl_render(name, v, 1, &out, small, sizeof(small)), -1);
    ASSERT_EQ(strlen(small), sizeof(small) - 1);
    ASSERT_CONTAINS(small, "unknown template variable q");
}

static void date_vars(long long logical, long long start, long long end, char bufs[5][40],
                      tmpl_var vars[5])
{
    memset(bufs, 0, 5 * 40);
    tmpl_date_vars(logical, start, end, vars, bufs);
}

TEST(date_vars_names_and_values)
{
    tmpl_var v[5];
    char b[5][40];
    date_vars(JAN31, JAN30, JAN31, b, v);
    ASSERT_STR_EQ(v[0].name, "ds");
    ASSERT_STR_EQ(v[0].value, "2024-01-31");
    ASSERT_STR_EQ(v[1].name, "ds_nodash");
    ASSERT_STR_EQ(v[1].value, "20240131");
    ASSERT_STR_EQ(v[2].name, "ts");
    ASSERT_STR_EQ(v[2].value, "2024-01-31T00:00:00+00:00");
    ASSERT_STR_EQ(v[3].name, "data_interval_start");
    ASSERT_STR_EQ(v[3].value, "2024-01-30T00:00:00+00:00");
    ASSERT_STR_EQ(v[4].name, "data_interval_end");
    ASSERT_STR_EQ(v[4].value, "2024-01-31T00:00:00+00:00");
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(v[i].value == b[i]); /* values live in the caller's bufs */
}

TEST(date_vars_edges)
{
    tmpl_var v[5];
    char b[5][40];

    /* time of day, hourly interval */
    date_vars(JAN31 + 13 * 3600 + 5 * 60 + 9, JAN31 + 12 * 3600, JAN31 + 13 * 3600, b, v);
    ASSERT_STR_EQ(v[0].value, "2024-01-31");
    ASSERT_STR_EQ(v[2].value, "2024-01-31T13:05:09+00:00");
    ASSERT_STR_EQ(v[3].value, "2024-01-31T12:00:00+00:00");
    ASSERT_STR_EQ(v[4].value, "2024-01-31T13:00:00+00:00");

    /* leap day, and the last second of a leap year */
    date_vars(1709164800LL, 1735689599LL, 0, b, v);
    ASSERT_STR_EQ(v[0].value, "2024-02-29");
    ASSERT_STR_EQ(v[1].value, "20240229");
    ASSERT_STR_EQ(v[3].value, "2024-12-31T23:59:59+00:00");
    ASSERT_STR_EQ(v[4].value, "1970-01-01T00:00:00+00:00");

    /* 2000 was a leap year, 2100 will not be */
    date_vars(951782400LL, 4107542400LL, 4107456000LL, b, v);
    ASSERT_STR_EQ(v[0].value, "2000-02-29");
    ASSERT_STR_EQ(v[3].value, "2100-03-01T00:00:00+00:00");
    ASSERT_STR_EQ(v[4].value, "2100-02-28T00:00:00+00:00");

    /* before 1970 and after 2038 */
    date_vars(-1, 4102444800LL, 253402300799LL, b, v);
    ASSERT_STR_EQ(v[0].value, "1969-12-31");
    ASSERT_STR_EQ(v[2].value, "1969-12-31T23:59:59+00:00");
    ASSERT_STR_EQ(v[3].value, "2100-01-01T00:00:00+00:00");
    ASSERT_STR_EQ(v[4].value, "9999-12-31T23:59:59+00:00");

    /* absurd inputs still give a terminated string that fits */
    date_vars(9223372036854775807LL, -9223372036854775807LL - 1, 0, b, v);
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(strlen(b[i]) < 40);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

TEST(date_vars_match_gmtime)
{
    tmpl_var v[5];
    char b[5][40], want[64];
    for (int i = 0; i < 20000 && !test__cur_failed; i++) {
        /* years 1900..2300 */
        long long t = (long long)(rng() % 12622780800ULL) - 2208988800LL;
        time_t tt = (time_t)t;
        struct tm tm;
        ASSERT_TRUE(gmtime_r(&tt, &tm) != NULL);
        date_vars(t, t, t, b, v);
        strftime(want, sizeof(want), "%Y-%m-%d", &tm);
        ASSERT_STR_EQ(v[0].value, want);
        strftime(want, sizeof(want), "%Y%m%d", &tm);
        ASSERT_STR_EQ(v[1].value, want);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
        ASSERT_STR_EQ(v[2].value, want);
        ASSERT_STR_EQ(v[3].value, want);
        ASSERT_STR_EQ(v[4].value, want);
    }
}

/* ---- running rendered commands with /bin/sh ------------------------------------------
 * Every test below renders a command with a hostile value, runs it with
 * `/bin/sh -c` in a scratch directory, and checks what it printed. A payload
 * that got out of its quotes would create the file PWNED (or print more). */

#define MARKER "PWNED"

typedef struct sbuf {
    char *data;
    size_t len;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    b->data = mem_realloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

typedef struct sh_result {
    int status; /* exit code, or 128 + signal */
    sbuf out, err;
} sh_result;

static void sh_result_free(sh_result *r)
{
    mem_free(r->out.data);
    mem_free(r->err.data);
    memset(r, 0, sizeof *r);
}

static void sh_drain(int fd, sbuf *b, int *open_)
{
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n > 0) {
        sbuf_add(b, tmp, (size_t)n);
    } else if (n == 0 || errno != EINTR) {
        *open_ = 0;
    }
}

/* Runs /bin/sh -c cmd with a small fixed environment and stdin from
 * /dev/null; collects stdout and stderr. Returns 0, or -1 when it could not
 * run it or it took more than 20 s. */
static int sh_run(const char *cmd, sh_result *r)
{
    memset(r, 0, sizeof *r);
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", "HOME=/nonexistent", "LC_ALL=C", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    int oo = rc == 0, oe = rc == 0;
    time_t deadline = time(NULL) + 20;
    while ((oo || oe) && time(NULL) < deadline) {
        struct pollfd p[2] = {{oo ? po[0] : -1, POLLIN, 0}, {oe ? pe[0] : -1, POLLIN, 0}};
        if (poll(p, 2, 1000) <= 0)
            continue;
        if (p[0].revents)
            sh_drain(po[0], &r->out, &oo);
        if (p[1].revents)
            sh_drain(pe[0], &r->err, &oe);
    }
    close(po[0]);
    close(pe[0]);
    if (rc != 0)
        return -1;
    if (oo || oe)
        kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return (oo || oe) ? -1 : 0;
}

/* Printable form of a value for failure messages (they may be binary). */
static const char *show(const char *v, size_t n)
{
    static char buf[8][200];
    static int k;
    char *b = buf[k++ % 8];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof buf[0] - 8; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            b[o++] = (char)c;
        else
            o += (size_t)snprintf(b + o, 8, "\\x%02x", c);
    }
    if (o >= sizeof buf[0] - 8)
        o += (size_t)snprintf(b + o, 8, "...");
    b[o] = '\0';
    return b;
}

/* Renders src with params.v = v (from the run's conf, as an attacker's
 * would be) and the plain params.p = "plain" from the DAG. */
static int render_v(const char *src, const char *v, char **out, char *err, size_t errlen)
{
    tmpl_var vars[] = {{"params.v", v, TMPL_FROM_CONF},
                       {"params.p", "plain", TMPL_FROM_DAG},
                       {"params.open", "printf %s \"", TMPL_FROM_DAG}};
    return tmpl_render(src, vars, 3, out, err, errlen);
}

/* Runs an already rendered command; checks its output is exactly want (and
 * stderr empty, exit 0, no marker). */
static void check_run(const char *ctxname, const char *v, const char *cmd, const char *want,
                      size_t wantlen)
{
    sh_result r;
    if (sh_run(cmd, &r) != 0) {
        TEST_FAIL_AT("[%s] value \"%s\": could not run or timed out", ctxname, show(v, strlen(v)));
        sh_result_free(&r);
        return;
    }
    if (r.status != 0 || r.out.len != wantlen ||
        memcmp(r.out.data ? r.out.data : "", want, wantlen) != 0 || r.err.len != 0)
        TEST_FAIL_AT("[%s] value \"%s\": command \"%s\" exit %d printed \"%s\" (want \"%s\"), "
                     "stderr \"%s\"",
                     ctxname, show(v, strlen(v)), show(cmd, strlen(cmd)), r.status,
                     show(r.out.data ? r.out.data : "", r.out.len), show(want, wantlen),
                     show(r.err.data ? r.err.data : "", r.err.len));
    if (access(MARKER, F_OK) == 0) {
        TEST_FAIL_AT("[%s] value \"%s\": the payload ran (%s exists)", ctxname, show(v, strlen(v)),
                     MARKER);
        unlink(MARKER);
    }
    unlink("out");
    sh_result_free(&r);
}

/* One place a value can stand in a command. */
enum {
    C_NL = 1,     /* a value with a newline is refused */
    C_UNQ_HD = 2, /* a value with $ ` \ is refused (unquoted here-document) */
    C_HIDDEN = 4, /* the value is not printed (a comment) */
    C_STRIP = 8,  /* <<-: leading tabs of the value's line are removed */
};

typedef struct sh_ctx {
    const char *name;
    const char *tmpl;       /* {{ params.v }} is the value */
    const char *pre, *post; /* printed around the value */
    int flags;
    const char *delim; /* a value equal to it (its line) is refused */
    int twice;         /* the value appears twice in the output */
} sh_ctx;

static const sh_ctx contexts[] = {
    {"unquoted", "printf %s {{ params.v }}", "", ""},
    {"in a word", "printf %s x{{ params.v }}y", "x", "y"},
    {"twice", "printf %s {{ params.v }}{{params.v}}", "", "", 0, NULL, 1},
    {"single quotes", "printf %s 'a{{ params.v }}b'", "a", "b"},
    {"double quotes", "printf %s \"a{{ params.v }}b\"", "a", "b"},
    {"after ${X}", "X=1; printf %s \"${X}{{ params.v }}\"", "1", ""},
    {"after ${X:-a}", "printf %s \"${UNSET:-a}\"{{ params.v }}", "a", ""},
    {"$( )", "printf %s \"$(printf %s {{ params.v }}; printf .)\"", "", "."},
    {"\"$( \"\" )\"", "printf %s \"$(printf %s \"{{ params.v }}\"; printf .)\"", "", "."},
    {"$( '' )", "printf %s \"$(printf %s '{{ params.v }}'; printf .)\"", "", "."},
    {"X=$( )", "X=$(printf %s {{ params.v }}; printf .); printf %s \"$X\"", "", "."},
    {"$( $( ) )", "printf %s \"$(printf %s \"$(printf %s {{ params.v }}; printf .)\")\"", "", "."},
    {"`` in \"\"", "printf %s \"`printf %s {{ params.v }}; printf .`\"", "", "."},
    {"`''` in \"\"", "printf %s \"`printf %s '{{ params.v }}'; printf .`\"", "", "."},
    {"`\"\"`", "X=`printf %s \"{{ params.v }}\"; printf .`; printf %s \"$X\"", "", "."},
    {"``", "X=`printf %s {{ params.v }}; printf .`; printf %s \"$X\"", "", "."},
    {"`$( )`", "X=`printf %s \"$(printf %s {{ params.v }}; printf .)\"`; printf %s \"$X\"", "",
     "."},
    {"# comment", "printf %s x # {{ params.v }}", "x", "", C_NL | C_HIDDEN},
    {"# in $( )", "printf %s \"$(printf %s x # {{ params.v }}\n)\"", "x", "", C_NL | C_HIDDEN},
    {"<<'EOF'", "cat <<'EOF'\n{{ params.v }}\nEOF\n", "", "\n", C_NL, "EOF"},
    {"<<EOF", "cat <<EOF\na{{ params.v }}b\nEOF\n", "a", "b\n", C_NL | C_UNQ_HD},
    {"<<EOF alone", "cat <<EOF\n{{ params.v }}\nEOF\n", "", "\n", C_NL | C_UNQ_HD, "EOF"},
    {"<<-EOF", "cat <<-EOF\n\t{{ params.v }}\n\tEOF\n", "", "\n", C_NL | C_UNQ_HD | C_STRIP, "EOF"},
    {"<<A <<'B'", "cat <<A <<'B'\na\nA\n{{ params.v }}\nB\n", "", "\n", C_NL, "B"},
    {"after a here-document", "cat <<'EOF'\nbody\nEOF\nprintf %s {{ params.v }}", "body\n", ""},
    {"X=", "X={{ params.v }}; printf %s \"$X\"", "", ""},
    {"X=\"\"", "X=\"{{ params.v }}\"; printf %s \"$X\"", "", ""},
    {"~", "printf %s ~{{ params.v }}", "~", ""},
    {"X=~", "X=~{{ params.v }}; printf %s \"$X\"", "~", ""},
    {"before >", "printf %s {{ params.v }}>out; cat out", "", ""},
    {"case", "case {{ params.v }} in *) printf %s {{ params.v }};; esac", "", ""},
    {"for", "for x in {{ params.v }}; do printf %s \"$x\"; done", "", ""},
    {"function argument", "f() { printf %s \"$1\"; }; f {{ params.v }}", "", ""},
    {"pipeline", "printf %s {{ params.v }} | cat", "", ""},
    {"subshell", "(printf %s {{ params.v }})", "", ""},
    {"after &&", "true && printf %s {{ params.v }}", "", ""},
    {"after \\newline", "printf %s \\\n{{ params.v }}", "", ""},
    {"after \\\\", "printf %s \\\\{{ params.v }}", "\\", ""},
    {"after \"\\\\", "printf %s \"\\\\{{ params.v }}\"", "\\", ""},
    {"raw prefix", "{{ params.open | raw }}{{ params.v }}\"", "", ""},
};
#define NCONTEXTS (sizeof contexts / sizeof contexts[0])

static int ctx_refuses(const sh_ctx *c, const char *v)
{
    if ((c->flags & C_NL) && strchr(v, '\n'))
        return 1;
    if ((c->flags & C_UNQ_HD) && strpbrk(v, "$`\\"))
        return 1;
    const char *line = v;
    while ((c->flags & C_STRIP) && *line == '\t')
        line++;
    return c->delim && !strcmp(line, c->delim);
}

/* Renders the context with v, expects either the refusal or the exact output. */
static void check_ctx(const sh_ctx *c, const char *v)
{
    tmpl_var vars[] = {{"params.v", v, TMPL_FROM_CONF},
                       {"params.open", "printf %s \"", TMPL_FROM_DAG}};
    char *cmd = NULL, err[512] = "";
    int rc = tmpl_render(c->tmpl, vars, 2, &cmd, err, sizeof err);
    if (ctx_refuses(c, v)) {
        if (rc != -1 || !strstr(err, "cannot substitute params.v"))
            TEST_FAIL_AT("[%s] value \"%s\" should be refused, got \"%s\"", c->name,
                         show(v, strlen(v)), cmd ? show(cmd, strlen(cmd)) : err);
        mem_free(cmd);
        return;
    }
    if (rc != 0) {
        TEST_FAIL_AT("[%s] value \"%s\" refused: %s", c->name, show(v, strlen(v)), err);
        return;
    }
    sbuf want = {0};
    sbuf_add(&want, "", 0);
    const char *shown = v;
    while ((c->flags & C_STRIP) && *shown == '\t')
        shown++;
    sbuf_add(&want, c->pre, strlen(c->pre));
    for (int k = 0; !(c->flags & C_HIDDEN) && k < 1 + c->twice; k++)
        sbuf_add(&want, shown, strlen(shown));
    sbuf_add(&want, c->post, strlen(c->post));
    check_run(c->name, v, cmd, want.data, want.len);
    mem_free(want.data);
    mem_free(cmd);
}

/* Values with every shell metacharacter, quotes, newlines, expansions,
 * globs, tildes, options, keywords, here-document delimiters. */
static const char *const hostile[] = {
    "plain",
    "a b",
    "",
    " ",
    "  two  spaces  ",
    "x; touch " MARKER,
    "$(touch " MARKER ")",
    "`touch " MARKER "`",
    "'; touch " MARKER "; '",
    "\"; touch " MARKER "; \"",
    "a'b",
    "'",
    "''",
    "'\\''",
    "\"",
    "\\",
    "a\\",
    "\\'",
    "\\\"",
    "\\\\",
    "\\n",
    "$HOME",
    "${HOME}",
    "$1",
    "$@",
    "$$",
    "$((1+1))",
    "$((",
    "$(",
    "${",
    "*",
    "?",
    "[a-z]*",
    "/*",
    "~",
    "~root",
    "~/x",
    "-n",
    "--",
    "-e",
    "--help",
    "\n",
    "a\nb",
    "a\n",
    "\na",
    "\n\n",
    "\t",
    "\tx",
    "|",
    "&",
    "&&",
    ";",
    ";;",
    "<",
    ">",
    ">" MARKER,
    "(",
    ")",
    "()",
    "{",
    "}",
    "!",
    "#",
    "# x",
    "x #y",
    "=",
    "A=b",
    "PATH=/nonexistent",
    "if",
    "done",
    "fi",
    "EOF",
    "\tEOF",
    "EOF\n",
    "B",
    "{{",
    "}}",
    "%s",
    "%",
    "\r",
    "a\r\nb",
    "$(touch " MARKER ")\n`touch " MARKER "`",
    "'\"`$\\",
    "\"'$(touch " MARKER ")'\"",
    "x\nEOF\ntouch " MARKER,
    "x\nB\ntouch " MARKER,
    ")\ntouch " MARKER "\n#",
    "`\ntouch " MARKER "\n`",
    "\"\ntouch " MARKER "\n\"",
    "\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f",
    "caf\xc3\xa9 \xe2\x9c\x93",
    "\xff\xfe",
    "1",
    "007",
    "2",
};

TEST(sh_hostile_values_in_every_context)
{
    for (size_t c = 0; c < NCONTEXTS; c++)
        for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
            check_ctx(&contexts[c], hostile[i]);
}

TEST(sh_every_byte)
{
    /* all bytes 0x01-0xff in one value, in every context */
    char all[256];
    for (int b = 1; b < 256; b++)
        all[b - 1] = (char)b;
    all[255] = '\0';
    for (size_t c = 0; c < NCONTEXTS; c++)
        check_ctx(&contexts[c], all);
    /* and each byte alone and inside a word, where quoting differs most */
    static const char *const some[] = {"unquoted", "in a word", "single quotes", "double quotes",
                                       "`\"\"`",   "``",        "<<'EOF'",       "X="};
    for (size_t k = 0; k < sizeof some / sizeof some[0]; k++) {
        const sh_ctx *c = NULL;
        for (size_t i = 0; i < NCONTEXTS; i++)
            if (!strcmp(contexts[i].name, some[k]))
                c = &contexts[i];
        ASSERT_TRUE(c != NULL);
        for (int b = 1; b < 256 && c; b++) {
            char v[4] = {(char)b, 'x', (char)b, '\0'};
            check_ctx(c, v + 2);
            check_ctx(c, v);
        }
    }
}

TEST(sh_long_value)
{
    static const char mix[] = "a'b\"c$d`e\\f g\nh*i?j[k]l;m&n|o<p>q(r)s{t}u#v~w!x=y%z";
    size_t n = 16 * 1024;
    char *v = mem_alloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = mix[i % (sizeof mix - 1)];
    v[n] = '\0';
    for (size_t c = 0; c < NCONTEXTS; c++)
        check_ctx(&contexts[c], v);
    mem_free(v);
}

TEST(sh_random_values)
{
    static const char alpha[] = "ab \t\n'\"`$\\(){}[]*?~#;&|<>=!%,.-/:@+^\r\x80\xff";
    char v[24];
    for (int i = 0; i < 60 && !test__cur_failed; i++) {
        size_t n = rng() % (sizeof v - 1);
        for (size_t k = 0; k < n; k++)
            v[k] = alpha[rng() % (sizeof alpha - 1)];
        v[n] = '\0';
        for (size_t c = 0; c < NCONTEXTS; c++)
            check_ctx(&contexts[c], v);
    }
}

/* Expects src with params.v = v to render and print exactly want. */
static void expect_sh(const char *src, const char *v, const char *want)
{
    char *cmd = NULL, err[512] = "";
    if (render_v(src, v, &cmd, err, sizeof err) != 0) {
        TEST_FAIL_AT("\"%s\" with \"%s\" refused: %s", show(src, strlen(src)), show(v, strlen(v)),
                     err);
        return;
    }
    check_run(src, v, cmd, want, strlen(want));
    mem_free(cmd);
}

/* Expects src with params.v = v to be refused with a reason containing why. */
static void expect_refused(const char *src, const char *v, const char *why)
{
    char *cmd = NULL, err[512] = "";
    int rc = render_v(src, v, &cmd, err, sizeof err);
    if (rc != -1 || cmd != NULL) {
        TEST_FAIL_AT("\"%s\" with \"%s\" should be refused, rendered \"%s\"",
                     show(src, strlen(src)), show(v, strlen(v)), cmd ? cmd : "");
        mem_free(cmd);
        return;
    }
    if (!strstr(err, "cannot substitute params.v at offset") || !strstr(err, why))
        TEST_FAIL_AT("\"%s\": error \"%s\" should name params.v and say \"%s\"",
                     show(src, strlen(src)), err, why);
    if (strlen(v) > 3 && strstr(err, v))
        TEST_FAIL_AT("error \"%s\" quotes the value", err);
}

TEST(sh_plain_values_stay_readable)
{
    static const char *const plain[] = {
        "orders", "2024-01-31", "s3://bucket/key.csv", "a+b=c,d@e%f", "-x", "/tmp/x.y", "x:y"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char *out = NULL, err[256] = "", want[128];
        ASSERT_EQ(render_v("load {{ params.v }} '{{params.v}}' \"{{params.v}}\"", plain[i], &out,
                           err, sizeof err),
                  0);
        snprintf(want, sizeof want, "load %s '%s' \"%s\"", plain[i], plain[i], plain[i]);
        ASSERT_STR_EQ(out, want);
        mem_free(out);
        expect_sh("printf %s {{ params.v }}", plain[i], plain[i]);
    }
    /* quoting is minimal and readable */
    char *out = NULL, err[256] = "";
    ASSERT_EQ(render_v("echo loading {{ params.v }}", "x; id", &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "echo loading 'x; id'");
    mem_free(out);
    ASSERT_EQ(render_v("echo 'it {{ params.v }}'", "it's", &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "echo 'it it'\\''s'");
    mem_free(out);
    ASSERT_EQ(render_v("echo \"{{ params.v }}\"", "$x \"y\"", &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "echo \"\\$x \\\"y\\\"\"");
    mem_free(out);
}

TEST(sh_plain_values_never_become_syntax)
{
    /* an assignment instead of the command */
    expect_sh("{{ params.v }} printf %s ran 2>/dev/null; printf %s \" $?\"", "ZZ=1", " 127");
    expect_sh("{{ params.v }}=1 printf %s ran 2>/dev/null; printf %s \" $?\"", "ZZ", " 127");
    expect_sh("A{{ params.v }} printf %s ran 2>/dev/null; printf %s \" $?\"", "=1", " 127");
    expect_sh("{{ params.v }}{{ params.p }}=1 printf %s ran 2>/dev/null; printf %s \" $?\"", "ZZ",
              " 127");
    /* a descriptor for the redirection */
    expect_sh("printf %s {{ params.v }}>out; cat out", "2", "2");
    expect_sh("printf %s 1{{ params.v }}>out; cat out", "2", "12");
    /* a reserved word that would end the loop or the if */
    expect_sh("for i in 1; do {{ params.v }} 2>/dev/null; printf %s after; done", "done", "after");
    expect_sh("if true; then {{ params.v }} 2>/dev/null; printf %s after; fi", "fi", "after");
    expect_sh("d{{ params.v }} 2>/dev/null; printf %s after", "one", "after");
    /* a user's home */
    expect_sh("printf %s ~{{ params.v }}", "root", "~root");
    expect_sh("X=/a:~{{ params.v }}; printf %s \"$X\"", "root", "/a:~root");
    /* not a comment, not a second word */
    expect_sh("printf %s {{ params.v }}#x", "a", "a#x");
}

TEST(sh_refused_where_no_quoting_is_safe)
{
    expect_refused("printf %s x # {{ params.v }}", "a\ntouch " MARKER,
                   "a value with a newline cannot go into a # comment");
    expect_refused("cat <<'EOF'\n{{ params.v }}\nEOF", "a\nb",
                   "a value with a newline cannot go into a here-document");
    expect_refused("cat <<EOF\n{{ params.v }}\nEOF", "$(id)",
                   "a value with $, ` or \\ cannot go into an unquoted here-document");
    expect_refused("cat <<EOF\nx{{ params.v }}\nEOF", "a\\", "unquoted here-document");
    expect_refused("cat <<EOF\nx{{ params.v }}\nEOF", "`id`", "unquoted here-document");
    expect_refused("cat <<'EOF'\n{{ params.v }}\ntouch " MARKER "\nEOF", "EOF",
                   "would make a line equal to the here-document's delimiter");
    expect_refused("cat <<'EOF'\nE{{ params.v }}\nEOF", "OF", "delimiter");
    expect_refused("cat <<EOF {{ params.v }}\nbody\nEOF", "a\nb",
                   "on the line of a here-document operator");
    expect_refused("cat <<'EOF'\n$(printf %s {{ params.v }})\nEOF", "a\nb", "here-document");
    expect_refused("cat <<{{ params.v }}\nx\n", "EOF", "here-document delimiter");
    expect_refused("printf %s ${X:-{{ params.v }}}", "a", "inside ${ }");
    expect_refused("printf %s \"${X:-{{ params.v }}}\"", "a", "inside ${ }");
    expect_refused("printf %s ${{ params.v }}", "a", "right after $");
    expect_refused("printf %s \"$HOME{{ params.v }}\"", "a", "right after $NAME");
    expect_refused("printf %s $HOME{{ params.v }}", "a b", "right after $NAME");
    expect_refused("printf %s $HOME\\\n{{ params.v }}", "a", "right after $NAME");
    expect_refused("printf %s \\{{ params.v }}", "a", "right after a backslash");
    expect_refused("printf %s \"\\{{ params.v }}\"", "a", "right after a backslash");
    expect_refused("printf %s `printf %s \\{{ params.v }}`", "a", "right after a backslash");
    /* inside backquotes \<newline> goes first: the \ after it still escapes the
     * value, and the error names that value (this read out of bounds once) */
    expect_refused("printf %s `printf %s {{ params.p }} \\\n\\{{ params.v }}`", "a",
                   "right after a backslash");
    expect_refused("printf %s `printf %s \\\n\\\n\\{{ params.v }}`", "a",
                   "right after a backslash");
    expect_refused("printf %s $(( {{ params.v }} + 1 ))", "1+$(id)", "only a value of digits");
    expect_refused("printf %s $(( {{ params.v }} + 1 ))", "x", "only a value of digits");
    expect_refused("printf %s $(( {{ params.v }} + 1 ))", "", "only a value of digits");
    /* digits are fine there */
    expect_sh("printf %s $(( {{ params.v }} + 1 ))", "41", "42");
    expect_sh("printf %s $(( ({{ params.v }}) * 2 ))", "21", "42");
}

TEST(sh_refused_where_the_lexer_is_not_sure)
{
    static const char *const unsure[] = {
        "printf %s $'x' {{ params.v }}",
        "printf %s $\"x\" {{ params.v }}",
        "printf %s $[1] {{ params.v }}",
        "cat <<<x; printf %s {{ params.v }}",
        "printf %s \"$(case x in x) printf %s {{ params.v }};; esac)\"",
        "printf %s \"`printf %s \\`printf x\\``\" {{ params.v }}",
        "printf %s \"`printf %s \\\"x\\\"`\" {{ params.v }}",
        "printf %s $(( 1 + '1' )) {{ params.v }}",
        "printf %s ${X:-'a'} {{ params.v }}",
        "X=$(cat <<EOF\nx\nEOF\n); printf %s {{ params.v }}",
        "cat <<EOF\n$(printf x\n) {{ params.v }}\nEOF",
        "cat <<EOF\nx\\\ny {{ params.v }}\nEOF",
        "cat <<$X\nx\n$X\nprintf %s {{ params.v }}",
        "cat <<EOF \"a\nb\"\nx\nEOF\nprintf %s {{ params.v }}",
        "printf %s `printf '`' {{ params.v }}",
    };
    for (size_t i = 0; i < sizeof unsure / sizeof unsure[0]; i++) {
        char *cmd = NULL, err[512] = "";
        int rc = render_v(unsure[i], "a", &cmd, err, sizeof err);
        if (rc != -1 || !strstr(err, "cannot tell for sure how /bin/sh reads the command"))
            TEST_FAIL_AT("\"%s\" should be refused as unsure, got %s",
                         show(unsure[i], strlen(unsure[i])), cmd ? cmd : err);
        mem_free(cmd);
    }
    /* inside "..." and here-documents $" and $' are a plain $ */
    expect_sh("printf %s \"a$\" {{ params.v }}", "b c", "a$b c");
    expect_sh("printf %s \"$'\" {{ params.v }}", "b c", "$'b c");
    expect_sh("cat <<EOF\n$'x' {{ params.v }}\nEOF", "b c", "$'x' b c\n");
    /* the same text with no value after it renders (and a value before it) */
    char *out = NULL, err[512] = "";
    ASSERT_EQ(render_v("printf %s {{ params.v }} $'x'", "a b", &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "printf %s 'a b' $'x'");
    mem_free(out);
}

TEST(sh_unterminated)
{
    expect_refused("printf %s '{{ params.v }}", "a",
                   "the command ends inside the ' opened at "
                   "offset 10");
    expect_refused("printf %s \"{{ params.v }}", "a", "ends inside the \" opened");
    expect_refused("printf %s $(printf {{ params.v }}", "a", "ends inside the $( ) opened");
    expect_refused("printf %s `printf {{ params.v }}", "a", "ends inside the ` opened");
    /* without a value the template is the author's business */
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("echo 'oops", NULL, 0, &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "echo 'oops");
    mem_free(out);
    /* a comment or a here-document may end the command */
    expect_sh("printf %s {{ params.v }} # the end", "a b", "a b");
    expect_sh("printf %s {{ params.v }}; cat <<'EOF'\nx", "a b", "a bx");
}

TEST(raw)
{
    tmpl_var v[] = {{"params.cmd", "printf '%s' \"$HOME\"", TMPL_FROM_DAG},
                    {"params.conf", "id", TMPL_FROM_CONF},
                    {"params.unset", "id"},
                    {"ds", "2024-01-31", TMPL_FROM_DAG}};
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("{{ params.cmd | raw }}", v, 4, &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "printf '%s' \"$HOME\"");
    check_run("raw", "", out, "/nonexistent", 12);
    mem_free(out);
    ASSERT_EQ(tmpl_render("x{{ds|raw}}", v, 4, &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "x2024-01-31");
    mem_free(out);
    /* never for what the trigger passed, nor for what nobody said */
    ASSERT_EQ(tmpl_render("{{ params.conf | raw }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "params.conf at offset 0 comes from the run's conf: | raw is only for "
                       "values the DAG defines");
    ASSERT_EQ(tmpl_render("x {{ params.unset|raw }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "params.unset at offset 2 comes from the run's conf");
    /* unknown filters */
    ASSERT_EQ(tmpl_render("{{ ds | shell }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "unknown filter \"shell\" at offset 0 (the only filter is raw)");
    ASSERT_EQ(tmpl_render("{{ ds | raw | raw }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "unknown filter \"raw | raw\"");
    ASSERT_EQ(tmpl_render("{{ ds | }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "unknown filter \"\"");
    ASSERT_EQ(tmpl_render("{{ | raw }}", v, 4, &out, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "empty {{ }} at offset 0");
    ASSERT_TRUE(out == NULL);
    /* raw text is lexed as command text: a value after it is quoted for where it
     * really stands */
    expect_sh("{{ params.open | raw }}{{ params.v }}\"", "$(touch " MARKER ")",
              "$(touch " MARKER ")");
}

TEST(param_env_names)
{
    char buf[64], err[256];
    ASSERT_EQ(tmpl_param_env_name("table", buf, sizeof buf, err, sizeof err), 0);
    ASSERT_STR_EQ(buf, "DAGQ_PARAM_TABLE");
    ASSERT_EQ(tmpl_param_env_name("Run_Date2", buf, sizeof buf, err, sizeof err), 0);
    ASSERT_STR_EQ(buf, "DAGQ_PARAM_RUN_DATE2");
    ASSERT_EQ(tmpl_param_env_name("_x", buf, sizeof buf, err, sizeof err), 0);
    ASSERT_STR_EQ(buf, "DAGQ_PARAM__X");
    static const char *const bad[] = {"",    "a-b",  "a.b", "a b", "1a", "caf\xc3\xa9",
                                      "a=b", "a\nb", "$x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(buf, "untouched");
        err[0] = '\0';
        ASSERT_EQ(tmpl_param_env_name(bad[i], buf, sizeof buf, err, sizeof err), -1);
        ASSERT_TRUE(err[0] != '\0');
        ASSERT_STR_EQ(buf, "untouched");
    }
    /* too long for the caller's buffer */
    char small[16];
    ASSERT_EQ(tmpl_param_env_name("abcd", small, sizeof small, err, sizeof err), 0);
    ASSERT_STR_EQ(small, "DAGQ_PARAM_ABCD");
    ASSERT_EQ(tmpl_param_env_name("abcde", small, sizeof small, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "too long");
    /* what the names are for: the environment of a shell */
    ASSERT_EQ(tmpl_param_env_name("my_table", buf, sizeof buf, err, sizeof err), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s='x; y' && export %s && printf %%s \"$%s\"", buf, buf, buf);
    check_run("env", "", cmd, "x; y", 4);
}

int main(void)
{
    /* the rendered commands run in a scratch directory of their own */
    char dir[] = "/tmp/dagq-test-tmpl-XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("scratch directory");
        return 1;
    }
    RUN(each_variable);
    RUN(a_real_command);
    RUN(whitespace_variants);
    RUN(unknown_variable);
    RUN(unclosed);
    RUN(empty_expression);
    RUN(adjacent_templates);
    RUN(single_braces_are_text);
    RUN(plain_and_empty_input);
    RUN(last_duplicate_wins);
    RUN(values_are_not_rendered_again);
    RUN(long_output);
    RUN(date_vars_names_and_values);
    RUN(date_vars_edges);
    RUN(date_vars_match_gmtime);
    RUN(sh_plain_values_stay_readable);
    RUN(sh_hostile_values_in_every_context);
    RUN(sh_every_byte);
    RUN(sh_long_value);
    RUN(sh_random_values);
    RUN(sh_plain_values_never_become_syntax);
    RUN(sh_refused_where_no_quoting_is_safe);
    RUN(sh_refused_where_the_lexer_is_not_sure);
    RUN(sh_unterminated);
    RUN(raw);
    RUN(param_env_names);
    if (chdir("/") != 0 || rmdir(dir) != 0)
        perror("removing the scratch directory (a command left files in it?)");
    return TEST_DONE();
}

#include "mem.h"
#include "test.h"
#include "tmpl.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

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
    EXPECT_RENDER_ERR("{{ ds | upper }}", "unknown template variable ds | upper");

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

    /* a NULL value renders as empty */
    tmpl_var e[] = {{"x", NULL}};
    ASSERT_EQ(tmpl_render("[{{x}}]", e, 1, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "[]");
    mem_free(out);
}

TEST(values_are_not_rendered_again)
{
    tmpl_var v[] = {{"a", "{{ b }}"}, {"b", "B"}, {"c", "{{"}};
    char *out = NULL, err[256] = "";
    ASSERT_EQ(tmpl_render("{{a}} {{c}} {{b}}", v, 3, &out, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "{{ b }} {{ B");
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

int main(void)
{
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
    return TEST_DONE();
}

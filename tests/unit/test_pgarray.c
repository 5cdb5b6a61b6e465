#include "db.h"
#include "mem.h"
#include "pgarray.h"
#include "test.h"

TEST(empty)
{
    pgarray a;
    pgarray_init(&a);
    ASSERT_STR_EQ(pgarray_lit(&a), "{}");
    pgarray_free(&a);
}

TEST(numbers_and_bools)
{
    pgarray a;
    pgarray_init(&a);
    pgarray_add_ll(&a, 1);
    pgarray_add_ll(&a, -9223372036854775807LL);
    ASSERT_STR_EQ(pgarray_lit(&a), "{1,-9223372036854775807}");
    pgarray_add_bool(&a, 1);
    pgarray_add_bool(&a, 0);
    pgarray_add_double(&a, 0.25);
    ASSERT_STR_EQ(pgarray_lit(&a), "{1,-9223372036854775807,t,f,0.25}");
    ASSERT_EQ(a.n, 5);
    pgarray_free(&a);
}

/* What is built, PostgreSQL's own array syntax reads back as it was. */
TEST(text_round_trip)
{
    const char *in[] = {"",         "plain",  "a b",  "quote\"d",    "back\\slash",
                        "{braces}", "com,ma", "NULL", "line\nbreak", "\\\"\\\""};
    int n = (int)(sizeof in / sizeof in[0]);
    pgarray a;
    pgarray_init(&a);
    for (int i = 0; i < n; i++)
        pgarray_add(&a, in[i]);
    char **out;
    int got;
    ASSERT_EQ(db_text_array(pgarray_lit(&a), &out, &got), 0);
    ASSERT_EQ(got, n);
    for (int i = 0; i < n && i < got; i++)
        ASSERT_STR_EQ(out[i], in[i]);
    for (int i = 0; i < got; i++)
        mem_free(out[i]);
    mem_free(out);
    pgarray_free(&a);
}

TEST(null_elements_and_growth)
{
    pgarray a;
    pgarray_init(&a);
    pgarray_add(&a, NULL);
    pgarray_add(&a, "x");
    ASSERT_STR_EQ(pgarray_lit(&a), "{NULL,\"x\"}");
    char big[5000];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 20; i++)
        pgarray_add(&a, big);
    ASSERT_EQ(strlen(pgarray_lit(&a)), strlen("{NULL,\"x\"}") + 20 * (1 + 2 + 2 * 4999));
    pgarray_free(&a);
}

int main(void)
{
    RUN(empty);
    RUN(numbers_and_bools);
    RUN(text_round_trip);
    RUN(null_elements_and_growth);
    return TEST_DONE();
}

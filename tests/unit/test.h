/* test.h — a tiny unit-test harness (libuv's ASSERT_EQ habit: a failed
 * assertion prints both values). Each test_*.c defines tests with TEST(name),
 * lists them in main with RUN(name), and returns TEST_DONE(). */
#ifndef DAGQ_TEST_H
#define DAGQ_TEST_H

#include <stdio.h>
#include <string.h>

static int test__failed, test__passed, test__cur_failed;
static const char *test__name;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        test__name = #name;                                                                        \
        test__cur_failed = 0;                                                                      \
        test_##name();                                                                             \
        if (test__cur_failed)                                                                      \
            test__failed++;                                                                        \
        else                                                                                       \
            test__passed++;                                                                        \
        printf("%s %s\n", test__cur_failed ? "FAIL" : "ok  ", #name);                              \
    } while (0)

#define TEST_FAIL_AT(fmt, ...)                                                                     \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: %s: " fmt "\n", __FILE__, __LINE__, test__name, __VA_ARGS__);      \
        test__cur_failed = 1;                                                                      \
    } while (0)

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            TEST_FAIL_AT("expected true: %s", #c);                                                 \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            TEST_FAIL_AT("%s == %s: %lld != %lld", #a, #b, a_, b_);                                \
    } while (0)

#define ASSERT_DBL_EQ(a, b)                                                                        \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (a_ - b_ > 1e-9 || b_ - a_ > 1e-9)                                                      \
            TEST_FAIL_AT("%s == %s: %.9g != %.9g", #a, #b, a_, b_);                                \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                 \
                         b_ ? b_ : "(null)");                                                      \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL_AT("\"%s\" should contain \"%s\"", h_ ? h_ : "(null)", n_);                  \
    } while (0)

/* The closing line counted by CI: "N passed, N failed". */
#define TEST_DONE()                                                                                \
    (printf("%d passed, %d failed\n", test__passed, test__failed), test__failed ? 1 : 0)

#endif

#include "backoff.h"
#include "test.h"

#include <float.h>
#include <limits.h>
#include <math.h>

TEST(linear)
{
    for (int try = 1; try <= 50; try++)
        ASSERT_DBL_EQ(backoff_retry_delay(300, try, 0, 86400), 300);
    /* the cap belongs to exponential backoff; a constant delay is base */
    ASSERT_DBL_EQ(backoff_retry_delay(300, 7, 0, 10), 300);
    ASSERT_DBL_EQ(backoff_retry_delay(0.25, 3, 0, 86400), 0.25);
    ASSERT_DBL_EQ(backoff_retry_delay(300, INT_MAX, 0, 86400), 300);
}

TEST(exponential_doubling)
{
    ASSERT_DBL_EQ(backoff_retry_delay(300, 1, 1, 86400), 300);
    ASSERT_DBL_EQ(backoff_retry_delay(300, 2, 1, 86400), 600);
    ASSERT_DBL_EQ(backoff_retry_delay(300, 3, 1, 86400), 1200);
    ASSERT_DBL_EQ(backoff_retry_delay(300, 4, 1, 86400), 2400);
    ASSERT_DBL_EQ(backoff_retry_delay(300, 5, 1, 86400), 4800);
    ASSERT_DBL_EQ(backoff_retry_delay(1, 11, 1, 1e9), 1024);
    /* fractions double exactly too */
    ASSERT_DBL_EQ(backoff_retry_delay(0.1, 4, 1, 1e9), 0.8);
    /* each step is exactly twice the one before while under the cap */
    for (int try = 1; try < 40; try++)
        ASSERT_TRUE(backoff_retry_delay(3, try + 1, 1, 1e300) ==
                    2 * backoff_retry_delay(3, try, 1, 1e300));
}

TEST(cap_exact)
{
    /* 300 * 2^8 = 76800 < 86400 < 153600 = 300 * 2^9 */
    ASSERT_DBL_EQ(backoff_retry_delay(300, 9, 1, 86400), 76800);
    ASSERT_TRUE(backoff_retry_delay(300, 10, 1, 86400) == 86400);
    ASSERT_TRUE(backoff_retry_delay(300, 11, 1, 86400) == 86400);
    /* exactly reaching the cap */
    ASSERT_TRUE(backoff_retry_delay(100, 4, 1, 800) == 800);
    /* base above the cap: the cap */
    ASSERT_TRUE(backoff_retry_delay(1000, 1, 1, 60) == 60);
    /* a cap that is not a power-of-two multiple of base is returned as is */
    ASSERT_TRUE(backoff_retry_delay(7, 30, 1, 1234.5678) == 1234.5678);
    /* never above the cap, never decreasing */
    double prev = 0;
    for (int try = 1; try <= 200; try++) {
        double d = backoff_retry_delay(1.5, try, 1, 3600);
        ASSERT_TRUE(d <= 3600);
        ASSERT_TRUE(d >= prev);
        prev = d;
    }
}

TEST(no_overflow)
{
    ASSERT_TRUE(backoff_retry_delay(300, 1000, 1, 86400) == 86400);
    ASSERT_TRUE(backoff_retry_delay(300, INT_MAX, 1, 86400) == 86400);
    /* doubling would pass DBL_MAX long before try 1000 */
    ASSERT_TRUE(backoff_retry_delay(1e300, 1000, 1, DBL_MAX) == DBL_MAX);
    ASSERT_TRUE(backoff_retry_delay(DBL_MAX, 2, 1, DBL_MAX) == DBL_MAX);
    /* an infinite cap: the result may grow to infinity but stays defined */
    double d = backoff_retry_delay(1, 1000, 1, INFINITY);
    ASSERT_TRUE(d >= 1e300);
    /* tiny base, huge try: the loop stops at the cap */
    ASSERT_TRUE(backoff_retry_delay(DBL_MIN, INT_MAX, 1, 86400) == 86400);
    ASSERT_TRUE(backoff_retry_delay(4.9e-324, INT_MAX, 1, 1e308) == 1e308);
}

TEST(odd_inputs)
{
    /* negative inputs count as 0 */
    ASSERT_DBL_EQ(backoff_retry_delay(-5, 3, 1, 100), 0);
    ASSERT_DBL_EQ(backoff_retry_delay(-5, 3, 0, 100), 0);
    ASSERT_DBL_EQ(backoff_retry_delay(10, 3, 1, -1), 0);
    ASSERT_DBL_EQ(backoff_retry_delay(0, INT_MAX, 1, 100), 0);
    /* try_number below 1 counts as the first try */
    ASSERT_DBL_EQ(backoff_retry_delay(10, 0, 1, 100), 10);
    ASSERT_DBL_EQ(backoff_retry_delay(10, -7, 1, 100), 10);
    ASSERT_DBL_EQ(backoff_retry_delay(10, INT_MIN, 1, 100), 10);
    /* NaN counts as 0 */
    ASSERT_DBL_EQ(backoff_retry_delay(NAN, 3, 1, 100), 0);
    ASSERT_DBL_EQ(backoff_retry_delay(10, 3, 1, NAN), 0);
    /* any non-zero exponential flag */
    ASSERT_DBL_EQ(backoff_retry_delay(10, 3, 2, 100), 40);
}

TEST(reconnect_sequence)
{
    static const int want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(backoff_reconnect_ms(i), want[i]);
    ASSERT_EQ(backoff_reconnect_ms(31), 5000);
    ASSERT_EQ(backoff_reconnect_ms(32), 5000);
    ASSERT_EQ(backoff_reconnect_ms(1000), 5000);
    ASSERT_EQ(backoff_reconnect_ms(INT_MAX), 5000);
    ASSERT_EQ(backoff_reconnect_ms(-1), 100);
    ASSERT_EQ(backoff_reconnect_ms(INT_MIN), 100);
}

int main(void)
{
    RUN(linear);
    RUN(exponential_doubling);
    RUN(cap_exact);
    RUN(no_overflow);
    RUN(odd_inputs);
    RUN(reconnect_sequence);
    return TEST_DONE();
}

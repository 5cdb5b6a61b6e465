/* clock and errbuf: the helpers every module shares. */
#include "clock.h"
#include "errbuf.h"
#include "test.h"

TEST(clock_moves_forward)
{
    int64_t ms0 = clock_now_ms();
    double s0 = clock_now_s();
    clock_sleep_ms(20);
    int64_t ms1 = clock_now_ms();
    double s1 = clock_now_s();
    ASSERT_TRUE(ms1 - ms0 >= 20);
    ASSERT_TRUE(s1 - s0 >= 0.020);
    /* the two read the same clock */
    ASSERT_TRUE(s1 * 1000 - (double)ms1 < 5 && (double)ms1 - s1 * 1000 < 5);
    clock_sleep_ms(0);
    clock_sleep_ms(-5);
}

TEST(clock_after)
{
    struct timespec now = clock_after_ms(0), later = clock_after_ms(1500);
    double d = (double)(later.tv_sec - now.tv_sec) + (double)(later.tv_nsec - now.tv_nsec) / 1e9;
    ASSERT_TRUE(d >= 1.5 && d < 1.6);
    ASSERT_TRUE(later.tv_nsec >= 0 && later.tv_nsec < 1000000000L);
}

TEST(errbuf)
{
    char buf[8] = "x";
    errbuf_printf(buf, sizeof buf, "%s=%d", "abc", 12345);
    ASSERT_STR_EQ(buf, "abc=123"); /* cut to fit, NUL-terminated */
    errbuf_printf(NULL, 0, "%s", "nothing");
    errbuf_printf(buf, 0, "%s", "nothing");
    ASSERT_STR_EQ(buf, "abc=123");
}

int main(void)
{
    RUN(clock_moves_forward);
    RUN(clock_after);
    RUN(errbuf);
    return TEST_DONE();
}

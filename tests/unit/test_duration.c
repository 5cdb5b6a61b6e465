#include "duration.h"
#include "test.h"

#include <string.h>

static double parse_ok(const char *s)
{
    double v = -1;
    char err[200] = "";
    int rc = duration_parse(s, &v, err, sizeof err);
    return rc == 0 ? v : -1;
}

TEST(units)
{
    ASSERT_DBL_EQ(parse_ok("30d"), 30 * 86400.0);
    ASSERT_DBL_EQ(parse_ok("90 days"), 90 * 86400.0);
    ASSERT_DBL_EQ(parse_ok("1 day"), 86400.0);
    ASSERT_DBL_EQ(parse_ok("12h"), 12 * 3600.0);
    ASSERT_DBL_EQ(parse_ok("45m"), 45 * 60.0);
    ASSERT_DBL_EQ(parse_ok("45min"), 45 * 60.0);
    ASSERT_DBL_EQ(parse_ok("2w"), 14 * 86400.0);
    ASSERT_DBL_EQ(parse_ok("3600s"), 3600.0);
    ASSERT_DBL_EQ(parse_ok("1.5h"), 5400.0);
    ASSERT_DBL_EQ(parse_ok("7D"), 7 * 86400.0);
}

TEST(rejected)
{
    const char *bad[] = {"",    "d",   "-1d", "0d",     "0",  "30x",  "30 dayz",         "1e400d",
                         "nan", "inf", " 3d", "3d ago", "30", "3600", "99999999999999d", ".5d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 7;
        char err[200] = "";
        ASSERT_EQ(duration_parse(bad[i], &v, err, sizeof err), -1);
        ASSERT_TRUE(strlen(err) > 0);
        ASSERT_DBL_EQ(v, 7);
    }
    double v;
    char err[200];
    ASSERT_EQ(duration_parse(NULL, &v, err, sizeof err), -1);
}

int main(void)
{
    RUN(units);
    RUN(rejected);
    return TEST_DONE();
}

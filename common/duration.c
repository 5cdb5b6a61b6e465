#include "duration.h"

#include "errbuf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    double secs;
} duration_units[] = {
    {"s", 1},        {"sec", 1},     {"secs", 1},      {"second", 1},     {"seconds", 1},
    {"m", 60},       {"min", 60},    {"mins", 60},     {"minute", 60},    {"minutes", 60},
    {"h", 3600},     {"hour", 3600}, {"hours", 3600},  {"d", 86400},      {"day", 86400},
    {"days", 86400}, {"w", 604800},  {"week", 604800}, {"weeks", 604800},
};

int duration_parse(const char *s, double *secs, char *errbuf, size_t errlen)
{
    if (!s || !*s) {
        errbuf_printf(errbuf, errlen, "an age is required (e.g. 30d, 12h, 90 days)");
        return -1;
    }
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v <= 0 || !isdigit((unsigned char)s[0])) {
        errbuf_printf(errbuf, errlen,
                      "\"%s\" is not an age (a number above 0 and a unit: 30d, 12h, 90 days)", s);
        return -1;
    }
    while (*end == ' ')
        end++;
    double unit = 0;
    if (!*end) {
        /* "30" meaning 30 seconds would be a costly slip in a prune */
        errbuf_printf(errbuf, errlen, "\"%s\" needs a unit (s, m, h, d or w: 30d, 12h)", s);
        return -1;
    }
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
        if (!strcasecmp(end, duration_units[i].name))
            unit = duration_units[i].secs;
    if (unit == 0) {
        errbuf_printf(errbuf, errlen, "\"%s\": unknown unit \"%s\" (s, m, h, d or w)", s, end);
        return -1;
    }
    if (v * unit > 1e11) { /* about 3,000 years: beyond any date the metastore holds */
        errbuf_printf(errbuf, errlen, "\"%s\" is too long an age", s);
        return -1;
    }
    *secs = v * unit;
    return 0;
}

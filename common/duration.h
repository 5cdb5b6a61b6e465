/* duration — an age as people write it on a command line: "30d", "12h",
 * "90 days", "2w", "45m", "3600s" (a number, optional spaces, a unit: s,
 * sec, second(s); m, min, minute(s); h, hour(s); d, day(s); w, week(s)). A
 * bare number is refused (30 seconds or 30 days?). `dagq db prune --older-than` and
 * `dagq-scheduler --retention` read their ages with it. */
#ifndef DAGQ_DURATION_H
#define DAGQ_DURATION_H

#include <stddef.h>

/* Parses s into *secs (> 0). Returns 0, or -1 with the problem in errbuf. */
int duration_parse(const char *s, double *secs, char *errbuf, size_t errlen);

#endif

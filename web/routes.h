/* routes — dagq-web's API routes as one table: method, path pattern
 * ({name} matches one path segment), handler and what the route needs.
 * web/openapi.json documents each of them (tests/web/api_test.py checks
 * that both agree). */
#ifndef DAGQ_ROUTES_H
#define DAGQ_ROUTES_H

#include "web.h"

#include <stdio.h>

#define ROUTE_PUBLIC 1 /* no token needed */
#define ROUTE_WRITE 2  /* changes state: audited, read-write transaction */
#define ROUTE_NODB 4   /* needs no database connection */

typedef struct route {
    const char *method;
    const char *pattern; /* "/api/v1/dags/{dag}" */
    web_handler fn;
    int flags;
} route;

/* The route for method and path, with the path parameters (copies, owned
 * by r) in r->params. NULL when none matches; *allow is then the methods
 * the path has ("" when the path is unknown). */
const route *routes_match(web_req *r, const char *method, const char *path, char *allow,
                          size_t allow_len);

/* "METHOD PATTERN" per line, for tests. */
void routes_print(FILE *out);

#endif

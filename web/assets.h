/* assets — the UI's files (web/ui/) and web/openapi.json, embedded into
 * dagq-web at build time by scripts/embed-assets.sh (the generated
 * assets.c lives in build/), so the program needs no files at run time. */
#ifndef DAGQ_ASSETS_H
#define DAGQ_ASSETS_H

#include <stddef.h>

typedef struct asset {
    const char *path; /* "index.html", "vendor/dagre.min.js", "openapi.json" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} asset;

extern const asset assets__files[]; /* ends with {0} */

/* The asset at path, or NULL. */
const asset *assets_find(const char *path);

#endif

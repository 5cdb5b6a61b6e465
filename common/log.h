/* log — one line per event on stderr: `ts=... level=... prog=... msg="..." k=v`.
 * Callers pass the key=value context inside the format, for example
 *   log_info("task claimed", "ti=%lld try=%d", ti, try);
 * Thread-safe: each line is written with a single write(2). */
#ifndef DAGQ_LOG_H
#define DAGQ_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *prog);
/* Returns 0, or -1 when name is not debug|info|warn|error. */
int log_set_level_name(const char *name);
/* s made safe inside a quoted log value: '"' and '\\' escaped, control
 * characters as blanks, cut to fit buf; returns buf. */
const char *log_quote(const char *s, char *buf, size_t len);

int log_enabled(enum log_level level);

/* msg is quoted; ctx is a printf format of extra `key=value` pairs (may be ""). */
void log_write(enum log_level level, const char *msg, const char *ctx, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, msg, __VA_ARGS__);                                                \
    } while (0)
#define log_info(msg, ...) log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif

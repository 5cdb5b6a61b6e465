/* redact — the one routine that keeps passwords, tokens and secret-bearing
 * URLs out of logs, metric labels, --help and error messages. Every secret
 * becomes `***`; the rest of the text is kept, so a message stays useful
 * ("which host, which user?"). When in doubt it redacts more, never less.
 *
 * What counts as a secret:
 *   - the password of a URL's userinfo, `scheme://user:PASSWORD@host...` (any
 *     scheme: redis, rediss, kafka, postgresql, postgres, http, https, ...). The
 *     userinfo ends at the last `@`, so a password with an unencoded `@`, `/`,
 *     `?` or `#` is still covered. An http(s) userinfo without `:` is taken to
 *     be a token (`https://TOKEN@host`) and redacted whole; for other schemes
 *     it is a user name and kept;
 *   - the value of a query parameter, or of a libpq `key=value` word, whose
 *     name (case-insensitive, percent-decoded) contains pass, pwd, token,
 *     secret, key, credential, auth or sig (password, passwd,
 *     sslpassword, api_key, access_token, sasl.password, Azure's sig, ...);
 *   - in a libpq conninfo, a word without `=` (libpq rejects it; it is most
 *     likely the rest of a password with a space in it), and a dbname that is
 *     itself a conninfo or URI.
 *
 * Every function returns a new string (caller frees with mem_free); NULL in
 * gives NULL out. */
#ifndef DAGQ_REDACT_H
#define DAGQ_REDACT_H

#include <stddef.h>

#define REDACTED "***"

/* A URL with its password and secret query parameters redacted:
 * "redis://u:pw@h:6379/0?token=t" -> "redis://u:***@h:6379/0?token=***".
 * A string without "scheme://" is returned unchanged. */
char *redact_url(const char *url);

/* A libpq connection string, either form: a URI (as redact_url) or
 * `key=value` words with libpq's quoting (`password='a b\' c'`,
 * `password=a\ b`, spaces around `=`):
 * "host=db password='a b\' c' user=etl" -> "host=db password=*** user=etl". */
char *redact_conninfo(const char *conninfo);

/* Free text (a log line, an error from a library) with every URL in it
 * redacted as redact_url does and every `secretname=value` (value quoted with
 * '...' or "..." or up to the next blank) as `secretname=***`. */
char *redact_text(const char *msg);

/* msg with every occurrence of each of the n secrets replaced by `***`
 * (overlapping ones together). Empty or NULL secrets are skipped; a short
 * secret takes every occurrence, wanted or not. */
char *redact_secret_in(const char *msg, const char *const *secrets, size_t n);

/* An error message from a library given the connection string dsn (a URL or
 * a conninfo, may be NULL): the secrets of dsn, as written, unescaped,
 * percent-decoded and in the pieces a URL parser would cut them into, are
 * removed wherever they appear (libpq quotes a malformed conninfo or a
 * fragment of a password back: `invalid integer value "pa" for connection
 * option "port"`), then the message is redacted as redact_text does. */
char *redact_error(const char *msg, const char *dsn);

/* Does the parameter or option name name[0..n) name a secret (see above)? */
int redact_name_is_secret(const char *name, size_t n);

#endif

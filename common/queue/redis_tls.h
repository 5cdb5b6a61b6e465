/* redis_tls — rediss://: a TLS connection to Redis for hiredis 0.14
 * (internal to common/queue/).
 *
 * hiredis learnt TLS in 1.0 (hiredis_ssl); Debian 12 ships 0.14.1, which
 * reads and writes its socket itself. So the TLS session is OpenSSL's, on a
 * TCP socket of our own, and hiredis gets one end of a socketpair: a relay
 * thread per connection moves bytes between the other end and the session.
 * Everything above the socket (timeouts on hiredis's end, the idle check,
 * the reconnect logic) works as for plain connections. When Redis closes the
 * session, the relay closes hiredis's side (hiredis sees EOF); when hiredis's
 * side is closed (redisFree), the relay ends. The relay blocks every signal,
 * so signals still reach the threads that wait for them.
 *
 * Verification is always on: the server's certificate must chain to the CA
 * file (tls-ca; the system's CAs without it) and name the server (tls-server-
 * name, else the URL's host; an IP address must be in the certificate's IP
 * SANs). A client certificate and key are sent when given. The files are
 * read at every connect, so renewed certificates are picked up on the next
 * reconnect. */
#ifndef DAGQ_REDIS_TLS_H
#define DAGQ_REDIS_TLS_H

#include "redis_url.h"

#include <stddef.h>

typedef struct qr_tls qr_tls; /* opaque */

/* Connects to u's server within timeout_ms, makes the TLS handshake and
 * starts the relay: 0 with *out and *fd (the socket hiredis is to use, owned
 * by hiredis's context from then on). QUEUE_ECONN when the server is
 * unreachable or the handshake times out; QUEUE_EINVAL when a file cannot
 * be loaded or the handshake fails (the certificate is not accepted, the
 * server refuses ours), with why naming the problem. */
int qr_tls__connect(const qr_url *u, int timeout_ms, qr_tls **out, int *fd, char *why,
                    size_t whylen);

/* Why the server ended the session, when it did so before it replied to
 * anything (a TLS 1.3 server refuses a client certificate, or the lack of
 * one, only after the handshake): QUEUE_EINVAL for a TLS alert,
 * QUEUE_ECONN for a bare close, with words in buf; 0 otherwise. */
int qr_tls__refused(qr_tls *t, char *buf, size_t len);

/* Stops the relay and frees the session; call after hiredis's socket is
 * closed. NULL does nothing. */
void qr_tls__free(qr_tls *t);

#endif

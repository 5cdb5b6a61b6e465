/* redis_tls — rediss://: a TLS connection to Redis for hiredis 0.14
 * (internal to common/queue/).
 *
 * hiredis learnt TLS in 1.0 (hiredis_ssl); Debian 12 ships 0.14.1, which
 * reads and writes its socket itself. So the TLS session is OpenSSL's, on a
 * TCP socket of our own, made here, and hiredis gets one end of a
 * socketpair that redis_relay.c serves.
 *
 * Verification is always on: the server's certificate must chain to the CA
 * file (tls-ca; the system's CAs without it) and name the server (tls-server-
 * name, else the URL's host; an IP address must be in the certificate's IP
 * SANs). A client certificate and key are sent when given. The files are
 * read at every connect, so renewed certificates are picked up on the next
 * reconnect. */
#ifndef DAGQ_REDIS_TLS_H
#define DAGQ_REDIS_TLS_H

#include "redis_relay.h"
#include "redis_url.h"

#include <stddef.h>

/* Connects to u's server within timeout_ms, makes the TLS handshake and
 * starts the relay: 0 with *out (free with qr_relay__free) and *fd (the
 * socket hiredis is to use, owned by hiredis's context from then on).
 * QUEUE_ECONN when the server is unreachable or the handshake times out;
 * QUEUE_EINVAL when a file cannot be loaded or the handshake fails (the
 * certificate is not accepted, the server refuses ours), with why naming
 * the problem. */
int qr_tls__connect(const qr_url *u, int timeout_ms, qr_relay **out, int *fd, char *why,
                    size_t whylen);

#endif

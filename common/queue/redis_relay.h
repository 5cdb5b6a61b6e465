/* redis_relay — serves a TLS session to hiredis (internal to
 * common/queue/): a thread moves bytes between one end of a socketpair and
 * the session; hiredis has the other end (redis_tls.h says why). Everything
 * above the socket (timeouts on hiredis's end, the idle check, the reconnect
 * logic) works as for plain connections. When Redis ends the session, the
 * relay closes hiredis's side (hiredis sees EOF); when hiredis's side is
 * closed (redisFree), the relay ends. The thread blocks every signal, so
 * signals still reach the threads that wait for them. */
#ifndef DAGQ_REDIS_RELAY_H
#define DAGQ_REDIS_RELAY_H

#include <openssl/ssl.h>

#include <stddef.h>

typedef struct qr_relay qr_relay; /* opaque */

/* Serves ssl (handshake done) on the TCP socket tcp, both the relay's from
 * the call on, even when it fails: 0 with *out and *fd (hiredis's end), or
 * QUEUE_ECONN with why. client_cert: whether ours was sent, for the words of
 * qr_relay__refused. */
int qr_relay__start(SSL *ssl, int tcp, int client_cert, qr_relay **out, int *fd, char *why,
                    size_t whylen);

/* Why the server ended the session, when it did so before it replied to
 * anything (a TLS 1.3 server refuses a client certificate, or the lack of
 * one, only after the handshake): QUEUE_EINVAL for a TLS alert,
 * QUEUE_ECONN for a bare close, with words in buf; 0 otherwise. */
int qr_relay__refused(qr_relay *r, char *buf, size_t len);

/* Stops the thread, ends the session and closes its sockets; call after
 * hiredis's socket is closed. NULL does nothing. */
void qr_relay__free(qr_relay *r);

#endif

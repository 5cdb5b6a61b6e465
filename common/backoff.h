/* backoff — retry delays.
 * backoff_retry_delay: the delay before try `try_number + 1` after try
 * `try_number` failed (try_number >= 1). Without exponential backoff it is
 * `base`; with it, base * 2^(try_number-1), capped at `max` (and never more than
 * `max` even if the doubling overflows). All in seconds; negative inputs are
 * treated as 0.
 * backoff_reconnect: the delay before reconnect attempt `attempt` (0-based)
 * to a lost server: 100 ms doubling to at most 5000 ms, in milliseconds. */
#ifndef DAGQ_BACKOFF_H
#define DAGQ_BACKOFF_H

double backoff_retry_delay(double base, int try_number, int exponential, double max);
int backoff_reconnect_ms(int attempt);

#endif

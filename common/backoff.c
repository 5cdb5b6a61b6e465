#include "backoff.h"

/*
 * Retry delay. With exponential backoff the delay is base * 2^(try_number-1),
 * computed by repeated doubling. Doubling a double is exact (it only changes
 * the exponent), so no rounding happens anywhere: the result is exactly
 * base * 2^(try_number-1) while that is below max, and exactly max once it
 * reaches or passes it. The loop stops as soon as the cap is reached, so a
 * large try_number (1000, INT_MAX) neither overflows nor loops long: at most
 * about 2100 doublings take the smallest positive double past any finite max.
 * NaN inputs count as 0, like negative ones. try_number below 1 counts as 1.
 * The cap applies to exponential backoff only; the constant delay is base.
 */
double backoff_retry_delay(double base, int try_number, int exponential, double max)
{
    if (!(base > 0))
        base = 0;
    if (!(max > 0))
        max = 0;
    if (!exponential)
        return base;
    if (base == 0)
        return 0;

    double d = base;
    for (int i = 1; i < try_number && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

/* 100, 200, 400, 800, 1600, 3200, then 5000 ms for every later attempt. */
int backoff_reconnect_ms(int attempt)
{
    if (attempt < 0)
        attempt = 0;
    if (attempt >= 6)
        return 5000;
    int ms = 100 << attempt;
    return ms < 5000 ? ms : 5000;
}

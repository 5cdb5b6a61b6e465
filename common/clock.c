#include "clock.h"

#include <errno.h>

static struct timespec clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

double clock_now_s(void)
{
    struct timespec ts = clock_mono();
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t clock_now_ms(void)
{
    struct timespec ts = clock_mono();
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec clock_after_ms(int64_t ms)
{
    struct timespec ts = clock_mono();
    if (ms <= 0)
        return ts;
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000LL;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

void clock_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

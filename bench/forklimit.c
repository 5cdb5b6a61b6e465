/* forklimit: how many `/bin/sh -c true` this machine forks, execs and reaps
 * a second on all its cores. P processes (default: the number of CPUs) each
 * loop fork + exec + waitpid for the given seconds; prints the total rate.
 * usage: forklimit [SECONDS] [PROCESSES] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    long procs = argc > 2 ? atol(argv[2]) : sysconf(_SC_NPROCESSORS_ONLN);
    if (procs < 1)
        procs = 1;
    long *counts =
        mmap(NULL, sizeof(long) * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    double t0 = now(), end = t0 + secs;
    for (long i = 0; i < procs; i++) {
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 1;
        }
        if (p == 0) {
            long n = 0;
            while (now() < end) {
                pid_t c = fork();
                if (c == 0) {
                    execl("/bin/sh", "sh", "-c", "true", (char *)NULL);
                    _exit(127);
                }
                if (c < 0)
                    continue;
                int st;
                waitpid(c, &st, 0);
                n++;
            }
            counts[i] = n;
            _exit(0);
        }
    }
    for (long i = 0; i < procs; i++)
        wait(NULL);
    double el = now() - t0;
    long total = 0;
    for (long i = 0; i < procs; i++)
        total += counts[i];
    printf("%.1f\n", total / el);
    return 0;
}

#include "child.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHILD_READ 16384 /* bytes per read(2) of the output pipe */

struct child {
    pid_t pid;
    int fd;
    char *buf;
    size_t len, cap;
    unsigned long long total;
};

int child_spawn(const char *command, char *const envp[], child **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        snprintf(errbuf, errlen, "open /dev/null: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    char *const argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(errbuf, errlen, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        close(devnull);
        return -1;
    }
    if (pid == 0) {
        /* In the child only async-signal-safe calls until execve. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the worker died before we got here */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaction(s, &dfl, NULL);
        if (dup2(devnull, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(127);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so signals to the group work at once */
    close(p[1]);
    close(devnull);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    child *c = mem_calloc(1, sizeof *c);
    c->pid = pid;
    c->fd = p[0];
    c->cap = 64 * 1024;
    c->buf = mem_alloc(c->cap);
    *out = c;
    return 0;
}

pid_t child_pid(const child *c)
{
    return c->pid;
}

int child_fd(const child *c)
{
    return c->fd;
}

/* Keeps at most 2 * CHILD_OUTPUT_MAX in memory: when full, the last
 * CHILD_OUTPUT_MAX bytes move to the front. n is one read, at most
 * CHILD_READ bytes (far below CHILD_OUTPUT_MAX). The buffer starts at 64 KiB
 * and grows once, to 2 * CHILD_OUTPUT_MAX, when a try writes more. */
static void child_keep(child *c, const char *data, size_t n)
{
    c->total += n;
    if (c->len + n > 2 * CHILD_OUTPUT_MAX) {
        size_t keep = CHILD_OUTPUT_MAX - n;
        if (keep > c->len)
            keep = c->len;
        memmove(c->buf, c->buf + c->len - keep, keep);
        c->len = keep;
    }
    if (c->len + n > c->cap) {
        c->cap = 2 * CHILD_OUTPUT_MAX;
        c->buf = mem_realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

int child_read(child *c)
{
    if (c->fd < 0)
        return 1;
    char tmp[CHILD_READ];
    for (;;) {
        ssize_t n = read(c->fd, tmp, sizeof tmp);
        if (n > 0) {
            child_keep(c, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close(c->fd); /* EOF or error */
        c->fd = -1;
        return 1;
    }
}

void child_signal(child *c, int sig)
{
    if (c->pid > 0)
        kill(-c->pid, sig);
}

void child_exited(child *c)
{
    child_read(c);
    /* what the command left behind in its group would keep the pipe open and
     * outlive the try: end it */
    kill(-c->pid, SIGKILL);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t child_utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] >= 0x01 && p[0] < 0x80)
        return 1;
    size_t len;
    unsigned int cp;
    if ((p[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *child_output(const child *c, long long *truncated)
{
    const unsigned char *p = (const unsigned char *)c->buf;
    size_t n = c->len;
    if (n > CHILD_OUTPUT_MAX) {
        p += n - CHILD_OUTPUT_MAX;
        n = CHILD_OUTPUT_MAX;
    }
    *truncated = (long long)(c->total - n);
    char *out = mem_alloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = child_utf8_len(p + i, n - i);
        if (l) {
            memcpy(out + o, p + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

void child_free(child *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    mem_free(c->buf);
    mem_free(c);
}

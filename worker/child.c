#include "child.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- identities ---- */

#define CHILD_GROUPS_MAX 1024

struct child_identity {
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    int ngroups;
    char *name, *home;
};

/* The raw system calls: glibc's wrappers would try to change the identity of
 * every thread (they signal them), which is not async-signal-safe and makes no
 * sense in a child that has one thread. */
#ifdef SYS_setresuid32
#define CHILD_SYS_SETGROUPS SYS_setgroups32
#define CHILD_SYS_GETGROUPS SYS_getgroups32
#define CHILD_SYS_SETRESGID SYS_setresgid32
#define CHILD_SYS_SETRESUID SYS_setresuid32
#define CHILD_SYS_GETRESGID SYS_getresgid32
#define CHILD_SYS_GETRESUID SYS_getresuid32
#else
#define CHILD_SYS_SETGROUPS SYS_setgroups
#define CHILD_SYS_GETGROUPS SYS_getgroups
#define CHILD_SYS_SETRESGID SYS_setresgid
#define CHILD_SYS_SETRESUID SYS_setresuid
#define CHILD_SYS_GETRESGID SYS_getresgid
#define CHILD_SYS_GETRESUID SYS_getresuid
#endif

void child_identity_free(child_identity *id)
{
    if (!id)
        return;
    mem_free(id->groups);
    mem_free(id->name);
    mem_free(id->home);
    mem_free(id);
}

uid_t child_identity_uid(const child_identity *id)
{
    return id->uid;
}

gid_t child_identity_gid(const child_identity *id)
{
    return id->gid;
}

static int child_gid_cmp(const void *a, const void *b)
{
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

/* The passwd entry of user into *pw, its strings in *buf (caller frees). */
static int child_getpw(const char *user, struct passwd *pw, char **buf, char *errbuf, size_t errlen)
{
    size_t size = 1024;
    for (;;) {
        struct passwd *res = NULL;
        *buf = mem_realloc(*buf, size);
        int rc = getpwnam_r(user, pw, *buf, size, &res);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        if (rc == 0 && res)
            return 0;
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
            snprintf(errbuf, errlen, "unknown user \"%s\"", user);
        else
            snprintf(errbuf, errlen, "looking up user \"%s\": %s", user, strerror(rc));
        return -1;
    }
}

int child_identity_lookup(const char *user, child_identity **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (!user || !*user) {
        snprintf(errbuf, errlen, "no user name given");
        return -1;
    }
    struct passwd pw;
    char *buf = NULL;
    if (child_getpw(user, &pw, &buf, errbuf, errlen) != 0) {
        mem_free(buf);
        return -1;
    }
    child_identity *id = mem_calloc(1, sizeof *id);
    id->uid = pw.pw_uid;
    id->gid = pw.pw_gid;
    id->name = mem_strdup(pw.pw_name);
    id->home = mem_strdup(pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/");
    int n = 32;
    id->groups = mem_alloc(sizeof *id->groups * (size_t)n);
    while (getgrouplist(pw.pw_name, pw.pw_gid, id->groups, &n) < 0 && n <= CHILD_GROUPS_MAX)
        id->groups = mem_realloc(id->groups, sizeof *id->groups * (size_t)n);
    mem_free(buf);
    if (n > CHILD_GROUPS_MAX) {
        snprintf(errbuf, errlen, "user \"%s\" is in more than %d groups", user, CHILD_GROUPS_MAX);
        child_identity_free(id);
        return -1;
    }
    id->ngroups = n;
    qsort(id->groups, (size_t)n, sizeof *id->groups, child_gid_cmp); /* as setgroups keeps them */
    *out = id;
    return 0;
}

/* In the child: becomes id, for good. Async-signal-safe. */
static int child_switch(const child_identity *id)
{
    uid_t r, e, s;
    gid_t rg, eg, sg, groups[CHILD_GROUPS_MAX];
    if (syscall(CHILD_SYS_SETGROUPS, (size_t)id->ngroups, id->groups) != 0 ||
        syscall(CHILD_SYS_SETRESGID, id->gid, id->gid, id->gid) != 0 ||
        syscall(CHILD_SYS_SETRESUID, id->uid, id->uid, id->uid) != 0)
        return -1;
    /* that it all took */
    if (syscall(CHILD_SYS_GETRESUID, &r, &e, &s) != 0 || r != id->uid || e != id->uid ||
        s != id->uid || syscall(CHILD_SYS_GETRESGID, &rg, &eg, &sg) != 0 || rg != id->gid ||
        eg != id->gid || sg != id->gid)
        return -1;
    long n = syscall(CHILD_SYS_GETGROUPS, (int)CHILD_GROUPS_MAX, groups);
    if (n != id->ngroups)
        return -1;
    for (long i = 0; i < n; i++)
        if (groups[i] != id->groups[i])
            return -1;
    /* and that root cannot come back */
    if (id->uid != 0 && syscall(CHILD_SYS_SETRESUID, 0, 0, 0) != -1)
        return -1;
    return 0;
}

/* envp without HOME, USER and LOGNAME, then those of id. A new array of new
 * strings (free with child_env_free). */
static char **child_env_for(const child_identity *id, char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    char **e = mem_calloc(n + 4, sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], "HOME=", 5) && strncmp(envp[i], "USER=", 5) &&
            strncmp(envp[i], "LOGNAME=", 8))
            e[k++] = mem_strdup(envp[i]);
    e[k++] = mem_printf("HOME=%s", id->home);
    e[k++] = mem_printf("USER=%s", id->name);
    e[k++] = mem_printf("LOGNAME=%s", id->name);
    return e;
}

static void child_env_free(char **e)
{
    for (size_t i = 0; e && e[i]; i++)
        mem_free(e[i]);
    mem_free(e);
}

/* ---- starting ---- */

typedef struct child_start {
    const char *command;
    char *const *envp;
    const child_identity *as;
    const char *fail_msg; /* written when the switch to as fails */
    size_t fail_len;
    int devnull, out;
    pid_t parent;
} child_start;

/* In the child: only async-signal-safe calls until execve. */
static void child_exec(const child_start *st) __attribute__((noreturn));

static void child_exec(const child_start *st)
{
    setpgid(0, 0);
    if (dup2(st->devnull, 0) < 0 || dup2(st->out, 1) < 0 || dup2(st->out, 2) < 0)
        _exit(127);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    if (st->as && child_switch(st->as) != 0) {
        ssize_t w = write(2, st->fail_msg, st->fail_len);
        (void)w;
        _exit(127); /* never run as the worker */
    }
    /* after the switch: changing credentials clears the parent-death signal */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != st->parent)
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
    char *const argv[] = {"/bin/sh", "-c", (char *)st->command, NULL};
    execve("/bin/sh", argv, st->envp);
    _exit(127);
}

int child_spawn(const char *command, char *const envp[], const child_identity *as, child **out,
                char *errbuf, size_t errlen)
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
    /* everything the child needs is made here, before fork */
    char **env = as ? child_env_for(as, envp) : NULL;
    char *fail = as ? mem_printf("dagq: cannot run the command as user %s (uid %lu, gid %lu): "
                                 "switching to it failed; nothing was run\n",
                                 as->name, (unsigned long)as->uid, (unsigned long)as->gid)
                    : NULL;
    child_start st = {command, env ? env : envp, as, fail, fail ? strlen(fail) : 0, devnull,
                      p[1],    getpid()};
    pid_t pid = fork();
    if (pid == 0)
        child_exec(&st);
    int fork_errno = errno;
    child_env_free(env);
    mem_free(fail);
    close(p[1]);
    close(devnull);
    if (pid < 0) {
        snprintf(errbuf, errlen, "fork: %s", strerror(fork_errno));
        close(p[0]);
        return -1;
    }
    setpgid(pid, pid); /* also here, so signals to the group work at once */
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

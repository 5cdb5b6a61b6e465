#include "alert_command.h"

#include "alert_send.h"
#include "clock.h"
#include "errbuf.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALERT_COMMAND_OUTPUT_MAX 4096

/* The child's environment: a few of ours, then the event's. NULL-ended;
 * free the array (not the strings of env) with alert_command_env_free. */
static char **alert_command_env(char **env, int nenv, int *nown)
{
    static const char *keep[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ"};
    const size_t nkeep = sizeof keep / sizeof keep[0];
    char **e = mem_calloc(nkeep + (size_t)nenv + 2, sizeof *e);
    int n = 0;
    for (size_t i = 0; i < nkeep; i++) {
        const char *v = getenv(keep[i]);
        if (!v && !strcmp(keep[i], "PATH"))
            v = "/usr/local/bin:/usr/bin:/bin";
        if (v)
            e[n++] = mem_printf("%s=%s", keep[i], v);
    }
    *nown = n;
    for (int i = 0; i < nenv; i++)
        e[n++] = env[i];
    return e;
}

static void alert_command_env_free(char **e, int nown)
{
    for (int i = 0; i < nown; i++)
        mem_free(e[i]);
    mem_free(e);
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void alert_command_child(int in, int out, const char *command, char **envp)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    closefrom(3);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    char *const argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    execve("/bin/sh", argv, envp);
    _exit(127);
}

typedef struct alert_io {
    int in, out;       /* our ends: the child's stdin, its stdout+stderr */
    const char *input; /* what is left to write */
    size_t left;
    char buf[ALERT_COMMAND_OUTPUT_MAX + 1];
    size_t got;
} alert_io;

/* One round of I/O with the child, at most wait_ms. */
static void alert_command_io(alert_io *io, int wait_ms)
{
    struct pollfd p[2];
    int n = 0, iin = -1, iout = -1;
    if (io->in >= 0) {
        p[n] = (struct pollfd){io->in, POLLOUT, 0};
        iin = n++;
    }
    if (io->out >= 0) {
        p[n] = (struct pollfd){io->out, POLLIN, 0};
        iout = n++;
    }
    if (n == 0) {
        clock_sleep_ms(wait_ms);
        return;
    }
    if (poll(p, (nfds_t)n, wait_ms) <= 0)
        return;
    if (iin >= 0 && p[iin].revents) {
        ssize_t w = io->left ? write(io->in, io->input, io->left) : 0;
        if (w > 0) {
            io->input += w;
            io->left -= (size_t)w;
        }
        /* all written, or the command closed its stdin (EPIPE): done */
        if (io->left == 0 || (w < 0 && errno != EAGAIN && errno != EINTR)) {
            close(io->in);
            io->in = -1;
        }
    }
    if (iout >= 0 && p[iout].revents) {
        char tmp[4096];
        ssize_t r = read(io->out, tmp, sizeof tmp);
        if (r > 0) {
            size_t room = ALERT_COMMAND_OUTPUT_MAX - io->got;
            size_t k = (size_t)r < room ? (size_t)r : room;
            memcpy(io->buf + io->got, tmp, k);
            io->got += k;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(io->out);
            io->out = -1;
        }
    }
}

/* "exit N: <first line>" into response. */
static void alert_command_answer(alert_io *io, int status, char *response, size_t rlen)
{
    io->buf[io->got] = '\0';
    char *nl = strpbrk(io->buf, "\r\n");
    if (nl)
        *nl = '\0';
    if (WIFEXITED(status))
        snprintf(response, rlen, "exit %d%s%.200s", WEXITSTATUS(status), *io->buf ? ": " : "",
                 io->buf);
    else if (WIFSIGNALED(status))
        snprintf(response, rlen, "killed by signal %d", WTERMSIG(status));
}

int alert_command_run(const char *command, char **env, int nenv, const char *input, int timeout_ms,
                      const volatile int *stop, char *response, size_t rlen, char *errbuf,
                      size_t errlen)
{
    int inp[2], outp[2], nown = 0;
    response[0] = '\0';
    if (pipe2(inp, O_CLOEXEC) != 0) {
        errbuf_printf(errbuf, errlen, "command: pipe: %s", strerror(errno));
        return ALERT_SEND_FAILED;
    }
    if (pipe2(outp, O_CLOEXEC) != 0) {
        errbuf_printf(errbuf, errlen, "command: pipe: %s", strerror(errno));
        close(inp[0]);
        close(inp[1]);
        return ALERT_SEND_FAILED;
    }
    char **envp = alert_command_env(env, nenv, &nown);
    pid_t pid = fork();
    if (pid == 0)
        alert_command_child(inp[0], outp[1], command, envp);
    int err = errno;
    alert_command_env_free(envp, nown);
    close(inp[0]);
    close(outp[1]);
    if (pid < 0) {
        errbuf_printf(errbuf, errlen, "command: fork: %s", strerror(err));
        close(inp[1]);
        close(outp[0]);
        return ALERT_SEND_FAILED;
    }
    alert_io io = {.in = inp[1], .out = outp[0], .input = input ? input : ""};
    io.left = strlen(io.input);
    fcntl(io.in, F_SETFL, O_NONBLOCK);
    fcntl(io.out, F_SETFL, O_NONBLOCK);

    int64_t deadline = clock_now_ms() + timeout_ms;
    int status = 0, exited = 0, rc = ALERT_SEND_FAILED;
    while (!exited || io.out >= 0) {
        if (!exited && waitpid(pid, &status, WNOHANG) == pid)
            exited = 1;
        if (stop && *stop) {
            rc = ALERT_SEND_STOPPED;
            break;
        }
        if (clock_now_ms() >= deadline) {
            errbuf_printf(errbuf, errlen, "command timed out after %d ms", timeout_ms);
            break;
        }
        alert_command_io(&io, exited ? 20 : 100);
    }
    kill(-pid, SIGKILL); /* what it left running, or all of it at the timeout */
    if (!exited)
        waitpid(pid, &status, 0);
    else
        alert_command_answer(&io, status, response, rlen);
    if (io.in >= 0)
        close(io.in);
    if (io.out >= 0)
        close(io.out);
    if (exited && !(stop && *stop)) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            return ALERT_SEND_OK;
        errbuf_printf(errbuf, errlen, "command failed: %s", response);
        return ALERT_SEND_FAILED;
    }
    return rc;
}

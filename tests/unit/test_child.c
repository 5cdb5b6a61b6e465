/* The unit tests link common/ only; child.c is the worker's, so it is
 * compiled in here. */
#include "../../worker/child.c"

#include "test.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char user[32], group[32]; /* the throwaway user and its extra group */
static int have_user;
static char dir[] = "/tmp/dagq-test-child-XXXXXX";

/* Runs command (as as, or as ourselves), waits for it; returns its exit
 * status (128 + signal) and its output in *out (mem_free), or -1. */
static int run(const char *command, char *const envp[], const child_identity *as, char **out)
{
    child *c = NULL;
    char err[256];
    *out = NULL;
    if (child_spawn(command, envp, as, &c, err, sizeof err) != 0) {
        TEST_FAIL_AT("child_spawn: %s", err);
        return -1;
    }
    time_t deadline = time(NULL) + 20;
    while (child_fd(c) >= 0 && time(NULL) < deadline) {
        struct pollfd p = {child_fd(c), POLLIN, 0};
        if (poll(&p, 1, 500) > 0 && child_read(c))
            break;
    }
    if (child_fd(c) >= 0)
        child_signal(c, SIGKILL);
    int st;
    waitpid(child_pid(c), &st, 0);
    child_exited(c);
    long long truncated;
    *out = child_output(c, &truncated);
    child_free(c);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *const base_env[] = {"PATH=/usr/bin:/bin", "HOME=/root", "USER=root",
                                 "LOGNAME=root",       "KEEP=kept",  NULL};

static child_identity *lookup(const char *name)
{
    child_identity *id = NULL;
    char err[256];
    if (child_identity_lookup(name, &id, err, sizeof err) != 0)
        TEST_FAIL_AT("child_identity_lookup(%s): %s", name, err);
    return id;
}

/* What `id` says about a user, from the passwd and group databases. */
static char *id_of(const char *opt, const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "id %s %s", opt, name);
    char *out;
    if (run(cmd, base_env, NULL, &out) != 0)
        TEST_FAIL_AT("%s failed: %s", cmd, out);
    return out;
}

TEST(runs_as_the_user)
{
    child_identity *id = lookup(user);
    if (!id)
        return;
    char *out, want[160];
    ASSERT_EQ(run("id -u", base_env, id, &out), 0);
    snprintf(want, sizeof want, "%lu\n", (unsigned long)child_identity_uid(id));
    ASSERT_STR_EQ(out, want);
    ASSERT_TRUE(child_identity_uid(id) != 0);
    mem_free(out);
    ASSERT_EQ(run("id -g", base_env, id, &out), 0);
    snprintf(want, sizeof want, "%lu\n", (unsigned long)child_identity_gid(id));
    ASSERT_STR_EQ(out, want);
    mem_free(out);
    /* real, effective and saved ids all switched; groups those of the user */
    ASSERT_EQ(run("grep -E '^(Uid|Gid):' /proc/self/status", base_env, id, &out), 0);
    char line[128];
    snprintf(line, sizeof line, "Uid:\t%lu\t%lu\t%lu\t%lu", (unsigned long)child_identity_uid(id),
             (unsigned long)child_identity_uid(id), (unsigned long)child_identity_uid(id),
             (unsigned long)child_identity_uid(id));
    ASSERT_CONTAINS(out, line);
    mem_free(out);
    char *groups = id_of("-G", user);
    ASSERT_EQ(run("id -G", base_env, id, &out), 0);
    ASSERT_STR_EQ(out, groups);
    if (have_user)
        ASSERT_CONTAINS(out, " "); /* its primary group and the extra one */
    mem_free(out);
    mem_free(groups);
    /* HOME, USER, LOGNAME are the user's; the rest of the environment is kept */
    ASSERT_EQ(
        run("printf '%s %s %s %s' \"$HOME\" \"$USER\" \"$LOGNAME\" \"$KEEP\"", base_env, id, &out),
        0);
    snprintf(want, sizeof want, "/nonexistent %s %s kept", user, user);
    ASSERT_STR_EQ(out, want);
    mem_free(out);
    child_identity_free(id);
}

TEST(cannot_read_roots_files)
{
    child_identity *id = lookup(user);
    if (!id)
        return;
    char path[128], cmd[256];
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    if (!f)
        return;
    fputs("the-root-secret\n", f);
    fclose(f);
    ASSERT_EQ(chmod(path, 0600), 0);
    snprintf(cmd, sizeof cmd, "cat %s", path);
    char *out;
    ASSERT_EQ(run(cmd, base_env, NULL, &out), 0); /* root can */
    ASSERT_STR_EQ(out, "the-root-secret\n");
    mem_free(out);
    ASSERT_EQ(run(cmd, base_env, id, &out), 1); /* the user cannot */
    ASSERT_CONTAINS(out, "Permission denied");
    ASSERT_TRUE(!strstr(out, "the-root-secret"));
    mem_free(out);
    /* nor become root again */
    ASSERT_TRUE(
        run("su -c true root </dev/null 2>&1; sudo -n true 2>&1; exit 0", base_env, id, &out) == 0);
    mem_free(out);
    ASSERT_EQ(run("id -u", base_env, id, &out), 0);
    ASSERT_TRUE(strcmp(out, "0\n") != 0);
    mem_free(out);
    unlink(path);
    child_identity_free(id);
}

TEST(unknown_user)
{
    child_identity *id = (child_identity *)&id;
    char err[256] = "";
    ASSERT_EQ(child_identity_lookup("no_such_user_dagq", &id, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "unknown user \"no_such_user_dagq\"");
    ASSERT_TRUE(id == NULL);
    id = (child_identity *)&id;
    ASSERT_EQ(child_identity_lookup("", &id, err, sizeof err), -1);
    ASSERT_TRUE(id == NULL);
    ASSERT_EQ(child_identity_lookup(NULL, &id, err, sizeof err), -1);
    child_identity_free(NULL);
}

TEST(without_identity_as_before)
{
    char *out;
    ASSERT_EQ(run("id -u; printf %s \"$HOME\"", base_env, NULL, &out), 0);
    ASSERT_STR_EQ(out, "0\n/root");
    mem_free(out);
    ASSERT_EQ(run("exit 3", base_env, NULL, &out), 3);
    mem_free(out);
}

/* A worker that is not root cannot switch: the child must say so and exit
 * 127 without running the command, as the worker or anyone. */
TEST(failed_switch_runs_nothing)
{
    child_identity *id = lookup(user), *nobody = lookup("nobody");
    if (!id || !nobody)
        return;
    char marker[128], cmd[256];
    snprintf(marker, sizeof marker, "%s/ran", dir);
    snprintf(cmd, sizeof cmd, "touch %s; id -u", marker);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t helper = fork();
    if (helper == 0) { /* becomes an unprivileged "worker" */
        close(p[0]);
        if (setgroups(0, NULL) || setgid(child_identity_gid(nobody)) ||
            setuid(child_identity_uid(nobody)))
            _exit(2);
        char *out;
        int st = run(cmd, base_env, id, &out);
        dprintf(p[1], "%d %s", st, out ? out : "");
        _exit(0);
    }
    close(p[1]);
    char res[512] = "";
    ssize_t n, len = 0;
    while ((n = read(p[0], res + len, sizeof res - 1 - (size_t)len)) > 0)
        len += n;
    close(p[0]);
    int st;
    waitpid(helper, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_TRUE(!strncmp(res, "127 ", 4));
    ASSERT_CONTAINS(res, "dagq: cannot run the command as user ");
    ASSERT_CONTAINS(res, "nothing was run");
    ASSERT_TRUE(access(marker, F_OK) != 0);
    unlink(marker);
    child_identity_free(id);
    child_identity_free(nobody);
}

/* Switching identity clears the parent-death signal; it must be set again. */
TEST(dies_with_the_worker)
{
    child_identity *id = lookup(user);
    if (!id)
        return;
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t helper = fork();
    if (helper == 0) {
        close(p[0]);
        child *c = NULL;
        char err[256];
        if (child_spawn("exec sleep 30", base_env, id, &c, err, sizeof err) != 0)
            _exit(2);
        usleep(200 * 1000); /* past the switch */
        dprintf(p[1], "%d\n", (int)child_pid(c));
        pause();
        _exit(0);
    }
    close(p[1]);
    char buf[32] = "";
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    pid_t pid = n > 0 ? (pid_t)atoi(buf) : -1;
    ASSERT_TRUE(pid > 0);
    kill(helper, SIGKILL);
    waitpid(helper, NULL, 0);
    /* we are the subreaper: the orphan comes to us; it must die of SIGKILL */
    int st = 0, reaped = 0;
    for (int i = 0; i < 50 && pid > 0 && !reaped; i++) {
        reaped = waitpid(pid, &st, WNOHANG) == pid;
        if (!reaped)
            usleep(100 * 1000);
    }
    ASSERT_TRUE(reaped);
    ASSERT_TRUE(reaped && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    if (!reaped && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    child_identity_free(id);
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans of the helpers come back to us */
    if (!mkdtemp(dir) || chmod(dir, 0755) != 0) {
        perror("mkdtemp");
        return 1;
    }
    /* a throwaway user with an extra group; nobody when that cannot be */
    snprintf(user, sizeof user, "dagqt%d", (int)getpid());
    snprintf(group, sizeof group, "dagqtg%d", (int)getpid());
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "groupadd --system %s && useradd --system --no-create-home --home-dir /nonexistent "
             "--shell /usr/sbin/nologin -G %s %s",
             group, group, user);
    have_user = geteuid() == 0 && sh(cmd) == 0;
    if (!have_user) {
        fprintf(stderr, "cannot create a user (%s); testing as nobody\n", cmd);
        snprintf(user, sizeof user, "nobody");
    }
    if (geteuid() != 0) {
        fprintf(stderr, "not root: switching users cannot be tested\n");
        RUN(unknown_user);
        RUN(without_identity_as_before);
        return TEST_DONE();
    }
    RUN(runs_as_the_user);
    RUN(cannot_read_roots_files);
    RUN(unknown_user);
    RUN(without_identity_as_before);
    RUN(failed_switch_runs_nothing);
    RUN(dies_with_the_worker);
    if (have_user) {
        snprintf(cmd, sizeof cmd, "userdel -f %s && groupdel %s", user, group);
        if (sh(cmd) != 0)
            fprintf(stderr, "cleanup failed: %s\n", cmd);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    sh(cmd);
    return TEST_DONE();
}

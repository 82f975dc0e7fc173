/* LD_PRELOAD shim for the store's fault-injection tests: counts the writes a process makes to
 * files under one folder and, at the N-th, kills the process (SIGKILL), tears the write (half of
 * its bytes, then SIGKILL), fails it with EIO, or fails it and every later one with ENOSPC.
 * Python arms it through ctypes: fault_arm(folder, kind, n); fault_count() reads the counter.
 * Intercepted: write, pwrite(64), copy_file_range, posix_fallocate(64), fallocate(64),
 * ftruncate(64): every call that puts bytes or blocks into a file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { OFF = 0, KILL = 1, TORN = 2, EIO_ONCE = 3, NOSPACE = 4 };

static char folder[4096];
static size_t folder_len = 0;
static int kind = OFF;
static long target = 0;
static long count = 0;

void fault_arm(const char *dir, int k, long n) {
    strncpy(folder, dir, sizeof(folder) - 1);
    folder_len = strlen(folder);
    kind = k;
    target = n;
    count = 0;
}

long fault_count(void) { return count; }

static int watched(int fd) {
    char link[64], path[4096];
    if (folder_len == 0) return 0;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return strncmp(path, folder, folder_len) == 0 && path[folder_len] == '/';
}

/* What to do with this write: 0 = let it through, 1 = tear it, else the errno to fail with. */
static int decide(int fd) {
    if (!watched(fd)) return 0;
    count++;
    if (kind == OFF || count < target) return 0;
    if (kind == NOSPACE) return ENOSPC;
    if (count > target) return 0;
    if (kind == KILL) kill(getpid(), SIGKILL);
    if (kind == TORN) return 1;
    return EIO;
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    int what = decide(fd);
    if (what == 1) { real_write(fd, buf, n / 2); kill(getpid(), SIGKILL); }
    if (what) { errno = what; return -1; }
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    int what = decide(fd);
    if (what == 1) { real_pwrite(fd, buf, n / 2, off); kill(getpid(), SIGKILL); }
    if (what) { errno = what; return -1; }
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    int what = decide(fd);
    if (what == 1) { real_pwrite64(fd, buf, n / 2, off); kill(getpid(), SIGKILL); }
    if (what) { errno = what; return -1; }
    return real_pwrite64(fd, buf, n, off);
}

ssize_t copy_file_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t n,
                        unsigned int flags) {
    REAL(copy_file_range);
    int what = decide(out);
    if (what == 1) {
        real_copy_file_range(in, in_off, out, out_off, n / 2, flags);
        kill(getpid(), SIGKILL);
    }
    if (what) { errno = what; return -1; }
    return real_copy_file_range(in, in_off, out, out_off, n, flags);
}

int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(posix_fallocate);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) return what;
    return real_posix_fallocate(fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len) {
    REAL(posix_fallocate64);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) return what;
    return real_posix_fallocate64(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) { errno = what; return -1; }
    return real_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate64);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) { errno = what; return -1; }
    return real_fallocate64(fd, mode, off, len);
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) { errno = what; return -1; }
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64);
    int what = decide(fd);
    if (what == 1) kill(getpid(), SIGKILL);
    if (what) { errno = what; return -1; }
    return real_ftruncate64(fd, len);
}

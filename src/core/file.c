/* Files: read-only mmap views for loading, and atomic writes for everything
 * the library saves (checkpoints, shards, tokenizer models), so that a crash
 * never leaves a half-written file where a complete one is expected. */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ilm_status ilm__mmap_open(const char *path, ilm__mmap *out)
{
    static const uint8_t empty[1];
    *out = (ilm__mmap){ 0 };
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "mmap: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ILM__RETURN_IF(fd < 0, ILM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ilm__error(ILM_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ilm__error(ILM_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        *out = (ilm__mmap){ empty, 0, false };
        return ILM_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return ilm__error(ILM_ERR_RANGE, "'%s' is too large to map", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    ILM__RETURN_IF(p == MAP_FAILED, ILM_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    *out = (ilm__mmap){ p, (size_t)st.st_size, true };
    return ILM_OK;
}

void ilm__mmap_close(ilm__mmap *m)
{
    if (m && m->mapped) munmap((void *)m->data, m->size);
    if (m) *m = (ilm__mmap){ 0 };
}

ilm_status ilm__write_all(int fd, const void *data, size_t size)
{
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        ILM__RETURN_IF(n <= 0, ILM_ERR_IO, "write failed: %s",
                       n < 0 ? strerror(errno) : "no progress");
        p += n;
        size -= (size_t)n;
    }
    return ILM_OK;
}

ilm_status ilm__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ILM__RETURN_IF(fd < 0, ILM_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some filesystems do not support fsync on directories; that is not a
     * failure of the write itself. */
    ILM__RETURN_IF(rc != 0 && e != EINVAL && e != ENOTSUP, ILM_ERR_IO,
                   "cannot fsync directory '%s': %s", dir, strerror(e));
    return ILM_OK;
}

/* The directory part of `path` ("." when there is none), in `buf`. */
static void dir_of(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, n, ".");
    else if (slash == path) snprintf(buf, n, "/");
    else snprintf(buf, n, "%.*s", (int)(slash - path), path);
}

ilm_status ilm__atomic_write(const char *path, ilm__write_fn write_fn, void *ctx)
{
    static atomic_uint counter;
    ILM__RETURN_IF(!path || !*path, ILM_ERR_INVALID_ARG, "atomic write: empty path");
    char dir[4096], tmp[4200];
    ILM__RETURN_IF(strlen(path) >= sizeof dir, ILM_ERR_INVALID_ARG,
                   "atomic write: path too long");
    dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    /* A hidden name in the same directory, so the rename stays on one
     * filesystem and a directory listing does not show it as a result. */
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld.%u", dir, base, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    ILM__RETURN_IF(fd < 0, ILM_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));

    ilm_status st = write_fn(fd, ctx);
    /* ilm__write_all knows only the descriptor: name the file here ("No
     * space left on device" alone does not say which of a corpus's or a
     * checkpoint's files failed). */
    if (st == ILM_ERR_IO) st = ilm__error(st, "cannot write '%s': %s", path, ilm_last_error());
    if (st == ILM_OK && fsync(fd) != 0)
        st = ilm__error(ILM_ERR_IO, "cannot fsync '%s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == ILM_OK)
        st = ilm__error(ILM_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (st == ILM_OK && rename(tmp, path) != 0)
        st = ilm__error(ILM_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                        strerror(errno));
    if (st != ILM_OK) {
        unlink(tmp);
        return st;
    }
    return ilm__fsync_dir(dir);
}

struct buf_ctx { const void *data; size_t size; };

static ilm_status write_buf(int fd, void *ctx)
{
    const struct buf_ctx *b = ctx;
    return ilm__write_all(fd, b->data, b->size);
}

ilm_status ilm__atomic_write_buf(const char *path, const void *data, size_t size)
{
    struct buf_ctx b = { data, size };
    return ilm__atomic_write(path, write_buf, &b);
}

/* The harnesses' shared helpers (fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <stdatomic.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[FUZZ_PATH_MAX];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag;
    if (ftw->level > 0) remove(path);
    return 0;
}

static void remove_dir(void)
{
    if (!g_dir[0]) return;
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    rmdir(g_dir);
}

/* libFuzzer often leaves by _Exit (a crash, -max_total_time), so atexit
 * is not enough: each directory carries its process id, and a new process
 * removes those of processes that are gone. */
static void remove_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int pid = 0;
        if (sscanf(e->d_name, "ilm-fuzz-%d-", &pid) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        char path[FUZZ_PATH_MAX];
        fuzz_join(path, tmp, e->d_name);
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        rmdir(path);
    }
    closedir(d);
}

const char *fuzz_dir(void)
{
    if (g_dir[0]) return g_dir;
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    remove_stale(tmp);
    snprintf(g_dir, sizeof g_dir, "%s/ilm-fuzz-%d-XXXXXX", tmp, (int)getpid());
    if (!mkdtemp(g_dir)) fuzz_fail("mkdtemp", strerror(errno));
    atexit(remove_dir);
    return g_dir;
}

void fuzz_join(char *out, const char *a, const char *b)
{
    snprintf(out, FUZZ_PATH_MAX, "%s/%s", a, b);
}

int fuzz_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) != 0 || w != n ? -1 : 0;
}

void fuzz_reset_dir(const char *dir)
{
    mkdir(dir, 0700);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A safe relative name: [A-Za-z0-9._-] parts, at most two, none "." or "..". */
static int good_name(const char *s, size_t n)
{
    if (n == 0 || n > 200) return 0;
    int slashes = 0;
    size_t part = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? s[i] : '/';
        if (c == '/') {
            if (part == 0 || (part == 1 && s[i - 1] == '.') ||
                (part == 2 && s[i - 1] == '.' && s[i - 2] == '.'))
                return 0;
            if (i < n && ++slashes > 1) return 0;
            part = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-') {
            part++;
        } else {
            return 0;
        }
    }
    return 1;
}

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
    static const char sep[] = "\n==> ";
    while (p && p + 5 <= end) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p || p + 5 > end) return NULL;
        if (memcmp(p, sep, 5) == 0) return p;
        p++;
    }
    return NULL;
}

static void write_one(const char *dir, const char *name, size_t nn, const uint8_t *p, size_t n,
                      int *count)
{
    if (!good_name(name, nn)) return;
    char rel[256], path[FUZZ_PATH_MAX];
    memcpy(rel, name, nn);
    rel[nn] = 0;
    char *slash = strchr(rel, '/');
    if (slash) {
        *slash = 0;
        fuzz_join(path, dir, rel);
        mkdir(path, 0700);
        *slash = '/';
    }
    fuzz_join(path, dir, rel);
    if (fuzz_write(path, p, n) == 0) (*count)++;
}

int fuzz_unpack(const char *dir, const uint8_t *data, size_t size, const char *default_name)
{
    fuzz_reset_dir(dir);
    return fuzz_unpack_over(dir, data, size, default_name);
}

int fuzz_unpack_over(const char *dir, const uint8_t *data, size_t size, const char *default_name)
{
    mkdir(dir, 0700);
    int count = 0;
    const uint8_t *end = data + size;
    if (size < 4 || memcmp(data, "==> ", 4) != 0) {
        write_one(dir, default_name, strlen(default_name), data, size, &count);
        return count;
    }
    const uint8_t *rec = data + 4; /* at a name */
    while (rec) {
        const uint8_t *nl = memchr(rec, '\n', (size_t)(end - rec));
        if (!nl) break;
        const uint8_t *body = nl + 1, *sep = find_sep(nl, end);
        /* find_sep may see the name's own newline as a separator start. */
        if (sep == nl) sep = find_sep(nl + 1, end);
        const uint8_t *stop = sep ? sep : end;
        if (body > stop) body = stop;
        write_one(dir, (const char *)rec, (size_t)(nl - rec), body, (size_t)(stop - body), &count);
        rec = sep ? sep + 5 : NULL;
    }
    return count;
}

static int pack_files(FILE *out, const char *dir, const char *prefix, int depth, int *first)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[FUZZ_PATH_MAX], name[FUZZ_PATH_MAX];
        fuzz_join(path, dir, e->d_name);
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "/" : "", e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth == 0) rc = pack_files(out, path, name, 1, first);
            continue;
        }
        size_t n = 0;
        uint8_t *p = fuzz_slurp(path, &n);
        if (!p) return -1;
        fprintf(out, "%s==> %s\n", *first ? "" : "\n", name);
        fwrite(p, 1, n, out);
        free(p);
        *first = 0;
    }
    closedir(d);
    return rc;
}

int fuzz_pack_dir(const char *dir, const char *out)
{
    FILE *f = fopen(out, "wb");
    if (!f) return -1;
    int first = 1;
    int rc = pack_files(f, dir, "", 0, &first);
    return fclose(f) != 0 ? -1 : rc;
}

uint8_t *fuzz_slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *p = malloc(cap);
    for (size_t r; p && (r = fread(p + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            uint8_t *q = realloc(p, cap *= 2);
            if (!q) free(p);
            p = q;
        }
    }
    fclose(f);
    *size = n;
    return p;
}

/* ---- the memory cap ----------------------------------------------------- */

#define CAP_ONE   ((size_t)256 << 20)
#define CAP_TOTAL ((size_t)1 << 30)
#define HDR 16 /* keeps malloc's 16-byte alignment */

/* Live bytes; threads of the library allocate at once (the corpus pipeline,
 * OpenMP teams).  The check and the add are not one step, so the cap may be
 * overshot by what racing threads ask for: it is a limit, not an account. */
static _Atomic size_t g_live;

static void *cap_malloc(void *user, size_t size)
{
    (void)user;
    if (size > CAP_ONE || g_live + size > CAP_TOTAL) return NULL;
    uint8_t *p = malloc(size + HDR);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    atomic_fetch_add(&g_live, size);
    return p + HDR;
}

static void cap_free(void *user, void *ptr)
{
    (void)user;
    if (!ptr) return;
    uint8_t *p = (uint8_t *)ptr - HDR;
    size_t size;
    memcpy(&size, p, sizeof size);
    atomic_fetch_sub(&g_live, size);
    free(p);
}

static void *cap_realloc(void *user, void *ptr, size_t size)
{
    if (!ptr) return cap_malloc(user, size);
    uint8_t *p = (uint8_t *)ptr - HDR;
    size_t old;
    memcpy(&old, p, sizeof old);
    if (size > CAP_ONE || g_live - old + size > CAP_TOTAL) return NULL;
    uint8_t *q = realloc(p, size + HDR);
    if (!q) return NULL;
    memcpy(q, &size, sizeof size);
    atomic_fetch_add(&g_live, size);
    atomic_fetch_sub(&g_live, old);
    return q + HDR;
}

void fuzz_limit_memory(void)
{
    static const ilm_allocator a = { cap_malloc, cap_realloc, cap_free, NULL };
    if (ilm_set_allocator(&a) != ILM_OK) fuzz_fail("ilm_set_allocator", ilm_last_error());
}

int fuzz_cancel(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user, (void)stage, (void)done, (void)total;
    return 1;
}

/* ---- assets --------------------------------------------------------------- */

int fuzz_tiny_model(const char *dir, int internlm2, int vocab)
{
    static const char llama[] =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": %d,"
        " \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"max_position_embeddings\": 64,"
        " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true,"
        " \"hidden_act\": \"silu\"}";
    static const char intern[] =
        "{\"architectures\": [\"InternLM2ForCausalLM\"], \"model_type\": \"internlm2\","
        " \"vocab_size\": %d, \"hidden_size\": 8, \"intermediate_size\": 16,"
        " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
        " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0,"
        " \"tie_word_embeddings\": false, \"hidden_act\": \"silu\", \"bias\": false}";
    char cfg[sizeof intern + 16];
    snprintf(cfg, sizeof cfg, internlm2 ? intern : llama, vocab);
    ilm_model *m = NULL;
    if (ilm_model_create(cfg, 1, &m) != ILM_OK) return -1;
    ilm_status s = ilm_model_save(m, dir);
    ilm_model_free(m);
    return s == ILM_OK ? 0 : -1;
}

const char *fuzz_spm_path(int real)
{
    static char path[FUZZ_PATH_MAX];
    const char *data = getenv("ILM_SHARED_DATA");
    snprintf(path, sizeof path, "%s/tokenizers/internlm2.model", data && *data ? data : "../shared/data");
    if (real && access(path, R_OK) == 0) return path;
    if (real) fprintf(stderr, "fuzz: %s is missing (set ILM_SHARED_DATA); using the fixture\n", path);
    if (!realpath("tests/fixtures/tokenizer/train/tokenizer.model", path))
        fuzz_fail("tokenizer fixture", "run from the repository root");
    return path;
}

const char *fuzz_seed_dir(void)
{
    const char *d = getenv("ILM_FUZZ_SEEDS");
    return d && *d ? d : NULL;
}

int fuzz_seed(const char *name, const void *p, size_t n)
{
    char path[FUZZ_PATH_MAX];
    mkdir(fuzz_seed_dir(), 0755);
    fuzz_join(path, fuzz_seed_dir(), name);
    return fuzz_write(path, p, n);
}

void fuzz_use_tokenizer(const ilm_tokenizer *t)
{
    static const char text[] = "Hello, world!  \xe4\xbd\xa0\xe5\xa5\xbd <|im_start|>user\n\t 12345 \xff\xc3";
    int32_t *ids = NULL;
    size_t n = 0;
    if (ilm_tokenizer_encode(t, text, sizeof text - 1,
                             ILM_TOKENIZE_SPECIAL | ILM_TOKENIZE_BOS | ILM_TOKENIZE_EOS, &ids, &n) != ILM_OK)
        return;
    char *back = NULL;
    size_t len = 0;
    if (ilm_tokenizer_decode(t, ids, n, 0, &back, &len) == ILM_OK) ilm_free(back);
    ilm_detokenizer *d = NULL;
    if (ilm_detokenizer_create(t, ILM_DECODE_SKIP_SPECIAL, &d) == ILM_OK) {
        const char *piece;
        size_t k;
        for (size_t i = 0; i < n; i++) (void)ilm_detokenizer_push(d, ids[i], &piece, &k);
        (void)ilm_detokenizer_flush(d, &piece, &k);
        ilm_detokenizer_free(d);
    }
    ilm_free(ids);
    char *info = NULL;
    if (ilm_tokenizer_info(t, &info) == ILM_OK) ilm_free(info);
    int32_t v = ilm_tokenizer_vocab_size(t);
    (void)ilm_tokenizer_piece(t, v - 1);
    (void)ilm_tokenizer_piece_id(t, "<s>");
}

void fuzz_use_model(const ilm_model *m)
{
    char *info = NULL;
    if (ilm_model_info(m, &info) == ILM_OK) ilm_free(info);
    if (ilm_model_tokenizer(m)) fuzz_use_tokenizer(ilm_model_tokenizer(m));
    ilm_session *s = NULL;
    if (ilm_session_create(m, "{\"context\": 4, \"threads\": 1}", &s) != ILM_OK) return;
    const int32_t ids[2] = { 0, 1 };
    const float *logits = NULL;
    (void)ilm_session_eval(s, ids, 2, &logits);
    ilm_session_free(s);
}

void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, detail ? detail : "");
    abort();
}

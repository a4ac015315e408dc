/* The ABI as users meet it: the header in C and C++, the export table, an
 * installed library found through pkg-config, and a CPU-only build that
 * carries no CUDA symbol. */
#include "tests.h"
#include "internlm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char cmd[4096];

START_TEST(header_compiles_as_c11)
{
    char *out = NULL;
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -c tests/abi/use_header.c "
             "-o /dev/null");
    int rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out);
    free(out);
}
END_TEST

START_TEST(header_compiles_as_cxx)
{
    char *out = NULL;
    snprintf(cmd, sizeof cmd,
             "c++ -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude "
             "-c tests/abi/use_header.c -o /dev/null");
    int rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out);
    free(out);
}
END_TEST

START_TEST(only_ilm_symbols_are_exported)
{
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/libinternlm.so", test_lib_dir());
    ck_assert_int_eq(test_run(cmd, &out), 0);
    int n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        const char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        ck_assert_msg(strncmp(name, "ilm_", 4) == 0 && strncmp(name, "ilm__", 5) != 0,
                      "exported symbol '%s' is not public API", name);
        n++;
    }
    ck_assert_int_ge(n, 10);
    free(out);
    snprintf(cmd, sizeof cmd, "readelf -d %s/libinternlm.so | grep SONAME", test_lib_dir());
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "[libinternlm.so.0]"));
    free(out);
}
END_TEST

START_TEST(installed_library_through_pkg_config)
{
    if (test_sanitized()) {
        test_skip("abi: the install test in the sanitizer build (it installs the plain build)");
        return;
    }
    char *dir = test_tmpdir(), *out = NULL;
    snprintf(cmd, sizeof cmd,
             "make -s --no-print-directory install PREFIX=%s >/dev/null && "
             "cc examples/version.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs "
             "libinternlm) -o %s/version && LD_LIBRARY_PATH=%s/lib %s/version",
             dir, dir, dir, dir, dir);
    int rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out);
    char want[64];
    snprintf(want, sizeof want, "libinternlm %s\n", ilm_version_string());
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "got: %s", out);
    free(out);
    /* The chat example builds against the installed library too. */
    snprintf(cmd, sizeof cmd,
             "cc -Wall -Wextra -Werror examples/generate.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig "
             "pkg-config --cflags --libs libinternlm) -o %s/generate", dir, dir);
    rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out);
    free(out);
    /* The installed CLI finds its library through its rpath. */
    snprintf(cmd, sizeof cmd, "%s/bin/internlm --version", dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, ilm_version_string()));
    free(out);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cpu_only_build_has_no_cuda)
{
    if (test_sanitized()) {
        test_skip("abi: the CPU-only rebuild in the sanitizer build");
        return;
    }
    char *dir = test_tmpdir(), *out = NULL;
    snprintf(cmd, sizeof cmd,
             "make -s --no-print-directory CUDA=0 BUILD=%s/build LIBDIR=%s/lib "
             "%s/lib/libinternlm.so.%s >/dev/null && nm -D %s/lib/libinternlm.so.%s | "
             "grep -v ' ilm_' && readelf -d %s/lib/libinternlm.so.%s | grep NEEDED",
             dir, dir, dir, ilm_version_string(), dir, ilm_version_string(), dir,
             ilm_version_string());
    int rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out);
    /* Our own ilm_cuda_* entry points are filtered out above; nothing else
     * may mention CUDA, its libraries, or the C++ runtime nvcc code needs. */
    static const char *banned[] = { "cuda", "cublas", "nccl", "libstdc++" };
    for (size_t i = 0; i < sizeof banned / sizeof *banned; i++) {
        const char *hit = strstr(out, banned[i]);
        ck_assert_msg(!hit, "CPU-only library references %s: ...%.200s", banned[i], hit);
    }
    free(out);

    /* Loaded, it answers the device query with UNSUPPORTED. */
    snprintf(cmd, sizeof cmd, "%s/lib/libinternlm.so.%s", dir, ilm_version_string());
    void *h = dlopen(cmd, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "%s", dlerror());
    ilm_status (*count)(int *) = (ilm_status(*)(int *))dlsym(h, "ilm_cuda_device_count");
    ck_assert_ptr_nonnull(count);
    int n = -1;
    ck_assert_int_eq(count(&n), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(n, 0);
    dlclose(h);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_abi(void)
{
    Suite *s = suite_create("abi");
    TCase *t = tcase_create("abi");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, header_compiles_as_c11);
    tcase_add_test(t, header_compiles_as_cxx);
    tcase_add_test(t, only_ilm_symbols_are_exported);
    tcase_add_test(t, installed_library_through_pkg_config);
    tcase_add_test(t, cpu_only_build_has_no_cuda);
    suite_add_tcase(s, t);
    return s;
}

/* The CPU's instruction-set level, chosen once per process: the best the
 * machine runs, or a lower one named by the environment variable ILM_CPU
 * ("generic", "avx2", "avx512"), so that every kernel path the dispatchers
 * can pick is testable on any machine (.ci/run runs the suite with
 * ILM_CPU=generic too).  A level the CPU lacks falls back to the best it
 * has, with a log line. */
#include "core/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CPU_X86 1
#include <cpuid.h>
#endif

static int             g_isa;
static bool            g_vnni;
static pthread_once_t  g_isa_once = PTHREAD_ONCE_INIT;

static const char *const k_names[] = { "generic", "avx2", "avx512" };

const char *ilm__isa_name(int isa)
{
    return isa >= ILM__ISA_GENERIC && isa <= ILM__ISA_AVX512 ? k_names[isa] : "?";
}

#ifdef CPU_X86
/* F16C from CPUID leaf 1 (ECX bit 29): clang has no "f16c" for
 * __builtin_cpu_supports. */
static bool has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static int isa_best(void)
{
#ifdef CPU_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !has_f16c())
        return ILM__ISA_GENERIC;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return ILM__ISA_AVX512;
    return ILM__ISA_AVX2;
#else
    return ILM__ISA_GENERIC;
#endif
}

static void pick(void)
{
    const int best = isa_best();
    g_isa = best;
#ifdef CPU_X86
    g_vnni = best == ILM__ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
#endif
    const char *env = getenv("ILM_CPU");
    if (!env || !*env) return;
    int want = -1;
    for (int i = 0; i <= ILM__ISA_AVX512; i++)
        if (strcmp(env, k_names[i]) == 0) want = i;
    if (want < 0) {
        ilm__log(ILM_LOG_WARN, "ILM_CPU=%s is not one of generic, avx2, avx512: using %s", env,
                 k_names[best]);
    } else if (want > best) {
        ilm__log(ILM_LOG_WARN, "ILM_CPU=%s: this CPU lacks %s, falling back to %s", env, env,
                 k_names[best]);
    } else {
        g_isa = want;
        if (want < best) ilm__log(ILM_LOG_INFO, "ILM_CPU=%s: kernels limited to %s", env, env);
    }
}

int ilm__isa(void)
{
    pthread_once(&g_isa_once, pick);
    return g_isa;
}

bool ilm__isa_vnni(void)
{
    pthread_once(&g_isa_once, pick);
    return g_vnni;
}

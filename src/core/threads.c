/* Thread control: one knob for both OpenMP and the BLAS, so the two never
 * fight over cores (OpenBLAS keeps its own pool, separate from OpenMP's).
 * The library leaves the embedding program's OpenMP settings alone: every
 * parallel region of ours names its size, num_threads(ilm__num_threads()). */
#include "core/internal.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own thread control; declared here instead of including its
 * cblas.h so this file does not depend on which BLAS header is installed. */
void openblas_set_num_threads(int num_threads);
int  openblas_get_num_threads(void);

static atomic_int g_threads; /* 0: not set, use the default */

static int default_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#endif
}

void ilm_set_num_threads(int n)
{
    if (n <= 0) n = default_threads();
    atomic_store(&g_threads, n);
    openblas_set_num_threads(n);
}

int ilm_get_num_threads(void) { return ilm__num_threads(); }

int ilm__blas_threads(void) { return openblas_get_num_threads(); }

int ilm__blas_set_threads(int n)
{
    int old = openblas_get_num_threads();
    if (n != old) openblas_set_num_threads(n);
    return old;
}

int ilm__num_threads(void)
{
    int n = atomic_load(&g_threads);
    return n > 0 ? n : default_threads();
}

double ilm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

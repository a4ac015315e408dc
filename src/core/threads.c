/* Thread control.  ilm_set_num_threads is the process's default thread
 * count; backends, sessions and trainers may carry their own ("threads" in
 * their configs).  Every parallel region of ours names its size, so the
 * embedding program's OpenMP settings are left alone; the BLAS runs on one
 * thread inside our regions (ilm__blas_single_thread). */
#include "core/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own thread control; declared here instead of including its
 * cblas.h so this file does not depend on which BLAS header is installed. */
void openblas_set_num_threads(int num_threads);

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
    atomic_store(&g_threads, n > 0 ? n : 0);
}

int ilm_get_num_threads(void) { return ilm__num_threads(); }

int ilm__num_threads(void)
{
    int n = atomic_load(&g_threads);
    return n > 0 ? n : default_threads();
}

static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

static void blas_one(void) { openblas_set_num_threads(1); }

void ilm__blas_single_thread(void) { pthread_once(&g_blas_once, blas_one); }

double ilm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

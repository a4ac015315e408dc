/* Version and build facts. */
#include "core/internal.h"

#define ILM__STR2(x) #x
#define ILM__STR(x) ILM__STR2(x)

#ifdef ILM_HAVE_CUDA
#define ILM__CUDA "true"
#else
#define ILM__CUDA "false"
#endif
#ifdef _OPENMP
#define ILM__OPENMP ILM__STR(_OPENMP)
#else
#define ILM__OPENMP "false"
#endif

unsigned ilm_version(void) { return ILM_VERSION_NUMBER; }

const char *ilm_version_string(void)
{
    return ILM__STR(ILM_VERSION_MAJOR) "." ILM__STR(ILM_VERSION_MINOR) "."
           ILM__STR(ILM_VERSION_PATCH);
}

const char *ilm_build_info(void)
{
    return "{\"version\":\"" ILM__STR(ILM_VERSION_MAJOR) "." ILM__STR(ILM_VERSION_MINOR)
           "." ILM__STR(ILM_VERSION_PATCH) "\",\"compiler\":\"" __VERSION__
           "\",\"openmp\":" ILM__OPENMP ",\"blas\":\"openblas\",\"cuda\":" ILM__CUDA "}";
}

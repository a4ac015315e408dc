/* The device entry points of a build without CUDA (CUDA=0 or no nvcc):
 * they say so through ilm_status instead of pretending there is no GPU. */
#include "core/internal.h"

ilm_status ilm_cuda_device_count(int *count)
{
    if (count) *count = 0;
    return ilm__error(ILM_ERR_UNSUPPORTED,
                      "cuda: this libinternlm was built without CUDA (rebuild with nvcc on PATH)");
}

ilm_status ilm_cuda_device_info(int index, char **json)
{
    (void)index;
    if (json) *json = NULL;
    int n;
    return ilm_cuda_device_count(&n);
}

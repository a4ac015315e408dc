/*
 * src/backend/cuda/ -- the CUDA backend: kernels in *.cu plus cuBLAS /
 * cuBLASLt, with NCCL for collectives.  Built only when the Makefile finds
 * nvcc (CUDA=0 turns it off); the CPU-only build then links nocuda.c
 * instead and carries no CUDA symbol at all.
 *
 * This first cut proves the plumbing: device discovery, library versions,
 * and one kernel launched and checked, all reported through ilm_status.
 */
#include "core/internal.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

/* Maps a CUDA runtime failure to ILM_ERR_NO_DEVICE (nothing usable: no
 * driver, no GPU) or ILM_ERR_BACKEND (anything else), with CUDA's text. */
static ilm_status cuda_error(cudaError_t e, const char *what)
{
    ilm_status s = (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
                    e == cudaErrorNotPermitted || e == cudaErrorDevicesUnavailable)
                       ? ILM_ERR_NO_DEVICE : ILM_ERR_BACKEND;
    return ilm__error(s, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

extern "C" ilm_status ilm_cuda_device_count(int *count)
{
    ILM__RETURN_IF(!count, ILM_ERR_INVALID_ARG, "ilm_cuda_device_count: count is NULL");
    *count = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error for later calls */
        return cuda_error(e, "cannot count devices");
    }
    ILM__RETURN_IF(n == 0, ILM_ERR_NO_DEVICE, "cuda: the runtime reports no GPU");
    *count = n;
    return ILM_OK;
}

/* Writes i * 3 + 1 to out[i]: a launch whose result the host can check. */
static __global__ void probe_kernel(int *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i * 3 + 1;
}

static ilm_status launch_probe(void)
{
    enum { N = 1000 };
    int *d = NULL, h[N];
    cudaError_t e = cudaMalloc(&d, sizeof h);
    if (e != cudaSuccess) return cuda_error(e, "cudaMalloc");
    probe_kernel<<<(N + 255) / 256, 256>>>(d, N);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess) return cuda_error(e, "probe kernel");
    for (int i = 0; i < N; i++)
        ILM__RETURN_IF(h[i] != i * 3 + 1, ILM_ERR_BACKEND,
                       "cuda: probe kernel wrote %d at %d, expected %d", h[i], i, i * 3 + 1);
    return ILM_OK;
}

extern "C" ilm_status ilm_cuda_device_info(int index, char **json)
{
    ILM__RETURN_IF(!json, ILM_ERR_INVALID_ARG, "ilm_cuda_device_info: json is NULL");
    *json = NULL;
    int n = 0;
    ILM__FORWARD(ilm_cuda_device_count(&n));
    ILM__RETURN_IF(index < 0 || index >= n, ILM_ERR_RANGE,
                   "cuda: device %d does not exist (%d present)", index, n);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) return cuda_error(e, "cudaGetDeviceProperties");
    e = cudaSetDevice(index);
    if (e != cudaSuccess) return cuda_error(e, "cudaSetDevice");
    ILM__FORWARD(launch_probe());

    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    cublasHandle_t h;
    cublasStatus_t cs = cublasCreate(&h);
    ILM__RETURN_IF(cs != CUBLAS_STATUS_SUCCESS, ILM_ERR_BACKEND,
                   "cublas: cublasCreate failed: %s", cublasGetStatusString(cs));
    int cublas_version = 0;
    cublasGetVersion(h, &cublas_version);
    cublasDestroy(h);
    size_t lt_version = cublasLtGetVersion();
    int nccl_version = 0;
    ncclGetVersion(&nccl_version);

    *json = ilm__asprintf(
        "{\"index\":%d,\"name\":\"%s\",\"compute_capability\":\"%d.%d\","
        "\"total_memory\":%zu,\"multiprocessors\":%d,\"cuda_runtime\":%d,"
        "\"cublas\":%d,\"cublaslt\":%zu,\"nccl\":%d,\"probe_kernel\":\"ok\"}",
        index, p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount,
        rt, cublas_version, lt_version, nccl_version);
    ILM__RETURN_IF(!*json, ILM_ERR_NOMEM, "cuda: out of memory");
    return ILM_OK;
}

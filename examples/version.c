/* The smallest libinternlm program: print the version of the library it
 * runs against.
 *
 *   cc version.c $(pkg-config --cflags --libs libinternlm) -o version
 */
#include <internlm.h>
#include <stdio.h>

int main(void)
{
    if (ilm_version() / 10000 != ILM_VERSION_MAJOR) {
        fprintf(stderr, "libinternlm %s does not match this header's major %d\n",
                ilm_version_string(), ILM_VERSION_MAJOR);
        return 1;
    }
    printf("libinternlm %s\n", ilm_version_string());
    int n = 0;
    ilm_status s = ilm_cuda_device_count(&n);
    printf("cuda devices: %d (%s)\n", n, ilm_status_str(s));
    return 0;
}

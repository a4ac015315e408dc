/* Compiled as C11 and as C++ by tests/test_abi.c, with every warning an
 * error: the public header must be clean in both languages. */
#include "internlm.h"

static const char *describe(ilm_status s) { return ilm_status_str(s); }

int use_header(void);
int use_header(void)
{
    ilm_model *model = 0;
    ilm_session *session = 0;
    ilm_progress_fn progress = 0;
    ilm_log_fn log = 0;
    ilm_allocator a = { 0, 0, 0, 0 };
    (void)model; (void)session; (void)progress; (void)log; (void)a;
    return describe(ILM_ERR_CONFIG)[0] + (int)ILM_VERSION_NUMBER + (int)ILM_LOG_DEBUG;
}

/* `internlm bench <what>`: benchmarks, each reporting absolute figures and a
 * ratio against a peer measured in the same run (DESIGN.md §8). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char gemm_help[] =
    "usage: internlm bench gemm [options]\n"
    "\n"
    "Measures fp32 GEMM GFLOP/s (n x n x n, OpenBLAS) and the machine's fp32\n"
    "peak (an FMA-throughput loop on every thread), and prints their ratio.\n"
    "\n"
    "options:\n"
    "  --sizes N,N,...   matrix sizes (default 256,512,1024,2048)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --min-time S      seconds per size at least (default 1.0)\n"
    "  --min-reps N      repetitions per size at least (default 3)\n"
    "  --json            print the result as JSON\n";

static void print_gemm_table(const cJSON *r)
{
    double peak = cJSON_GetObjectItem(r, "peak_gflops")->valuedouble;
    printf("fp32 GEMM on %d threads (OpenBLAS core: %s)\n",
           cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_GetObjectItem(r, "blas")->valuestring);
    printf("measured peak (%s FMA loop): %.1f GFLOP/s\n\n",
           cJSON_GetObjectItem(r, "peak_isa")->valuestring, peak);
    printf("%8s %6s %14s %16s %11s\n", "n", "reps", "best GFLOP/s", "median GFLOP/s",
           "% of peak");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "results")) {
        printf("%8d %6d %14.1f %16.1f %10.1f%%\n", cJSON_GetObjectItem(e, "n")->valueint,
               cJSON_GetObjectItem(e, "reps")->valueint,
               cJSON_GetObjectItem(e, "best_gflops")->valuedouble,
               cJSON_GetObjectItem(e, "median_gflops")->valuedouble,
               100.0 * cJSON_GetObjectItem(e, "fraction_of_peak")->valuedouble);
    }
}

/* Turns "256,512" into a JSON array; NULL if it is not a list of integers. */
static cJSON *parse_sizes(const char *s)
{
    cJSON *arr = cJSON_CreateArray();
    while (arr && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',')) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v));
        s = *end ? end + 1 : end;
    }
    return arr;
}

static int bench_gemm(int argc, char **argv)
{
    bool json = false;
    cJSON *cfg = cJSON_CreateObject();
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            fputs(gemm_help, stdout);
            cJSON_Delete(cfg);
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--sizes") == 0 && v) {
            cJSON *sizes = parse_sizes(v);
            if (!sizes) rc = cli_usage_error("bench gemm", "--sizes wants N,N,... got '%s'", v);
            else cJSON_AddItemToObject(cfg, "sizes", sizes);
            i++;
        } else if ((strcmp(a, "--threads") == 0 || strcmp(a, "--min-reps") == 0) && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v) rc = cli_usage_error("bench gemm", "%s wants an integer", a);
            else cJSON_AddNumberToObject(cfg, a[2] == 't' ? "threads" : "min_reps", (double)n);
            i++;
        } else if (strcmp(a, "--min-time") == 0 && v) {
            char *end;
            double t = strtod(v, &end);
            if (*end || end == v) rc = cli_usage_error("bench gemm", "--min-time wants seconds");
            else cJSON_AddNumberToObject(cfg, "min_time", t);
            i++;
        } else {
            rc = cli_usage_error("bench gemm", "unknown or incomplete option '%s'", a);
        }
    }
    char *cfg_text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    if (rc != CLI_OK) {
        cJSON_free(cfg_text);
        return rc;
    }
    char *result = NULL;
    ilm_status s = ilm_bench_gemm(cfg_text, cli_progress, NULL, &result);
    cJSON_free(cfg_text);
    if (isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
    if (s != ILM_OK) return cli_fail(s);
    if (json) {
        printf("%s\n", result);
    } else {
        cJSON *r = cJSON_Parse(result);
        print_gemm_table(r);
        cJSON_Delete(r);
    }
    ilm_free(result);
    return CLI_OK;
}

static const cli_command bench_commands[] = {
    { "gemm", bench_gemm, "fp32 GEMM GFLOP/s against the measured FMA peak" },
    { NULL, NULL, NULL },
};

int cmd_bench(int argc, char **argv)
{
    return cli_dispatch("internlm bench", bench_commands, argc - 1, argv + 1);
}

/* The deterministic RNG.  See internal.h for the stream definition; the
 * Philox round constants are those of Random123 (Salmon et al., SC 2011),
 * and the tests check the published known-answer vectors. */
#include "core/internal.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void ilm__philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void ilm__rng_init(ilm__rng *r, uint64_t seed, uint64_t stream)
{
    *r = (ilm__rng){ .seed = seed, .stream = stream, .block = 0, .used = 4 };
}

uint32_t ilm__rng_u32(ilm__rng *r)
{
    if (r->used == 4) {
        const uint32_t ctr[4] = { (uint32_t)r->block, (uint32_t)(r->block >> 32),
                                  (uint32_t)r->stream, (uint32_t)(r->stream >> 32) };
        const uint32_t key[2] = { (uint32_t)r->seed, (uint32_t)(r->seed >> 32) };
        ilm__philox4x32_10(ctr, key, r->buf);
        r->block++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t ilm__rng_u64(ilm__rng *r)
{
    uint64_t lo = ilm__rng_u32(r);
    return lo | (uint64_t)ilm__rng_u32(r) << 32;
}

float ilm__rng_uniform(ilm__rng *r)
{
    return (float)(ilm__rng_u32(r) >> 8) * 0x1p-24f;
}

uint32_t ilm__rng_below(ilm__rng *r, uint32_t n)
{
    /* Lemire, "Fast random integer generation in an interval" (2019). */
    if (n == 0) return 0;
    uint64_t m = (uint64_t)ilm__rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)-n % n;
        while (low < threshold) {
            m = (uint64_t)ilm__rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* Natural logarithm of x in (0, 1] from +, -, *, / and frexp only (all exact
 * or correctly rounded in IEEE double), so every platform computes the same
 * bits.  x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t) with
 * t = (m-1)/(m+1), |t| < 0.172, whose odd series converges to double
 * precision within 14 terms. */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e); /* m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double t = (m - 1.0) / (m + 1.0), t2 = t * t, term = t, sum = 0.0;
    for (int k = 0; k < 14; k++) {
        sum += term / (double)(2 * k + 1);
        term *= t2;
    }
    /* ln 2 split so that e * LN2_HI is exact for |e| < 2^11. */
    const double LN2_HI = 6.93147180369123816490e-01;
    const double LN2_LO = 1.90821492927058770002e-10;
    return (double)e * LN2_HI + ((double)e * LN2_LO + 2.0 * sum);
}

float ilm__rng_normal(ilm__rng *r)
{
    for (;;) {
        /* Two uniforms in (-1, 1) with 32 bits each, never exactly 0. */
        double u = ((double)ilm__rng_u32(r) + 0.5) * 0x1p-31 - 1.0;
        double v = ((double)ilm__rng_u32(r) + 0.5) * 0x1p-31 - 1.0;
        double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0) continue;
        return (float)(u * sqrt(-2.0 * det_log(s) / s));
    }
}

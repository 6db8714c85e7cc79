/* mt19937.c - MT19937 with the seeding and draws of numpy's legacy RandomState and Python's
 * random module, so the eval engine picks the same subsamples as MTEB (see metrics.h).
 *
 * Generator: Matsumoto & Nishimura's reference mt19937ar (init_genrand, init_by_array,
 * genrand_int32). On top of it:
 *   numpy  RandomState(int seed) = init_genrand(seed); random_sample = 53-bit double from two
 *          draws (a>>5, b>>6); randint / shuffle bound with a bit mask and reject (random_interval)
 *   Python random.Random(int seed) = init_by_array(32-bit words of seed, little end first);
 *          random() = the same 53-bit double; choices(range(n)) = floor(random() * n)
 */
#include "metrics.h"

#define MT_N 624
#define MT_M 397

void mt_seed(AmMt *r, uint32_t seed) {
    r->mt[0] = seed;
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = MT_N;
}

static void mt_init_by_array(AmMt *r, const uint32_t *key, int len) {
    mt_seed(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > len ? MT_N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++; j++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
        if (j >= len) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
    }
    r->mt[0] = 0x80000000u;
    r->mti = MT_N;
}

void mt_seed_python(AmMt *r, uint64_t seed) {
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    mt_init_by_array(r, key, key[1] ? 2 : 1);   /* Python: as many words as the value needs, >= 1 */
}

uint32_t mt_u32(AmMt *r) {
    static const uint32_t mag01[2] = { 0u, 0x9908b0dfu };
    uint32_t y;
    if (r->mti >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
        r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
        r->mti = 0;
    }
    y = r->mt[r->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

double mt_double(AmMt *r) {
    uint32_t a = mt_u32(r) >> 5, b = mt_u32(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

uint32_t mt_interval(AmMt *r, uint32_t max) {
    if (max == 0) return 0;
    uint32_t mask = max, v;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16;
    while ((v = mt_u32(r) & mask) > max) {}
    return v;
}

void mt_shuffle(AmMt *r, int *x, int n) {
    for (int i = n - 1; i >= 1; i--) {
        int j = (int)mt_interval(r, (uint32_t)i);
        int t = x[i]; x[i] = x[j]; x[j] = t;
    }
}

void mt_choices_python(AmMt *r, int *idx, int k, int n) {
    for (int i = 0; i < k; i++) {
        int v = (int)(mt_double(r) * (double)n);   /* floor: the product is >= 0 */
        idx[i] = v < n ? v : n - 1;
    }
}

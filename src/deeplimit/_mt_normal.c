/* torch.randn's float32 stream on the CPU, drawn faster (issue 13).

   mt_normal_f32(seed, out, size) writes into out[0..size) the numbers that
   torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
   draws on an x86-64 CPU where torch runs its AVX2 (or AVX-512) kernels, bit for bit:

   - torch's CPU generator is the 32-bit Mersenne twister (MT19937) seeded with the low 32
     bits of the seed (Knuth's initialization, the first twist at the first draw);
   - a float32 uniform is the low 24 bits of one 32-bit output times 2^-24;
   - torch fills all `size` uniforms first, then maps each group of 16 by Box-Muller
     (u1 = 1 - d[j], u2 = d[j + 8], j < 8: d[j] = r cos t, d[j + 8] = r sin t with
     r = sqrt(-2 log u1), t = 2 pi u2), and where 16 does not divide `size` draws 16 more
     uniforms into the last 16 places and maps them again;
   - log, sin and cos are the Cephes single-precision polynomials torch evaluates 8 lanes at a
     time, with its compiler's fused multiply-adds at the places where its binary has them
     (read from torch 2.13's libtorch_cpu.so); written here with explicit intrinsics, so
     that this file's own flags (no contraction) cannot change them.

   Here the uniforms of each twist (624 numbers, a multiple of 16) are mapped while they are
   in the L1 cache, two groups at a time in 16 lanes where the CPU has AVX-512 (the same
   operations lane by lane), the tempering and the conversion are vector loops, and nothing
   goes through a call per number: 0.70 ns a number on one core of a Xeon with AVX-512,
   torch.randn 2.6 ns (2026-12-03). The caller (rng.py) checks this function against torch.randn
   once per process and uses torch.randn wherever they differ. Returns 0, or -1 (nothing
   written) for fewer than 16 numbers (torch draws those another way) or where this CPU lacks
   AVX2 and FMA. `narrow`: 8 lanes even where the CPU has AVX-512 (the tests run both). */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MT_N 624
#define MT_M 397

static void mt_seed(uint32_t *s, uint64_t seed) {
    s[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++)
        s[j] = 1812433253u * (s[j - 1] ^ (s[j - 1] >> 30)) + (uint32_t)j;
}

static inline uint32_t mt_mix(uint32_t u, uint32_t v) {
    uint32_t y = (u & 0x80000000u) | (v & 0x7fffffffu);
    return (y >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

static void mt_twist(uint32_t *s) {
    int i = 0;
    for (; i < MT_N - MT_M; i++) s[i] = s[i + MT_M] ^ mt_mix(s[i], s[i + 1]);
    for (; i < MT_N - 1; i++) s[i] = s[i + MT_M - MT_N] ^ mt_mix(s[i], s[i + 1]);
    s[MT_N - 1] = s[MT_M - 1] ^ mt_mix(s[MT_N - 1], s[0]);
}

/* the tempered outputs s[from..to) as float32 uniforms k 2^-24 into u */
static void mt_uniforms(const uint32_t *s, int from, int to, float *u) {
    for (int i = from; i < to; i++) {
        uint32_t y = s[i];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        u[i - from] = (float)(y & 0xffffffu) * 0x1p-24f;
    }
}

/* the Cephes single-precision constants of avx_mathfun's log256_ps and sincos256_ps (as
   torch's binary holds them): log's polynomial and split of log 2, sqrt(1/2), 2 pi, 4 / pi,
   the three parts of pi / 4 for the reduction, and the cosine's and sine's polynomials */
#define LOG_P0 7.0376836292e-2f
#define LOG_P1 -1.1514610310e-1f
#define LOG_P2 1.1676998740e-1f
#define LOG_P3 -1.2420140846e-1f
#define LOG_P4 1.4249322787e-1f
#define LOG_P5 -1.6668057665e-1f
#define LOG_P6 2.0000714765e-1f
#define LOG_P7 -2.4999993993e-1f
#define LOG_P8 3.3333331174e-1f
#define LOG_Q1 -2.12194440e-4f
#define LOG_Q2 0.693359375f
#define SQRT_HALF 0.707106781186547524f
#define TWO_PI 6.28318530717958647692f
#define FOUR_OVER_PI 1.27323954473516f
#define DP1 -0.78515625f
#define DP2 -2.4187564849853515625e-4f
#define DP3 -3.77489497744594108e-8f
#define COS_P0 2.443315711809948e-5f
#define COS_P1 -1.388731625493765e-3f
#define COS_P2 4.166664568298827e-2f
#define SIN_P0 -1.9515295891e-4f
#define SIN_P1 8.3321608736e-3f
#define SIN_P2 -1.6666654611e-1f

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define MT_TARGET __attribute__((target("avx2,fma")))

/* Box-Muller on d[0..16), in place, as torch's NormalFill16<float> with mean 0, std 1 */
MT_TARGET static inline void box_muller16(float *d) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 half = _mm256_set1_ps(0.5f);
    /* log(u1), u1 = 1 - d[0..8) */
    __m256 x = _mm256_sub_ps(one, _mm256_loadu_ps(d));
    const __m256 invalid = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OS);
    x = _mm256_max_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x00800000)));
    __m256i exponent = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
    x = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x807fffffu)));
    x = _mm256_or_ps(x, half);
    exponent = _mm256_add_epi32(exponent, _mm256_set1_epi32(-127));
    __m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(exponent), one);
    const __m256 small = _mm256_cmp_ps(x, _mm256_set1_ps(SQRT_HALF), _CMP_LT_OS);
    const __m256 kept = _mm256_and_ps(x, small);
    e = _mm256_sub_ps(e, _mm256_and_ps(one, small));
    x = _mm256_add_ps(x, _mm256_set1_ps(-1.0f));
    x = _mm256_add_ps(x, kept);
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(LOG_P0), x, _mm256_set1_ps(LOG_P1));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P2));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P3));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P4));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P5));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P6));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P7));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(LOG_P8));
    y = _mm256_mul_ps(y, x);
    y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(e, _mm256_set1_ps(LOG_Q1)));
    y = _mm256_fnmadd_ps(z, half, y);
    x = _mm256_add_ps(x, y);
    x = _mm256_fmadd_ps(e, _mm256_set1_ps(LOG_Q2), x);
    const __m256 log_u1 = _mm256_or_ps(x, invalid);
    const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(log_u1, _mm256_set1_ps(-2.0f)));

    /* sin and cos of t = 2 pi u2, u2 = d[8..16) */
    const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 theta = _mm256_mul_ps(_mm256_set1_ps(TWO_PI), _mm256_loadu_ps(d + 8));
    __m256 a = _mm256_and_ps(theta, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    __m256i j = _mm256_cvttps_epi32(_mm256_mul_ps(a, _mm256_set1_ps(FOUR_OVER_PI)));
    j = _mm256_add_epi32(j, _mm256_set1_epi32(1));
    const __m256i octant = _mm256_and_si256(j, _mm256_set1_epi32(~1));
    const __m256 q = _mm256_cvtepi32_ps(octant);
    __m256 sign_sin = _mm256_xor_ps(
        _mm256_and_ps(theta, sign_mask),
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(j, _mm256_set1_epi32(4)), 29)));
    const __m256 poly = _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(j, _mm256_set1_epi32(2)), _mm256_setzero_si256()));
    a = _mm256_fmadd_ps(q, _mm256_set1_ps(DP1), a);
    a = _mm256_fmadd_ps(_mm256_set1_ps(DP2), q, a);
    a = _mm256_fmadd_ps(q, _mm256_set1_ps(DP3), a);
    const __m256 sign_cos = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_andnot_si256(_mm256_add_epi32(octant, _mm256_set1_epi32(-2)), _mm256_set1_epi32(4)),
        29));
    const __m256 a2 = _mm256_mul_ps(a, a);
    const __m256 half_a2 = _mm256_mul_ps(a2, half);
    __m256 c = _mm256_fmadd_ps(_mm256_set1_ps(COS_P0), a2, _mm256_set1_ps(COS_P1));
    c = _mm256_fmadd_ps(c, a2, _mm256_set1_ps(COS_P2));
    c = _mm256_mul_ps(a2, c);
    c = _mm256_fmsub_ps(a2, c, half_a2);
    c = _mm256_add_ps(c, one);
    __m256 s = _mm256_fmadd_ps(_mm256_set1_ps(SIN_P0), a2, _mm256_set1_ps(SIN_P1));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(SIN_P2));
    s = _mm256_mul_ps(a2, s);
    s = _mm256_fmadd_ps(a, s, a);
    const __m256 s_part = _mm256_and_ps(s, poly);
    const __m256 c_part = _mm256_andnot_ps(poly, c);
    c = _mm256_sub_ps(c, c_part);
    s = _mm256_sub_ps(s, s_part);
    const __m256 sine = _mm256_xor_ps(_mm256_add_ps(s_part, c_part), sign_sin);
    const __m256 cosine = _mm256_xor_ps(_mm256_add_ps(s, c), sign_cos);
    const __m256 zero = _mm256_setzero_ps();
    _mm256_storeu_ps(d, _mm256_fmadd_ps(_mm256_mul_ps(radius, cosine), one, zero));
    _mm256_storeu_ps(d + 8, _mm256_fmadd_ps(_mm256_mul_ps(radius, sine), one, zero));
}

#define MT_TARGET512 __attribute__((target("avx512f,avx2,fma")))
#define I512(v) _mm512_castps_si512(v)
#define F512(v) _mm512_castsi512_ps(v)

/* box_muller16 on the two groups d[0..16) and d[16..32) at once, 16 lanes: the same
   operations lane by lane (masks where box_muller16 has and/andnot/or with a comparison) */
MT_TARGET512 static inline void box_muller32(float *d) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 u1 = F512(_mm512_castpd_si512(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(d))),
        _mm256_castps_pd(_mm256_loadu_ps(d + 16)), 1)));
    const __m512 u2 = F512(_mm512_castpd_si512(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(d + 8))),
        _mm256_castps_pd(_mm256_loadu_ps(d + 24)), 1)));
    __m512 x = _mm512_sub_ps(one, u1);
    const __mmask16 invalid = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LE_OS);
    x = _mm512_max_ps(x, F512(_mm512_set1_epi32(0x00800000)));
    __m512i exponent = _mm512_srli_epi32(I512(x), 23);
    x = F512(_mm512_and_si512(I512(x), _mm512_set1_epi32((int)0x807fffffu)));
    x = F512(_mm512_or_si512(I512(x), I512(half)));
    exponent = _mm512_add_epi32(exponent, _mm512_set1_epi32(-127));
    __m512 e = _mm512_add_ps(_mm512_cvtepi32_ps(exponent), one);
    const __mmask16 small = _mm512_cmp_ps_mask(x, _mm512_set1_ps(SQRT_HALF), _CMP_LT_OS);
    const __m512 kept = _mm512_maskz_mov_ps(small, x);
    e = _mm512_sub_ps(e, _mm512_maskz_mov_ps(small, one));
    x = _mm512_add_ps(x, _mm512_set1_ps(-1.0f));
    x = _mm512_add_ps(x, kept);
    const __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(LOG_P0), x, _mm512_set1_ps(LOG_P1));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P2));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P3));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P4));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P5));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P6));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P7));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(LOG_P8));
    y = _mm512_mul_ps(y, x);
    y = _mm512_fmadd_ps(y, z, _mm512_mul_ps(e, _mm512_set1_ps(LOG_Q1)));
    y = _mm512_fnmadd_ps(z, half, y);
    x = _mm512_add_ps(x, y);
    x = _mm512_fmadd_ps(e, _mm512_set1_ps(LOG_Q2), x);
    const __m512 log_u1 = _mm512_mask_mov_ps(x, invalid, F512(_mm512_set1_epi32(-1)));
    const __m512 radius = _mm512_sqrt_ps(_mm512_mul_ps(log_u1, _mm512_set1_ps(-2.0f)));

    const __m512i sign_mask = _mm512_set1_epi32((int)0x80000000u);
    const __m512 theta = _mm512_mul_ps(_mm512_set1_ps(TWO_PI), u2);
    __m512 a = F512(_mm512_and_si512(I512(theta), _mm512_set1_epi32(0x7fffffff)));
    __m512i j = _mm512_cvttps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(FOUR_OVER_PI)));
    j = _mm512_add_epi32(j, _mm512_set1_epi32(1));
    const __m512i octant = _mm512_and_si512(j, _mm512_set1_epi32(~1));
    const __m512 q = _mm512_cvtepi32_ps(octant);
    const __m512i sign_sin = _mm512_xor_si512(
        _mm512_and_si512(I512(theta), sign_mask),
        _mm512_slli_epi32(_mm512_and_si512(j, _mm512_set1_epi32(4)), 29));
    const __mmask16 poly =
        _mm512_cmpeq_epi32_mask(_mm512_and_si512(j, _mm512_set1_epi32(2)), _mm512_setzero_si512());
    a = _mm512_fmadd_ps(q, _mm512_set1_ps(DP1), a);
    a = _mm512_fmadd_ps(_mm512_set1_ps(DP2), q, a);
    a = _mm512_fmadd_ps(q, _mm512_set1_ps(DP3), a);
    const __m512i sign_cos = _mm512_slli_epi32(
        _mm512_andnot_si512(_mm512_add_epi32(octant, _mm512_set1_epi32(-2)), _mm512_set1_epi32(4)),
        29);
    const __m512 a2 = _mm512_mul_ps(a, a);
    const __m512 half_a2 = _mm512_mul_ps(a2, half);
    __m512 c = _mm512_fmadd_ps(_mm512_set1_ps(COS_P0), a2, _mm512_set1_ps(COS_P1));
    c = _mm512_fmadd_ps(c, a2, _mm512_set1_ps(COS_P2));
    c = _mm512_mul_ps(a2, c);
    c = _mm512_fmsub_ps(a2, c, half_a2);
    c = _mm512_add_ps(c, one);
    __m512 s = _mm512_fmadd_ps(_mm512_set1_ps(SIN_P0), a2, _mm512_set1_ps(SIN_P1));
    s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(SIN_P2));
    s = _mm512_mul_ps(a2, s);
    s = _mm512_fmadd_ps(a, s, a);
    const __m512 s_part = _mm512_maskz_mov_ps(poly, s);
    const __m512 c_part = _mm512_maskz_mov_ps((__mmask16)~poly, c);
    c = _mm512_sub_ps(c, c_part);
    s = _mm512_sub_ps(s, s_part);
    const __m512 sine = F512(_mm512_xor_si512(I512(_mm512_add_ps(s_part, c_part)), sign_sin));
    const __m512 cosine = F512(_mm512_xor_si512(I512(_mm512_add_ps(s, c)), sign_cos));
    const __m512 zero = _mm512_setzero_ps();
    const __m512 first = _mm512_fmadd_ps(_mm512_mul_ps(radius, cosine), one, zero);
    const __m512 second = _mm512_fmadd_ps(_mm512_mul_ps(radius, sine), one, zero);
    _mm256_storeu_ps(d, _mm512_castps512_ps256(first));
    _mm256_storeu_ps(d + 8, _mm512_castps512_ps256(second));
    _mm256_storeu_ps(d + 16, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(first), 1)));
    _mm256_storeu_ps(d + 24, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(second), 1)));
}

/* box_muller16 on `groups` consecutive groups, two at a time where the CPU has AVX-512 */
MT_TARGET512 static void box_muller_groups512(float *d, int64_t groups) {
    int64_t g = 0;
    for (; g + 1 < groups; g += 2) box_muller32(d + 16 * g);
    if (g < groups) box_muller16(d + 16 * g);
}

MT_TARGET static void box_muller_groups256(float *d, int64_t groups) {
    for (int64_t g = 0; g < groups; g++) box_muller16(d + 16 * g);
}

/* wide: 16 lanes (the CPU has AVX-512F) */
static void box_muller_groups(float *d, int64_t groups, int wide) {
    if (wide) box_muller_groups512(d, groups);
    else box_muller_groups256(d, groups);
}

/* the 16 numbers torch draws again where 16 does not divide the count: the next 16 outputs
   after the `used` outputs of the current twist (twisting once more where needed), mapped */
MT_TARGET static void mt_tail(uint32_t *s, int used, float *tail) {
    int have = MT_N - used < 16 ? MT_N - used : 16;
    mt_uniforms(s, used, used + have, tail);
    if (have < 16) {
        mt_twist(s);
        mt_uniforms(s, 0, 16 - have, tail + have);
    }
    box_muller16(tail);
}

/* the next twist's numbers of a draw of `size` of which `done` (a multiple of 624, so of
   16) are drawn: min(624, size - done) numbers into u, all of their whole groups of 16
   mapped; returns how many */
MT_TARGET static int mt_next(uint32_t *s, int64_t done, int64_t size, float *u, int wide) {
    mt_twist(s);
    int count = size - done < MT_N ? (int)(size - done) : MT_N;
    mt_uniforms(s, 0, count, u);
    box_muller_groups(u, count / 16, wide);
    return count;
}

MT_TARGET static void fill(uint64_t seed, float *out, int64_t size, int wide) {
    uint32_t s[MT_N];
    mt_seed(s, seed);
    int used = 0; /* outputs of the last twist taken */
    for (int64_t done = 0; done < size; done += used)
        used = mt_next(s, done, size, out + done, wide);
    if (size % 16 != 0) { /* 16 more uniforms into the last 16 places, mapped again */
        float tail[16];
        mt_tail(s, used, tail);
        memcpy(out + size - 16, tail, sizeof tail);
    }
}

/* y[p] += value * t1[p % cols] * z[q + p - from] for the positions p = from .. to - 1 of the
   (rows, cols) array y, with the rounding of torch's y.addcmul_(t1, z, value=value) on these
   layouts: fmaf(value * t1, z, y) (read from torch 2.13's binary, compared bit for bit) */
static void add_products(float *y, const float *t1, float value, int64_t cols, int64_t from,
                         int64_t to, const float *z) {
    int64_t s = from % cols;
    for (int64_t p = from; p < to;) {
        int64_t run = to - p < cols - s ? to - p : cols - s;
        float *yp = y + p;
        const float *tp = t1 + s, *zp = z + (p - from);
        for (int64_t j = 0; j < run; j++) yp[j] = fmaf(value * tp[j], zp[j], yp[j]);
        p += run;
        s = 0;
    }
}

/* the check of a stretch's norms (chain._OneReLU._checked): 1 where x lies in (0, bound) or is
   NaN or +inf: a norm that the per-step path would look at (norms are >= 0 or NaN) */
static inline int outside(float x, float bound) {
    return !(x <= 0.0f || (x >= bound && x <= FLT_MAX));
}

/* At width 1 (t1 == NULL): y[p] += value * relu(y[p]) * z[q + p - from] for p = from .. to - 1,
   relu the bits of torch.clamp(min=0) (NaN and -0 kept): the increment of a ReLU state of
   width 1, whose norm is relu(y) itself (add_products with t1 = relu(y)); returns 1 where a new
   relu(y[p]) is `outside` bound */
static int relu_products(float *y, float value, int64_t from, int64_t to, const float *z,
                         float bound) {
    int bad = 0;
    float *yp = y + from;
    for (int64_t j = 0; j < to - from; j++) {
        const float r = yp[j];
        const float t = r < 0 ? 0.0f : r;
        const float v = fmaf(value * t, z[j], r);
        yp[j] = v;
        bad |= outside(v < 0 ? 0.0f : v, bound);
    }
    return bad;
}

/* the numbers of fill(seed, ., rows * cols), each added as the increment of add_products (or,
   t1 NULL, relu_products); returns relu_products' 1 where a check failed, else 0 */
MT_TARGET static int fill_update(uint64_t seed, float *y, const float *t1, float value,
                                 int64_t rows, int64_t cols, int wide, float bound) {
    const int64_t size = rows * cols;
    /* torch maps the last 16 places again where 16 does not divide the count */
    const int64_t first = size % 16 != 0 ? size - 16 : size;
    uint32_t s[MT_N];
    float z[MT_N];
    int bad = 0;
    mt_seed(s, seed);
    int used = 0;
    for (int64_t done = 0; done < size; done += used) {
        used = mt_next(s, done, size, z, wide);
        if (done < first) {
            int64_t to = done + used < first ? done + used : first;
            if (t1) add_products(y, t1, value, cols, done, to, z);
            else bad |= relu_products(y, value, done, to, z, bound);
        }
    }
    if (size % 16 != 0) {
        float tail[16];
        mt_tail(s, used, tail);
        if (t1) add_products(y, t1, value, cols, size - 16, size, tail);
        else bad |= relu_products(y, value, size - 16, size, tail, bound);
    }
    return bad;
}

static int supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int has_wide(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

int64_t mt_normal_f32(uint64_t seed, float *out, int64_t size, int narrow) {
    if (size < 16 || !supported()) return -1;
    fill(seed, out, size, !narrow && has_wide());
    return 0;
}

/* The numbers of mt_normal_f32(seed, ., rows * cols) in row-major order, each added as the
   increment y += value * t1[column] * z of torch's y.addcmul_(t1, z, value=value) (t1 a row
   of cols numbers, y a contiguous (rows, cols) array) in the same pass, without storing z.
   Returns 0, or -1 (nothing done) as mt_normal_f32. */
int64_t mt_normal_addcmul_f32(uint64_t seed, float *y, const float *t1, float value,
                              int64_t rows, int64_t cols, int narrow) {
    if (rows < 0 || cols <= 0 || rows * cols < 16 || !t1 || !supported()) return -1;
    fill_update(seed, y, t1, value, rows, cols, !narrow && has_wide(), 0.0f);
    return 0;
}

/* row_norms_f32 of _factor_update.c (the norms' pass of the chain), by address */
typedef void (*norms_f32)(const float *, float *, long, long, long, int, double *, int *, long,
                          float *, const float *, float *);

/* mt_normal_addcmul_f32, then the norms' pass `norms` with the arguments that follow, in the
   same call: the chain's layer of one input (the drawing update, then the norms of the new
   state) without handing the interpreter's lock back in between */
int64_t mt_normal_addcmul_norms_f32(uint64_t seed, float *y, const float *t1, float value,
                                    int64_t rows, int64_t cols, int narrow, void *norms,
                                    const float *x, float *out, long m, long n, long B, int relu,
                                    double *extremes, int *counts, long ld, float *plain,
                                    const float *divisor, float *ratio) {
    int64_t status = mt_normal_addcmul_f32(seed, y, t1, value, rows, cols, narrow);
    if (status != 0) return status;
    ((norms_f32)norms)(x, out, m, n, B, relu, extremes, counts, ld, plain, divisor, ratio);
    return 0;
}

/* 1 where an entry of x[0 .. count) is `outside` bound (a loop with no early exit: it
   vectorizes) */
static int any_outside(const float *restrict x, long count, float bound) {
    int bad = 0;
    for (long e = 0; e < count; e++) bad |= outside(x[e], bound);
    return bad;
}

/* a layer's active counts (m rows of B at a distance ld) added to sums[j B + b] and the layers
   with a positive count to sums[(m + j) B + b]; 1 where a count is positive and its norm in
   `out` (m, B) is 0 (squares that all underflowed) */
static int add_counts(const int *restrict counted, long ld, const float *restrict out,
                      int *restrict sums, long m, long B) {
    int bad = 0;
    for (long j = 0; j < m; j++) {
        const int *c = counted + j * ld;
        const float *o = out + j * B;
        int *total = sums + j * B, *alive = sums + (m + j) * B;
        for (long b = 0; b < B; b++) {
            const int v = c[b];
            total[b] += v;
            alive[b] += v > 0;
            bad |= (v > 0) & (o[b] == 0);
        }
    }
    return bad;
}

/* one step of a stretch: the increment of y (n, B) with t1 = `now` (NULL at width 1: relu(y)),
   the numbers drawn from `seed` in this pass, or (z not NULL) read from z; then, at width > 1,
   the norms' pass into `next` (with the observers' counts, sums and ratio where given, and
   the range of y checked against `top` where positive); returns 1 where a new norm is
   `outside` bound or a check fails */
static int stretch_step(uint64_t seed, const float *z, float *y, const float *now, float *next,
                        int64_t n, int64_t B, float value, float bound, int wide, void *norms,
                        int *counts, int *sums, const float *divisor, float *ratio,
                        double top) {
    int bad = 0;
    if (z && n == 1) bad = relu_products(y, value, 0, B, z, bound);
    else if (z) add_products(y, now, value, B, 0, n * B, z);
    else bad = fill_update(seed, y, n == 1 ? 0 : now, value, n, B, wide, bound);
    if (n == 1) return bad;
    double extremes[6];
    ((norms_f32)norms)(y, next, 1, n, B, 1, top > 0 ? extremes : 0, counts, B, 0, divisor,
                       ratio);
    if (top > 0) bad |= !(extremes[0] >= -top && extremes[1] <= top); /* NaN: outside */
    if (counts) /* the stretch's sums: of the counts, of the steps with a positive count */
        bad |= add_counts(counts, B, next, sums, 1, B);
    else if (sums) /* no counts: the steps alive, where the norm is positive (a positive entry:
                      its square, summed in double, never underflows to 0) */
        for (int64_t b = 0; b < B; b++) sums[B + b] += next[b] > 0;
    return bad | any_outside(next, B, bound);
}

/* A stretch of `steps` steps of the chain of one ReLU input in one call (chain._OneReLU), on
   its samples-last state y (n, B). The steps' numbers come in groups of steps, each group the
   numbers of mt_normal_f32(seeds[g], ., lengths[g] * n * B), step after step (rng's stream
   layout); the stretch starts at step `offset` of its first group. A step adds its numbers
   as mt_normal_addcmul_f32 with t1 the norms ||relu(y)|| of the samples (a group of one step:
   drawn into the update, never stored; else the group is drawn into `buffer`, of
   lengths[g] * n * B numbers at least), then computes the new norms: at width 1 relu(y)
   itself (relu_products, none stored), else the norms' pass `norms` (row_norms_f32 by
   address, as chain._OneReLU._norm calls it) into the other of the two rows `norm` and
   `spare` (B each); `norm` holds the norms at the start (not read at width 1) and ends with
   those of the last step done (not written where the first norms fail). Every norm of the
   stretch, the first included, is checked (`outside` bound); the call stops after the first
   step with a norm outside. Returns the steps done whose norms all passed (`steps`: all;
   fewer: the state is that of the step that failed, for the caller to run again), or -1
   (nothing done) as mt_normal_f32, or where the groups do not hold the steps (a length below
   1, an offset past the first group, a group of several steps and no buffer).
   For the observers of the stretch (width > 1 only; NULL: none): the norms' pass of step i
   also writes the active counts #{t: y[t, b] > 0} into counts[i ld + b] (rows of B at a
   distance ld >= B: the rows of a results array; ld = 0: one row, which ends with the last
   step's counts) and, with `divisor` (B), the ratio
   norm / divisor into ratio[i B + b] (steps x B), as the pass of the chain's per-step view
   writes them; sums[b] gets their sum over the steps done and sums[B + b] the number of
   those steps with a positive count (sums: 2 x B, given with counts; without counts only
   sums[B + b], the steps with a positive norm); a step with a norm of 0 and a positive
   count (squares that all underflowed) fails.
   Where `top` > 0 (width > 1), a step with an entry of y outside [-top, top] fails as well
   (where the chain's per-step path would rescale, which changes the observers' bits; NaN
   fails). With counts and `top`, a stretch that passes needs no other check (chain._OneReLU).
   */
int64_t mt_relu_stretch_f32(const uint64_t *seeds, const int64_t *lengths, int64_t offset,
                            int64_t steps, float *buffer, float *y, float *norm, float *spare,
                            int64_t n, int64_t B, float value, float bound, int narrow,
                            void *norms, int *counts, int64_t ld, int *sums,
                            const float *divisor, float *ratio, double top) {
    if (steps < 0 || n <= 0 || B <= 0 || n * B < 16 || (n > 1 && !norms) || offset < 0 ||
        (n == 1 && (counts || sums || ratio || top > 0)) || (!ratio != !divisor) ||
        (counts && (!sums || (ld != 0 && ld < B))) || !supported())
        return -1;
    for (int64_t left = steps, g = 0, at = offset; left > 0; g++, at = 0) {
        if (lengths[g] < 1 || at >= lengths[g] || (lengths[g] > 1 && !buffer)) return -1;
        left -= lengths[g] - at < left ? lengths[g] - at : left;
    }
    const int wide = !narrow && has_wide();
    const int64_t size = n * B;
    int bad = 0;
    if (sums) memset(sums, 0, 2 * (size_t)B * sizeof *sums);
    if (n == 1)
        for (int64_t b = 0; b < B; b++) bad |= outside(y[b] < 0 ? 0.0f : y[b], bound);
    else
        bad = any_outside(norm, B, bound);
    if (bad) return 0;
    float *now = norm, *next = spare;
    int64_t i = 0, g = 0, at = offset; /* step `at` of group g */
    for (; i < steps && !bad; i++) {
        const float *z = 0;
        if (lengths[g] > 1) { /* (a buffer given: checked above) */
            if (i == 0 || at == 0) fill(seeds[g], buffer, lengths[g] * size, wide);
            z = buffer + at * size;
        }
        bad = stretch_step(seeds[g], z, y, now, next, n, B, value, bound, wide, norms,
                           counts ? counts + i * ld : 0, sums, divisor,
                           ratio ? ratio + i * B : 0, top);
        float *done = now;
        now = next;
        next = done;
        if (++at == lengths[g]) g++, at = 0;
    }
    if (n == 1)
        for (int64_t b = 0; b < B; b++) norm[b] = y[b] < 0 ? 0.0f : y[b];
    else if (now != norm)
        memcpy(norm, now, (size_t)B * sizeof *norm);
    return bad ? i - 1 : i;
}

/* correlations_f32 of _factor_update.c (the correlations of a layer's inputs), by address */
typedef void (*correlations_f32)(const float *, const float *, float *, long, long, long, long,
                                 double *, float *);

/* factor_update_f32 of _factor_update.c (the several-input layer's kernel), by address */
typedef long (*factor_f32)(const float *, const float *, const float *, float *, float *, float *,
                           double *, int *, unsigned char *, long, long, long, double, double,
                           double, double, double, int, int);

/* mt_normal_f32(seed, z, size), then the several-input layer's kernel `factor` (by address,
   with the arguments that follow, reading z), then, where it left no tile to mend, the norms'
   pass `norms` (by address, or NULL): the chain's layer of several inputs in one call.
   Returns -2 (nothing done) where mt_normal_f32 would return -1, else what `factor` returns
   (the tiles it left: then the norms' pass did not run). */
int64_t mt_normal_factor_norms_f32(uint64_t seed, float *z, int64_t size, int narrow,
                                   void *factor, const float *phi, const float *norms_of_phi,
                                   float *y, float *factor_rows, float *scratch, double *acc,
                                   int *close, unsigned char *deferred, long k, long n, long B,
                                   double scale, double tiny, double eps, double floor_,
                                   double large, int mode, int relu, void *norms,
                                   const float *x, float *out, long m, long nn, long BB,
                                   int norms_relu, double *extremes, int *counts, long ld,
                                   float *plain, const float *divisor, float *ratio) {
    if (mt_normal_f32(seed, z, size, narrow) != 0) return -2;
    long left = ((factor_f32)factor)(phi, norms_of_phi, z, y, factor_rows, scratch, acc, close,
                                     deferred, k, n, B, scale, tiny, eps, floor_, large, mode,
                                     relu);
    if (left == 0 && norms)
        ((norms_f32)norms)(x, out, m, nn, BB, norms_relu, extremes, counts, ld, plain, divisor,
                           ratio);
    return left;
}

/* A stretch of `steps` layers of several ReLU inputs (chain._SeveralReLU) in one call: at
   layer i, mt_normal_factor_norms_f32 with seeds[i] and the arguments that follow (the
   norms' pass writing the norms the kernel reads at the next layer, and `extremes`, its 6
   numbers: the range of the state first), then the checks of the
   per-step path's bounds (chain._Numerics._bounded_view): every entry of the state within
   [-top, top] (NaN fails) and every norm of the k x B in `out` 0 or in [bound, FLT_MAX].
   The start is checked as well (the norms and range the last norms' pass left in `out` and
   `extremes`). Stops after the first layer that fails them or in which the kernel left
   tiles to mend.
   Returns the layers done that passed (`steps`: all; fewer: the caller runs the stretch
   again from its saved state), or -1 (nothing done) where the drawing or an argument does
   not apply.
   For the observers of the stretch (chain.ObservedStretch; NULL / 0: none): the norms' pass
   of layer i writes its active counts at counts + i counts_step (rows of BB at a distance
   ld: the rows of a results array; counts_step = 0: one set of rows, which ends with the last
   layer's) and its ratios at ratio + i ratio_step; sums (2, m, BB) gets the counts summed
   over the layers done and the number of those layers with a positive count (without counts
   only the second: the layers with a positive norm), and a layer with a norm of 0 and a
   positive count (squares that all underflowed) fails; with `correlate`, so does a layer
   with a norm of y (in `plain`) outside the bounds, and where rows_out[i] is not 0, the
   correlations of layer i (`correlate`: correlations_f32 by address, with the norms of y the
   pass wrote into `plain`, its scratch acc_out and unit) go into the rows at that address,
   rows_ld apart. */
int64_t mt_several_stretch_f32(const uint64_t *seeds, int64_t steps, float *z, int64_t size,
                               int narrow, void *factor, const float *phi,
                               const float *norms_of_phi, float *y, float *factor_rows,
                               float *scratch, double *acc, int *close, unsigned char *deferred,
                               long k, long n, long B, double scale, double tiny, double eps,
                               double floor_, double large, int mode, int relu, void *norms,
                               const float *x, float *out, long m, long nn, long BB,
                               int norms_relu, double *extremes, int *counts, long ld,
                               float *plain, const float *divisor, float *ratio, float bound,
                               double top, long counts_step, int *sums, long ratio_step,
                               void *correlate, const int64_t *rows_out, long rows_ld,
                               double *acc_out, float *unit) {
    if (steps < 0 || !norms || !extremes || !out || top <= 0 || size < 16 ||
        (counts && !sums) || (!ratio != !divisor) || (correlate && (!rows_out || !plain)) ||
        !supported())
        return -1;
    /* the start too: its norms (which the kernel reads) and range, from the last norms' pass */
    if (!(extremes[0] >= -top && extremes[1] <= top) || any_outside(out, m * BB, bound))
        return 0;
    if (sums) memset(sums, 0, 2 * (size_t)(m * BB) * sizeof *sums);
    for (int64_t i = 0; i < steps; i++) {
        int *counted = counts ? counts + i * counts_step : 0;
        long left = mt_normal_factor_norms_f32(
            seeds[i], z, size, narrow, factor, phi, norms_of_phi, y, factor_rows, scratch, acc,
            close, deferred, k, n, B, scale, tiny, eps, floor_, large, mode, relu, norms, x, out,
            m, nn, BB, norms_relu, extremes, counted, ld, plain, divisor,
            ratio ? ratio + i * ratio_step : 0);
        if (left == -2) return i == 0 ? -1 : i;
        if (left != 0 || !(extremes[0] >= -top && extremes[1] <= top) ||
            any_outside(out, m * BB, bound))
            return i;
        int bad = 0;
        if (counted) /* the sums of the counts and of the layers alive, per input and sample */
            bad = add_counts(counted, ld, out, sums, m, BB);
        else if (sums) /* no counts: the layers alive, where the norm is positive (a
                          positive entry of a float32 state squares, in double, to a positive
                          sum: no norm of 0 with a positive count to check for) */
            for (long e = 0; e < m * BB; e++) sums[m * BB + e] += out[e] > 0;
        /* the norms of y the correlations divide by: 0 (a row of zeros: a nonzero float's
           square, summed in double, is positive) or within the bounds, where the per-step
           view takes them as they are */
        if (bad || (correlate && any_outside(plain, m * BB, bound))) return i;
        if (correlate && rows_out[i]) /* the layer's correlations, from its norms of y */
            ((correlations_f32)correlate)(x, plain, (float *)(intptr_t)rows_out[i], m, nn, BB,
                                          rows_ld, acc_out, unit);
    }
    return steps;
}

/* Box-Muller alone on the 16 x groups numbers at d, in place (the tests compare it with
   torch's on chosen uniforms) */
int64_t mt_box_muller_f32(float *d, int64_t groups, int narrow) {
    if (groups < 0 || !supported()) return -1;
    box_muller_groups(d, groups, !narrow && has_wide());
    return 0;
}

#else

int64_t mt_normal_f32(uint64_t seed, float *out, int64_t size, int narrow) {
    (void)seed; (void)out; (void)size; (void)narrow;
    return -1;
}

int64_t mt_normal_addcmul_f32(uint64_t seed, float *y, const float *t1, float value,
                              int64_t rows, int64_t cols, int narrow) {
    (void)seed; (void)y; (void)t1; (void)value; (void)rows; (void)cols; (void)narrow;
    return -1;
}

int64_t mt_normal_addcmul_norms_f32(uint64_t seed, float *y, const float *t1, float value,
                                    int64_t rows, int64_t cols, int narrow, void *norms,
                                    const float *x, float *out, long m, long n, long B, int relu,
                                    double *extremes, int *counts, long ld, float *plain,
                                    const float *divisor, float *ratio) {
    (void)seed; (void)y; (void)t1; (void)value; (void)rows; (void)cols; (void)narrow;
    (void)norms; (void)x; (void)out; (void)m; (void)n; (void)B; (void)relu; (void)extremes;
    (void)counts; (void)ld; (void)plain; (void)divisor; (void)ratio;
    return -1;
}

int64_t mt_relu_stretch_f32(const uint64_t *seeds, const int64_t *lengths, int64_t offset,
                            int64_t steps, float *buffer, float *y, float *norm, float *spare,
                            int64_t n, int64_t B, float value, float bound, int narrow,
                            void *norms, int *counts, int64_t ld, int *sums,
                            const float *divisor, float *ratio, double top) {
    (void)ld; (void)sums;
    (void)seeds; (void)lengths; (void)offset; (void)steps; (void)buffer; (void)y; (void)norm;
    (void)spare; (void)n; (void)B; (void)value; (void)bound; (void)narrow; (void)norms;
    (void)counts; (void)divisor; (void)ratio; (void)top;
    return -1;
}

int64_t mt_normal_factor_norms_f32(uint64_t seed, float *z, int64_t size, int narrow,
                                   void *factor, const float *phi, const float *norms_of_phi,
                                   float *y, float *factor_rows, float *scratch, double *acc,
                                   int *close, unsigned char *deferred, long k, long n, long B,
                                   double scale, double tiny, double eps, double floor_,
                                   double large, int mode, int relu, void *norms,
                                   const float *x, float *out, long m, long nn, long BB,
                                   int norms_relu, double *extremes, int *counts, long ld,
                                   float *plain, const float *divisor, float *ratio) {
    (void)seed; (void)z; (void)size; (void)narrow; (void)factor; (void)phi;
    (void)norms_of_phi; (void)y; (void)factor_rows; (void)scratch; (void)acc; (void)close;
    (void)deferred; (void)k; (void)n; (void)B; (void)scale; (void)tiny; (void)eps;
    (void)floor_; (void)large; (void)mode; (void)relu; (void)norms; (void)x; (void)out;
    (void)m; (void)nn; (void)BB; (void)norms_relu; (void)extremes; (void)counts; (void)ld;
    (void)plain; (void)divisor; (void)ratio;
    return -2;
}

int64_t mt_several_stretch_f32(const uint64_t *seeds, int64_t steps, float *z, int64_t size,
                               int narrow, void *factor, const float *phi,
                               const float *norms_of_phi, float *y, float *factor_rows,
                               float *scratch, double *acc, int *close, unsigned char *deferred,
                               long k, long n, long B, double scale, double tiny, double eps,
                               double floor_, double large, int mode, int relu, void *norms,
                               const float *x, float *out, long m, long nn, long BB,
                               int norms_relu, double *extremes, int *counts, long ld,
                               float *plain, const float *divisor, float *ratio, float bound,
                               double top, long counts_step, int *sums, long ratio_step,
                               void *correlate, const int64_t *rows_out, long rows_ld,
                               double *acc_out, float *unit) {
    (void)seeds; (void)steps; (void)z; (void)size; (void)narrow; (void)factor; (void)phi;
    (void)norms_of_phi; (void)y; (void)factor_rows; (void)scratch; (void)acc; (void)close;
    (void)deferred; (void)k; (void)n; (void)B; (void)scale; (void)tiny; (void)eps;
    (void)floor_; (void)large; (void)mode; (void)relu; (void)norms; (void)x; (void)out;
    (void)m; (void)nn; (void)BB; (void)norms_relu; (void)extremes; (void)counts; (void)ld;
    (void)plain; (void)divisor; (void)ratio; (void)bound; (void)top; (void)counts_step;
    (void)sums; (void)ratio_step; (void)correlate; (void)rows_out; (void)rows_ld; (void)acc_out;
    (void)unit;
    return -1;
}

int64_t mt_box_muller_f32(float *d, int64_t groups, int narrow) {
    (void)d; (void)groups; (void)narrow;
    return -1;
}

#endif

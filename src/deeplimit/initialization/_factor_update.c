/* One layer of the exact-in-law chain for k > 1 inputs, fused (deeplimit, native.py).

   Memory is samples-last, as the CPU chain stores its state: phi, z and y are (k, n, B)
   (row j, coordinate t, sample b at [(j n + t) B + b]), the factor (k, k, B), the norms
   (k, B). Samples are independent, so the work runs over tiles of TILE samples, each tile
   staying in the L1 cache through every pass of the modified Gram-Schmidt factor and the
   update, where the tensor path makes about 3 k^2 / 2 passes over the whole block. A tile's
   phi is first copied into contiguous scratch (rows of a block lie a multiple of 4 KiB
   apart and would share one set of the L1 cache), zero-padded to a whole tile.

   The arithmetic per sample is that of _factor_rows_last / _gram_schmidt_last with the
   per-row checks (chain.py) and the increment y_a += s C[a, b] z_b (b = 0..a in order):
   products rounded to the dtype and summed per sample along the width in the order of the
   coordinates (sums of float products in double), every multiplication and addition
   rounded on its own (compiled with -ffp-contract=off: no fused multiply-add), so that a
   sample's numbers depend neither on its tile nor on the instruction set. A tile whose
   factor has a diagonal entry the plain norm cannot be trusted for (below sqrt(tiny)/eps or
   not finite, but an exact zero) is left for the tensor path to factor again (deferred):
   mode 0 factors and updates, returning the number of deferred tiles (flagged in
   `deferred`), mode 2 does the same but writes out the factor of the deferred tiles only
   (the chain's: k^2 numbers a sample that nothing else reads, 4x the normals at n = 1, k = 4),
   mode 1 only updates the flagged tiles with the factor as it is then. With
   `relu`, `phi` points at the state itself and its ReLU is taken on the way (the state of a
   tile is read before that tile is updated), so that phi need not be written out. */

#include <float.h>
#include <math.h>
#include <stddef.h>

#define TILE 64

#define DEFINE_KERNEL(NAME, REAL, ACC)                                                      \
    /* the factor of one tile: work (k, n, TILE) holds its phi, overwritten by the residuals; \
       f (k, k, TILE) gets the factor, nr (k, TILE) holds the norms */                        \
    static void NAME##_factor(REAL *restrict work, REAL *restrict f,                         \
                              const REAL *restrict nr, ACC *restrict acc,                    \
                              REAL *restrict inverse, REAL *restrict projection,             \
                              int *restrict close, long k, long n, REAL tiny, REAL eps,      \
                              REAL root, REAL large)                                         \
    {                                                                                        \
        for (long l = 0; l < TILE; l++) f[l] = nr[l];                                        \
        for (long i = 0; i < k; i++) {                                                       \
            const long first = i == 0 ? 1 : i;                                               \
            for (long j = first; j < k; j++)                                                 \
                for (long l = 0; l < TILE; l++) acc[j * TILE + l] = 0;                       \
            for (long t = 0; t < n; t++) {                                                   \
                const REAL *ri = work + (i * n + t) * TILE;                                  \
                for (long j = first; j < k; j++) {                                           \
                    const REAL *rj = work + (j * n + t) * TILE;                              \
                    ACC *a = acc + j * TILE;                                                 \
                    for (long l = 0; l < TILE; l++) {                                        \
                        REAL product = rj[l] * ri[l];                                        \
                        a[l] = a[l] + (ACC)product;                                          \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            for (long j = first; j < k; j++)                                                 \
                for (long l = 0; l < TILE; l++)                                              \
                    f[(j * k + i) * TILE + l] = (REAL)acc[j * TILE + l];                     \
            REAL *diagonal = f + (i * k + i) * TILE;                                         \
            if (i > 0) {                                                                     \
                const REAL *norm = nr + i * TILE;                                            \
                for (long l = 0; l < TILE; l++) diagonal[l] = sqrt(diagonal[l]);             \
                /* a row within sqrt(eps) of the span of the earlier ones (or NaN) is close; \
                   one within eps of it is spanned: its residual and its column of the factor \
                   are multiplied by `keep` (0, or NaN for NaN, 1 for the rows too small to  \
                   judge); every other sample by 1, which changes no number */               \
                REAL keep[TILE];                                                             \
                int near = 0, spanned = 0;                                                   \
                for (long l = 0; l < TILE; l++) {                                            \
                    REAL d = diagonal[l], m = norm[l], rest = d - eps * m;                   \
                    int is_near = !(d - root * m >= 0), is_spanned = is_near && !(rest > 0); \
                    REAL value = rest != rest ? rest                                         \
                                 : m < large  ? (REAL)1                                      \
                                 : m != m     ? m                                            \
                                              : (REAL)0;                                     \
                    keep[l] = is_spanned ? value : (REAL)1;                                  \
                    near |= is_near;                                                         \
                    spanned |= is_spanned;                                                   \
                }                                                                            \
                if (near) close[i] = 1;                                                      \
                if (spanned) {                                                               \
                    for (long j = i; j < k; j++)                                             \
                        for (long l = 0; l < TILE; l++)                                      \
                            f[(j * k + i) * TILE + l] *= keep[l];                            \
                    for (long t = 0; t < n; t++)                                             \
                        for (long l = 0; l < TILE; l++)                                      \
                            work[(i * n + t) * TILE + l] *= keep[l];                         \
                }                                                                            \
            }                                                                                \
            if (i + 1 == k) break;                                                           \
            for (long l = 0; l < TILE; l++) {                                                \
                REAL d = diagonal[l];                                                        \
                inverse[l] = (REAL)1 / (d < tiny ? tiny : d);                                \
            }                                                                                \
            for (long j = i + 1; j < k; j++) {                                               \
                REAL *c = f + (j * k + i) * TILE;                                            \
                REAL *p = projection + j * TILE;                                             \
                for (long l = 0; l < TILE; l++) {                                            \
                    c[l] = c[l] * inverse[l];                                                \
                    p[l] = c[l] * inverse[l];                                                \
                }                                                                            \
            }                                                                                \
            for (long t = 0; t < n; t++) {                                                   \
                const REAL *ri = work + (i * n + t) * TILE;                                  \
                for (long j = i + 1; j < k; j++) {                                           \
                    REAL *rj = work + (j * n + t) * TILE;                                    \
                    const REAL *p = projection + j * TILE;                                   \
                    for (long l = 0; l < TILE; l++) {                                        \
                        REAL term = p[l] * ri[l];                                            \
                        rj[l] = rj[l] - term;                                                \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* 1 where every diagonal entry of rows 1..k-1 of the tile's first w samples is one the  \
       plain norm gives to rounding (in [floor, inf), or an exact zero of a row of zeros or  \
       of a spanned row of norm >= large), else 0 */                                         \
    static int NAME##_valid(const REAL *restrict f, const REAL *restrict nr, long k, long w, \
                            REAL floor_, REAL large)                                         \
    {                                                                                        \
        int valid = 1;                                                                       \
        for (long i = 1; i < k; i++) {                                                       \
            const REAL *d = f + (i * k + i) * TILE, *m = nr + i * TILE;                      \
            for (long l = 0; l < w; l++)                                                     \
                valid &= ((d[l] >= floor_) & (d[l] < INFINITY)) /* no branch: vectorized */  \
                         | ((d[l] == 0) & ((m[l] == 0) | (m[l] >= large)));                  \
        }                                                                                    \
        return valid;                                                                        \
    }                                                                                        \
                                                                                             \
    /* a row of phi equal to an earlier one gets that row's factor row (as                  \
       _copy_repeated_rows_last): candidates are the rows within sqrt(eps) of the span of the \
       earlier ones, compared entry by entry with the earlier rows of the same norm */       \
    static void NAME##_repeated(const REAL *restrict phi, REAL *restrict f,                  \
                                const REAL *restrict nr, long k, long n, long B, long b0,    \
                                long w, REAL root, int relu)                                 \
    {                                                                                        \
        for (long j = 1; j < k; j++) {                                                       \
            /* any candidate with an earlier row of its norm in the tile? (rarely: the     \
               loop below is scalar) */                                                      \
            const REAL *mj = nr + j * TILE, *dj = f + (j * k + j) * TILE;                    \
            int near = 0;                                                                    \
            for (long i = 0; i < j && !near; i++)                                            \
                for (long l = 0; l < w; l++)                                                 \
                    near |= (mj[l] != 0) & (dj[l] <= root * mj[l])                           \
                            & (nr[i * TILE + l] == mj[l]);                                   \
            for (long l = 0; near && l < w; l++) {                                           \
                REAL m = nr[j * TILE + l];                                                   \
                if (!(m != 0 && f[(j * k + j) * TILE + l] <= root * m)) continue;            \
                for (long i = 0; i < j; i++) {                                               \
                    if (nr[i * TILE + l] != m) continue;                                     \
                    const REAL *a = phi + j * n * B + b0 + l, *b = phi + i * n * B + b0 + l; \
                    long t = 0;                                                              \
                    if (relu) /* phi = relu(x): compare the ReLUs (NaN never equal) */       \
                        while (t < n && (a[t * B] < 0 ? 0 : a[t * B])                        \
                                            == (b[t * B] < 0 ? 0 : b[t * B]))                \
                            t++;                                                             \
                    else                                                                     \
                        while (t < n && a[t * B] == b[t * B]) t++;                           \
                    if (t < n) continue;                                                     \
                    for (long c = 0; c < k; c++)                                             \
                        f[(j * k + c) * TILE + l] = f[(i * k + c) * TILE + l];               \
                    break;                                                                   \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* y_a += s C[a, c] z_c for c = 0..a in order, for the tile's w samples; sf (k, k, TILE) \
       gets s C */                                                                           \
    static void NAME##_update(const REAL *restrict z, REAL *restrict y,                      \
                              const REAL *restrict f, REAL *restrict sf, long k, long n,     \
                              long B, long b0, long w, REAL scale)                           \
    {                                                                                        \
        for (long a = 0; a < k; a++) /* the lower triangle: the entries the update reads */ \
            for (long e = a * k * TILE; e < (a * k + a + 1) * TILE; e++) sf[e] = scale * f[e]; \
        for (long t = 0; t < n; t++)                                                         \
            for (long a = 0; a < k; a++) {                                                   \
                REAL *row = y + (a * n + t) * B + b0;                                        \
                for (long c = 0; c <= a; c++) {                                              \
                    const REAL *normal = z + (c * n + t) * B + b0;                           \
                    const REAL *s = sf + (a * k + c) * TILE;                                 \
                    for (long l = 0; l < w; l++) {                                           \
                        REAL term = s[l] * normal[l];                                        \
                        row[l] = row[l] + term;                                              \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
                                                                                             \
    /* the tile's factor in (k, k, B) memory, or back from it */                            \
    static void NAME##_store(REAL *restrict factor, REAL *restrict f, long k, long B,        \
                             long b0, long w, int back)                                      \
    {                                                                                        \
        for (long e = 0; e < k * k; e++)                                                     \
            for (long l = 0; l < w; l++) {                                                   \
                if (back) f[e * TILE + l] = factor[e * B + b0 + l];                          \
                else factor[e * B + b0 + l] = f[e * TILE + l];                               \
            }                                                                                \
    }                                                                                        \
                                                                                             \
    /* scratch: k n TILE + 2 k k TILE + 3 k TILE numbers of REAL, acc: k TILE of ACC */     \
    long NAME(const REAL *phi, const REAL *norms, const REAL *z, REAL *y, REAL *factor,      \
              REAL *scratch, ACC *acc, int *close, unsigned char *deferred, long k, long n,  \
              long B, double scale, double tiny, double eps, double floor_, double large,    \
              int mode, int relu)                                                            \
    {                                                                                        \
        REAL *work = scratch;                                                                \
        REAL *f = work + k * n * TILE;                                                       \
        REAL *sf = f + k * k * TILE;                                                         \
        REAL *nr = sf + k * k * TILE;                                                        \
        REAL *inverse = nr + k * TILE;                                                       \
        REAL *projection = inverse + k * TILE;                                               \
        REAL root = (REAL)sqrt(eps);                                                         \
        long tiles = (B + TILE - 1) / TILE, count = 0;                                       \
        int zeroed = 0; /* whether f's upper triangle is zero (mode 1 reads f back) */      \
        for (long tile = 0; tile < tiles; tile++) {                                          \
            long b0 = tile * TILE, w = B - b0 < TILE ? B - b0 : TILE;                        \
            if (mode == 1) {                                                                 \
                if (!deferred[tile]) continue;                                               \
                NAME##_store(factor, f, k, B, b0, w, 1);                                     \
                NAME##_update(z, y, f, sf, k, n, B, b0, w, (REAL)scale);                     \
                continue;                                                                    \
            }                                                                                \
            for (long j = 0; j < k; j++) {                                                   \
                for (long l = 0; l < TILE; l++) nr[j * TILE + l] = 0;                        \
                for (long l = 0; l < w; l++) nr[j * TILE + l] = norms[j * B + b0 + l];       \
                for (long t = 0; t < n; t++) {                                               \
                    REAL *to = work + (j * n + t) * TILE;                                    \
                    const REAL *from = phi + (j * n + t) * B + b0;                           \
                    if (w < TILE)                                                            \
                        for (long l = 0; l < TILE; l++) to[l] = 0;                           \
                    if (relu) /* phi = relu(y), NaN kept */                                  \
                        for (long l = 0; l < w; l++) to[l] = from[l] < 0 ? 0 : from[l];      \
                    else                                                                     \
                        for (long l = 0; l < w; l++) to[l] = from[l];                        \
                }                                                                            \
            }                                                                                \
            if (!zeroed) /* the upper triangle, which no tile writes: zero once */         \
                for (long e = 0; e < k * k * TILE; e++) f[e] = 0;                            \
            zeroed = 1;                                                                      \
            NAME##_factor(work, f, nr, acc, inverse, projection, close, k, n, (REAL)tiny,   \
                          (REAL)eps, root, (REAL)large);                                     \
            if (!NAME##_valid(f, nr, k, w, (REAL)floor_, (REAL)large)) {                     \
                deferred[tile] = 1;                                                          \
                count++;                                                                     \
                NAME##_store(factor, f, k, B, b0, w, 0);                                     \
                continue;                                                                    \
            }                                                                                \
            deferred[tile] = 0;                                                              \
            NAME##_repeated(phi, f, nr, k, n, B, b0, w, root, relu);                         \
            if (mode != 2) /* 2: only the factor of the tiles left is kept (for mode 1) */  \
                NAME##_store(factor, f, k, B, b0, w, 0);                                     \
            if (w == TILE)                                                                   \
                NAME##_update(z, y, f, sf, k, n, B, b0, TILE, (REAL)scale);                  \
            else                                                                             \
                NAME##_update(z, y, f, sf, k, n, B, b0, w, (REAL)scale);                     \
        }                                                                                    \
        return count;                                                                        \
    }

DEFINE_KERNEL(factor_update_f64, double, double)
DEFINE_KERNEL(factor_update_f32, float, double)

/* The norms of the rows of x (m, n, B), samples-last: out[j, b] = sqrt(sum_t f(x[j, t, b])^2)
   with f = relu (NaN kept) where `relu`, else the identity; the squares summed in double in
   the order of the coordinates (chain._plain_norm). Where `extremes` is given (6 numbers), it
   gets the smallest and the largest entry of x, of out and of plain (NaN where an entry of x
   is NaN, as NumPy's min and max; 1 where there is none, as chain._range),
   where `counts` is given, counts[j ld + b] the entries of row (j, b) above 0, and with
   `relu`, where `plain` is given, the norms of x itself (the bits of relu = 0), and where
   `ratio` is given, ratio[j, b] = out[j, b] / divisor[j, b] (the log-growth's division), all
   in the same pass. */
#define NORM_LANES 32 /* samples whose sums stay in registers */
#define NORM_TILE 256 /* samples per tile of the counts alone (faster so than in lanes) */

/* one pass of the sampler's norms over the coordinates of NORM_LANES samples: the sums of
   squares (of the ReLU where RELU, a literal 0 or 1), the extremes where RANGE and the counts
   where COUNT */
#define SAMPLER_PASS(REAL, RELU, RANGE, COUNT)                                               \
    for (long t = 0; t < n; t++) {                                                           \
        const REAL *row = x + (j * n + t) * B + b0;                                          \
        for (long l = 0; l < NORM_LANES; l++) {                                              \
            REAL r = row[l];                                                                 \
            if (COUNT) count[l] += r > 0;                                                    \
            if (RANGE) low[l] = r < low[l] ? r : low[l];                                     \
            if (RANGE) high[l] = r > high[l] ? r : high[l];                                  \
            double v = (double)r;                                                            \
            v = (RELU) && v < 0 ? 0.0 : v;                                                   \
            acc[l] = acc[l] + v * v;                                                         \
        }                                                                                    \
    }

/* one pass of the norms over the coordinates of `BOUND` samples: the counts where COUNT, the
   plain sums where PLAIN (literals 0 or 1) */
#define NORMS_PASS(REAL, BOUND, COUNT, PLAIN)                                                \
    for (long t = 0; t < n; t++) {                                                           \
        const REAL *row = x + (j * n + t) * B + b0;                                          \
        for (long l = 0; l < (BOUND); l++) {                                                 \
            REAL r = row[l];                                                                 \
            if (COUNT) count[l] += r > 0;                                                    \
            low[l] = r < low[l] ? r : low[l];                                                \
            high[l] = r > high[l] ? r : high[l];                                             \
            double v = (double)r;                                                            \
            if (PLAIN) all[l] = all[l] + v * v;                                              \
            v = v < 0 && relu ? 0.0 : v;                                                     \
            acc[l] = acc[l] + v * v;                                                         \
        }                                                                                    \
    }

#define DEFINE_NORMS(NAME, REAL)                                                              \
    /* NORM_LANES samples at a time with their sums, counts and extremes in registers        \
       across the coordinates (a tiled loop that read and wrote them in L1 at every          \
       coordinate was 3x slower at n = 4). A tie of +0 and -0 for the smallest or largest    \
       entry may come out with either sign (they compare equal; the range is only            \
       compared). */                                                                         \
    void NAME(const REAL *x, REAL *out, long m, long n, long B, int relu, double *extremes, \
              int *counts, long ld, REAL *plain, const REAL *divisor, REAL *ratio)           \
    {                                                                                        \
        const int simple = !counts && !plain; /* the sampler's cases */                      \
        REAL low[NORM_LANES], high[NORM_LANES], least[2][NORM_LANES], most[2][NORM_LANES];   \
        int nan[NORM_LANES];                                                                 \
        for (long l = 0; l < NORM_LANES; l++) {                                              \
            low[l] = least[0][l] = least[1][l] = (REAL)INFINITY;                             \
            high[l] = most[0][l] = most[1][l] = -(REAL)INFINITY;                             \
            nan[l] = 0;                                                                      \
        }                                                                                    \
        for (long j = 0; j < m; j++) {                                                       \
            for (long b0 = 0; b0 < B; b0 += NORM_LANES) {                                    \
                long w = B - b0 < NORM_LANES ? B - b0 : NORM_LANES;                          \
                double acc[NORM_LANES], all[NORM_LANES];                                     \
                int count[NORM_LANES];                                                       \
                for (long l = 0; l < NORM_LANES; l++) acc[l] = all[l] = 0, count[l] = 0;     \
                if (w == NORM_LANES && simple && relu && !extremes) /* a stretch's */      \
                    SAMPLER_PASS(REAL, 1, 0, 0)                                              \
                else if (w == NORM_LANES && simple && relu)                                  \
                    SAMPLER_PASS(REAL, 1, 1, 0)                                              \
                else if (w == NORM_LANES && !plain && relu && extremes) /* observed */     \
                    SAMPLER_PASS(REAL, 1, 1, 1)                                              \
                else if (w == NORM_LANES && simple)                                          \
                    SAMPLER_PASS(REAL, 0, 1, 0)                                              \
                else if (w == NORM_LANES && !plain) /* counts alone: an observer */         \
                    NORMS_PASS(REAL, NORM_LANES, 1, 0)                                       \
                else if (w == NORM_LANES) /* plain norms (and counts): an observer */        \
                    NORMS_PASS(REAL, NORM_LANES, 1, 1)                                       \
                else /* the tail */                                                          \
                    NORMS_PASS(REAL, w, 1, 1)                                                \
                REAL *norm = out + j * B + b0;                                               \
                for (long l = 0; l < w; l++) {                                               \
                    REAL value = (REAL)sqrt(acc[l]);                                         \
                    norm[l] = value;                                                         \
                    nan[l] |= value != value; /* a NaN entry makes its row's norm NaN */     \
                    least[0][l] = value < least[0][l] ? value : least[0][l];                 \
                    most[0][l] = value > most[0][l] ? value : most[0][l];                    \
                }                                                                            \
                if (counts)                                                                  \
                    for (long l = 0; l < w; l++) counts[j * ld + b0 + l] = count[l];         \
                if (ratio)                                                                   \
                    for (long l = 0; l < w; l++)                                             \
                        ratio[j * B + b0 + l] = norm[l] / divisor[j * B + b0 + l];           \
                if (plain) {                                                                 \
                    for (long l = 0; l < w; l++) {                                           \
                        REAL value = (REAL)sqrt(all[l]);                                     \
                        plain[j * B + b0 + l] = value;                                       \
                        least[1][l] = value < least[1][l] ? value : least[1][l];             \
                        most[1][l] = value > most[1][l] ? value : most[1][l];                \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        int any_nan = 0;                                                                     \
        double lowest = INFINITY, highest = -INFINITY;                                       \
        double small[2] = {INFINITY, INFINITY}, big[2] = {-INFINITY, -INFINITY};             \
        for (long l = 0; l < NORM_LANES; l++) {                                              \
            any_nan |= nan[l];                                                               \
            lowest = low[l] < lowest ? low[l] : lowest;                                      \
            highest = high[l] > highest ? high[l] : highest;                                 \
            for (int e = 0; e < 2; e++) {                                                    \
                small[e] = least[e][l] < small[e] ? least[e][l] : small[e];                  \
                big[e] = most[e][l] > big[e] ? most[e][l] : big[e];                          \
            }                                                                                \
        }                                                                                    \
        if (!extremes) return;                                                               \
        int entries = B > 0 && m * n > 0, rows = B > 0 && m > 0;                             \
        extremes[0] = any_nan ? NAN : entries ? lowest : 1.0;                                \
        extremes[1] = any_nan ? NAN : entries ? highest : 1.0;                               \
        for (int e = 0; e < 2; e++) { /* of the norms, then of the plain norms */            \
            extremes[2 + 2 * e] = any_nan ? NAN : rows ? small[e] : 1.0;                     \
            extremes[3 + 2 * e] = any_nan ? NAN : rows ? big[e] : 1.0;                       \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* out[j ld + b] = #{t: x[j, t, b] > 0} (NaN is not) */                                \
    void NAME##_positive(const REAL *x, int *out, long m, long n, long B, long ld)          \
    {                                                                                        \
        int count[NORM_TILE];                                                                \
        for (long b0 = 0; b0 < B; b0 += NORM_TILE) {                                         \
            long w = B - b0 < NORM_TILE ? B - b0 : NORM_TILE;                                \
            for (long j = 0; j < m; j++) {                                                   \
                for (long l = 0; l < w; l++) count[l] = 0;                                   \
                for (long t = 0; t < n; t++) {                                               \
                    const REAL *row = x + (j * n + t) * B + b0;                              \
                    for (long l = 0; l < w; l++) count[l] += row[l] > 0;                     \
                }                                                                            \
                for (long l = 0; l < w; l++) out[j * ld + b0 + l] = count[l];                \
            }                                                                                \
        }                                                                                    \
    }

DEFINE_NORMS(row_norms_f64, double)
DEFINE_NORMS(row_norms_f32, float)

/* Correlations of the rows of y (k, n, B), samples-last, with their norms (k, B):
   out[p ld + b] = sum_t u_a[t] u_b[t] for the pairs p = (a, b > a) in order, u = y / ||y||
   rounded to the dtype, each product rounded to the dtype and the products summed in double
   in the order of the coordinates (the formula of observables._Correlation; at width 1 the
   product itself). Without norms (width 1 only), ||y|| = |y|: u = y / |y| is +-1 exactly
   wherever |y| is finite and nonzero, taken so with no division (the division elsewhere).
   acc: k (k - 1) / 2 * CORR_TILE doubles, unit: k * CORR_TILE numbers. */
#define CORR_TILE 64

#define DEFINE_CORRELATIONS(NAME, REAL, ABS, LARGEST)                                         \
    void NAME(const REAL *y, const REAL *norms, REAL *out, long k, long n, long B, long ld, \
              double *acc, REAL *unit)                                                       \
    {                                                                                        \
        long pairs = k * (k - 1) / 2;                                                        \
        for (long b0 = 0; b0 < B; b0 += CORR_TILE) {                                         \
            long w = B - b0 < CORR_TILE ? B - b0 : CORR_TILE;                                \
            for (long e = 0; e < pairs * CORR_TILE; e++) acc[e] = 0;                         \
            for (long t = 0; t < n; t++) {                                                   \
                for (long a = 0; a < k; a++) {                                               \
                    const REAL *row = y + (a * n + t) * B + b0;                              \
                    REAL *u = unit + a * CORR_TILE;                                          \
                    if (norms) {                                                             \
                        const REAL *norm = norms + a * B + b0;                               \
                        for (long l = 0; l < w; l++) u[l] = row[l] / norm[l];                \
                    } else /* width 1: y / |y|, +-1 exactly but for 0, inf and NaN */       \
                        for (long l = 0; l < w; l++) {                                       \
                            REAL r = row[l], m = ABS(r);                                     \
                            u[l] = m > 0 && m <= LARGEST ? (r > 0 ? (REAL)1 : (REAL)-1) : r / m; \
                        }                                                                    \
                }                                                                            \
                long p = 0;                                                                  \
                for (long a = 0; a < k; a++)                                                 \
                    for (long b = a + 1; b < k; b++, p++) {                                  \
                        const REAL *ua = unit + a * CORR_TILE, *ub = unit + b * CORR_TILE;   \
                        double *s = acc + p * CORR_TILE;                                     \
                        for (long l = 0; l < w; l++) {                                       \
                            REAL product = ua[l] * ub[l];                                    \
                            s[l] = s[l] + (double)product;                                   \
                        }                                                                    \
                    }                                                                        \
            }                                                                                \
            for (long p = 0; p < pairs; p++)                                                 \
                for (long l = 0; l < w; l++)                                                 \
                    out[p * ld + b0 + l] = (REAL)acc[p * CORR_TILE + l];                     \
        }                                                                                    \
    }

DEFINE_CORRELATIONS(correlations_f64, double, fabs, DBL_MAX)
DEFINE_CORRELATIONS(correlations_f32, float, fabsf, FLT_MAX)

/* A layer of a width-1 ReLU state y (m rows of B numbers: an input's samples in a row), in
   one pass: relu = max(y, 0) with NaN and -0 kept (torch.clamp(min=0)), and where given
   modulus = |y| (its norm), sign = 1 where y > 0 else +0 (torch.sign of a finite relu),
   counts[j ld + b] = 1 where y > 0 else 0 (the active counts of width 1, into rows at any
   distance ld: the columns of a results array), ratio = relu / divisor (a per-sample
   divisor, as the state; the log-growth's); extremes (4 numbers) gets the smallest and
   the largest of modulus, then of relu (NaN where an entry of y is NaN; 1 where there is
   none, as chain._range). WIDTH_LANES numbers at a time with the extremes in registers. */
#define WIDTH_LANES 32

/* one pass over BOUND numbers from b0 of row j, writing |y| where MODULUS, the signs where
   SIGN and the counts where COUNTS (literals 0 or 1) */
#define WIDTH_ONE_PASS(REAL, ABS, BOUND, MODULUS, SIGN, COUNTS)                              \
    for (long l = 0; l < (BOUND); l++) {                                                     \
        long i = j * B + b0 + l;                                                             \
        REAL r = y[i];                                                                       \
        REAL a = ABS(r), p = r < 0 ? (REAL)0 : r;                                            \
        if (MODULUS) modulus[i] = a;                                                         \
        relu[i] = p;                                                                         \
        if (SIGN) sign[i] = r > 0 ? (REAL)1 : (REAL)0;                                       \
        if (COUNTS) counts[j * ld + b0 + l] = r > 0;                                         \
        nan[l] |= r != r;                                                                    \
        low[0][l] = a < low[0][l] ? a : low[0][l];                                           \
        high[0][l] = a > high[0][l] ? a : high[0][l];                                        \
        low[1][l] = p < low[1][l] ? p : low[1][l];                                           \
        high[1][l] = p > high[1][l] ? p : high[1][l];                                        \
    }

/* every row: the whole lanes, then the tail, of one case of the outputs */
#define WIDTH_ONE_CASE(REAL, ABS, MODULUS, SIGN, COUNTS)                                     \
    for (long j = 0; j < m; j++) {                                                           \
        long b0 = 0;                                                                         \
        for (; b0 + WIDTH_LANES <= B; b0 += WIDTH_LANES)                                     \
            WIDTH_ONE_PASS(REAL, ABS, WIDTH_LANES, MODULUS, SIGN, COUNTS)                    \
        WIDTH_ONE_PASS(REAL, ABS, B - b0, MODULUS, SIGN, COUNTS)                             \
    }

#define DEFINE_WIDTH_ONE(NAME, REAL, ABS)                                                     \
    void NAME(const REAL *restrict y, long m, long B, REAL *restrict modulus,              \
              REAL *restrict relu, REAL *restrict sign, int *restrict counts, long ld,       \
              const REAL *restrict divisor, REAL *restrict ratio, double *restrict extremes) \
    {                                                                                        \
        REAL low[2][WIDTH_LANES], high[2][WIDTH_LANES];                                      \
        int nan[WIDTH_LANES];                                                                \
        for (long l = 0; l < WIDTH_LANES; l++) {                                             \
            low[0][l] = low[1][l] = (REAL)INFINITY;                                          \
            high[0][l] = high[1][l] = -(REAL)INFINITY;                                       \
            nan[l] = 0;                                                                      \
        }                                                                                    \
        switch ((modulus != 0) * 4 + (sign != 0) * 2 + (counts != 0)) {                     \
        case 0: WIDTH_ONE_CASE(REAL, ABS, 0, 0, 0) break;                                    \
        case 1: WIDTH_ONE_CASE(REAL, ABS, 0, 0, 1) break;                                    \
        case 2: WIDTH_ONE_CASE(REAL, ABS, 0, 1, 0) break;                                    \
        case 3: WIDTH_ONE_CASE(REAL, ABS, 0, 1, 1) break;                                    \
        case 4: WIDTH_ONE_CASE(REAL, ABS, 1, 0, 0) break;                                    \
        case 5: WIDTH_ONE_CASE(REAL, ABS, 1, 0, 1) break;                                    \
        case 6: WIDTH_ONE_CASE(REAL, ABS, 1, 1, 0) break;                                    \
        default: WIDTH_ONE_CASE(REAL, ABS, 1, 1, 1) break;                                   \
        }                                                                                    \
        if (ratio) /* read back from the cache */                                            \
            for (long i = 0; i < m * B; i++) ratio[i] = relu[i] / divisor[i];                \
        int any_nan = 0;                                                                     \
        double small[2] = {INFINITY, INFINITY}, big[2] = {-INFINITY, -INFINITY};             \
        for (long l = 0; l < WIDTH_LANES; l++) {                                             \
            any_nan |= nan[l];                                                               \
            for (int e = 0; e < 2; e++) {                                                    \
                small[e] = low[e][l] < small[e] ? low[e][l] : small[e];                      \
                big[e] = high[e][l] > big[e] ? high[e][l] : big[e];                          \
            }                                                                                \
        }                                                                                    \
        int entries = m > 0 && B > 0;                                                        \
        for (int e = 0; e < 2; e++) {                                                        \
            extremes[2 * e] = any_nan ? NAN : entries ? small[e] : 1.0;                      \
            extremes[2 * e + 1] = any_nan ? NAN : entries ? big[e] : 1.0;                    \
        }                                                                                    \
    }

DEFINE_WIDTH_ONE(width_one_f64, double, fabs)
DEFINE_WIDTH_ONE(width_one_f32, float, fabsf)

/* A stretch of `steps` steps of the chain of one ReLU input (chain._OneReLU) on its
   samples-last state y (n, B), with the normals of each step read from z (steps planes of
   n B numbers, one after the other: a group of the block's buffer): at step i,
   y += value * ||relu(y)|| z_i with the rounding of torch's y.addcmul_(norm, z_i, value) on
   these layouts on an FMA machine, fma(value * norm, z, y) (compared with torch at first use:
   native.relu_stretch), then the new norms: at width 1 relu(y) itself (torch.clamp's bits,
   NaN and -0 kept; none stored), else row_norms' sums (the function the per-step path calls)
   into the other of the rows `norm` and `spare` (B each). `norm` holds the norms at the start
   (not read at width 1) and ends with the last (not written where the first norms fail).
   Every norm, the first included, is checked: one in (0, bound), NaN or +inf stops the call
   after its step. Returns the steps done whose norms all passed (`steps`: all). */
#define STRETCH_OUTSIDE(x, bound, LARGEST) (!((x) <= 0 || ((x) >= (bound) && (x) <= (LARGEST))))

#define DEFINE_STRETCH(NAME, REAL, FMA, NORMS, LARGEST)                                       \
    long NAME(const REAL *z, long steps, REAL *y, REAL *norm, REAL *spare, long n, long B,   \
              double value, double bound)                                                    \
    {                                                                                        \
        const REAL v = (REAL)value, edge = (REAL)bound;                                      \
        int bad = 0;                                                                         \
        if (n == 1)                                                                          \
            for (long b = 0; b < B; b++)                                                     \
                bad |= STRETCH_OUTSIDE(y[b] < 0 ? (REAL)0 : y[b], edge, LARGEST);            \
        else                                                                                 \
            for (long b = 0; b < B; b++) bad |= STRETCH_OUTSIDE(norm[b], edge, LARGEST);     \
        if (bad) return 0;                                                                   \
        REAL *now = norm, *next = spare;                                                     \
        long i = 0;                                                                          \
        for (; i < steps && !bad; i++) {                                                     \
            const REAL *restrict zi = z + i * n * B;                                         \
            if (n == 1) {                                                                    \
                for (long b = 0; b < B; b++) {                                               \
                    const REAL r = y[b], t = r < 0 ? (REAL)0 : r;                            \
                    const REAL w = FMA(v * t, zi[b], r);                                     \
                    y[b] = w;                                                                \
                    bad |= STRETCH_OUTSIDE(w < 0 ? (REAL)0 : w, edge, LARGEST);              \
                }                                                                            \
                continue;                                                                    \
            }                                                                                \
            for (long t = 0; t < n; t++) {                                                   \
                REAL *restrict row = y + t * B;                                              \
                const REAL *restrict zr = zi + t * B, *restrict scale = now;                 \
                for (long b = 0; b < B; b++) row[b] = FMA(v * scale[b], zr[b], row[b]);      \
            }                                                                                \
            NORMS(y, next, 1, n, B, 1, 0, 0, 0, 0, 0, 0);                                    \
            for (long b = 0; b < B; b++) bad |= STRETCH_OUTSIDE(next[b], edge, LARGEST);     \
            REAL *done = now;                                                                \
            now = next;                                                                      \
            next = done;                                                                     \
        }                                                                                    \
        if (n == 1)                                                                          \
            for (long b = 0; b < B; b++) norm[b] = y[b] < 0 ? (REAL)0 : y[b];                \
        else if (now != norm)                                                                \
            for (long b = 0; b < B; b++) norm[b] = now[b];                                   \
        return bad ? i - 1 : i;                                                              \
    }

DEFINE_STRETCH(relu_stretch_f64, double, fma, row_norms_f64, DBL_MAX)
DEFINE_STRETCH(relu_stretch_f32, float, fmaf, row_norms_f32, FLT_MAX)

/* The samples-first copy of a samples-last state x (k, n, B): out[b * ld + j * lj + t] =
   x[(j n + t) B + b], in tiles of TRANSPOSE_TILE x TRANSPOSE_TILE numbers that stay in the
   L1 cache (torch's copy of the transposed view reads or writes one number a cache line: a
   recorded layer took as long as drawing its normals). A copy: no number changes. */
#define TRANSPOSE_TILE 16

#define DEFINE_SAMPLES_FIRST(NAME, REAL)                                                      \
    void NAME(const REAL *restrict x, long k, long n, long B, REAL *restrict out, long ld,   \
              long lj)                                                                       \
    {                                                                                        \
        for (long j = 0; j < k; j++)                                                         \
            for (long b0 = 0; b0 < B; b0 += TRANSPOSE_TILE) {                                \
                const long bw = B - b0 < TRANSPOSE_TILE ? B - b0 : TRANSPOSE_TILE;           \
                for (long t0 = 0; t0 < n; t0 += TRANSPOSE_TILE) {                            \
                    const long tw = n - t0 < TRANSPOSE_TILE ? n - t0 : TRANSPOSE_TILE;       \
                    const REAL *from = x + (j * n + t0) * B + b0;                            \
                    REAL *to = out + b0 * ld + j * lj + t0;                                  \
                    for (long b = 0; b < bw; b++)                                            \
                        for (long t = 0; t < tw; t++) to[b * ld + t] = from[t * B + b];      \
                }                                                                            \
            }                                                                                \
    }

DEFINE_SAMPLES_FIRST(samples_first_f64, double)
DEFINE_SAMPLES_FIRST(samples_first_f32, float)

/* The forward pass and the adjoint sweep of the 2LP block for one sample (N = 1) on the CPU,
   every layer in one call (deeplimit, training/native.py).

   With one sample a layer is two matrix-vector products per weight matrix, so the training
   streams the weights: the bound is the memory's bandwidth. The tensor path reads U and V
   once each in the forward pass and, in the adjoint sweep, reads V for r = V g, reads and
   writes it for V += c_v a g^T, reads U for g + c r^T U / D and reads and writes it for
   U += c_u r h^T, with a Python step and a BLAS call per product. Here each row of a matrix
   is read once per sweep: the adjoint forms r_j = <v_j, g> and updates v_j in the same pass
   over the row (the update does not depend on r_j), then adds r_j u_j to the next adjoint
   and updates u_j in one pass. A network's state (D numbers) stays in the L1 cache.

   Weights: u[l], v[l] point at layer l's (S, M, D) rows (network s, unit j, coordinate d at
   (s M + j) D + d). States: states[l] (S, D) = h_l, acts[l] (S, M) = sigma(p_l) units-major.
   Activation 0: sigma(p) = slope p; 1: tanh. Every product and sum is rounded to the dtype
   on its own (-ffp-contract=off); the sums along the width run in LANES interleaved partial
   sums, then pairwise, then the tail: the same order for every network, so a network's
   numbers depend neither on the batch nor on the thread. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFINE_SWEEPS(SUFFIX, REAL, LANES, TANH)                                              \
    static REAL reduce_##SUFFIX(REAL *acc)                                                   \
    {                                                                                         \
        for (int width = LANES / 2; width > 0; width /= 2)                                    \
            for (int k = 0; k < width; k++) acc[k] = acc[k] + acc[k + width];                 \
        return acc[0];                                                                        \
    }                                                                                         \
                                                                                              \
    static REAL dot_##SUFFIX(const REAL *restrict a, const REAL *restrict b, long n)         \
    {                                                                                         \
        REAL acc[LANES];                                                                      \
        for (int k = 0; k < LANES; k++) acc[k] = 0;                                           \
        long d = 0;                                                                           \
        for (; d + LANES <= n; d += LANES)                                                    \
            for (int k = 0; k < LANES; k++) acc[k] = acc[k] + a[d + k] * b[d + k];            \
        REAL total = reduce_##SUFFIX(acc);                                                    \
        for (; d < n; d++) total = total + a[d] * b[d];                                       \
        return total;                                                                         \
    }                                                                                         \
                                                                                              \
    /* r = <row, g>, then row += t g, in one pass */                                          \
    static REAL dot_update_##SUFFIX(REAL *restrict row, const REAL *restrict g, REAL t,       \
                                    long n)                                                   \
    {                                                                                         \
        REAL acc[LANES];                                                                      \
        for (int k = 0; k < LANES; k++) acc[k] = 0;                                           \
        long d = 0;                                                                           \
        for (; d + LANES <= n; d += LANES)                                                    \
            for (int k = 0; k < LANES; k++) {                                                 \
                REAL x = row[d + k];                                                          \
                acc[k] = acc[k] + x * g[d + k];                                               \
                row[d + k] = x + t * g[d + k];                                                \
            }                                                                                 \
        REAL total = reduce_##SUFFIX(acc);                                                    \
        for (; d < n; d++) {                                                                  \
            REAL x = row[d];                                                                  \
            total = total + x * g[d];                                                         \
            row[d] = x + t * g[d];                                                            \
        }                                                                                     \
        return total;                                                                         \
    }                                                                                         \
                                                                                              \
    static REAL activate_##SUFFIX(REAL p, int activation, REAL slope)                         \
    {                                                                                         \
        return activation == 1 ? TANH(p) : slope * p;                                         \
    }                                                                                         \
                                                                                              \
    int forward_sweep_##SUFFIX(const REAL *const *u, const REAL *const *v, long layers,       \
                               long networks, long width, long dim, const REAL *h0,          \
                               long h0_stride, REAL *const *states, REAL *const *acts,       \
                               REAL *last, const double *scale, int activation,              \
                               double slope_value)                                           \
    {                                                                                         \
        REAL *scratch = malloc(sizeof(REAL) * (3 * dim + width));                             \
        if (scratch == NULL) return -1;                                                       \
        REAL *acc = scratch, *spare[2] = {scratch + dim, scratch + 2 * dim};                  \
        REAL *units = scratch + 3 * dim;                                                      \
        const REAL inv_d = (REAL)(1.0 / (double)dim), slope = (REAL)slope_value;              \
        for (long s = 0; s < networks; s++) {                                                 \
            REAL *h = states != NULL ? states[0] + s * dim : spare[0];                        \
            memcpy(h, h0 + s * h0_stride, sizeof(REAL) * dim);                                \
            const REAL c = (REAL)scale[s];                                                    \
            for (long l = 0; l < layers; l++) {                                               \
                const long offset = s * width * dim;                                          \
                const REAL *U = u[l] + offset, *V = v[l] + offset;                            \
                REAL *a = acts != NULL ? acts[l] + s * width : units;                         \
                for (long j = 0; j < width; j++)                                              \
                    a[j] = activate_##SUFFIX(dot_##SUFFIX(U + j * dim, h, dim) * inv_d,       \
                                             activation, slope);                              \
                for (long d = 0; d < dim; d++) acc[d] = 0;                                    \
                for (long j = 0; j < width; j++) {                                            \
                    const REAL aj = a[j];                                                     \
                    const REAL *restrict row = V + j * dim;                                   \
                    for (long d = 0; d < dim; d++) acc[d] = acc[d] + aj * row[d];             \
                }                                                                             \
                REAL *next;                                                                   \
                if (l + 1 == layers)                                                          \
                    next = last + s * dim;                                                    \
                else if (states != NULL)                                                      \
                    next = states[l + 1] + s * dim;                                           \
                else                                                                          \
                    next = spare[(l + 1) % 2];                                                \
                for (long d = 0; d < dim; d++) next[d] = h[d] + c * acc[d];                   \
                h = next;                                                                     \
            }                                                                                 \
            if (layers == 0) memcpy(last + s * dim, h, sizeof(REAL) * dim);                   \
        }                                                                                     \
        free(scratch);                                                                        \
        return 0;                                                                             \
    }                                                                                         \
                                                                                              \
    /* the adjoint sweep l = L..1 from g_L, each layer's weights updated in place:            \
       r = (V g) sigma'(p) r_mult; V += c_v a g^T (same pass); g_{l-1} = g + g_alpha r^T U;   \
       U += c_u r h^T (same pass as the product); per network s the coefficients              \
       r_mult[s], g_alpha[s], c_v[s], c_u[s]; adjoints[l] (S, D), if given, gets g_l */       \
    int adjoint_sweep_##SUFFIX(REAL *const *u, REAL *const *v, long layers, long networks,   \
                               long width, long dim, const REAL *const *states,              \
                               const REAL *const *acts, const REAL *g_last, REAL *g_first,   \
                               REAL *const *adjoints,                                        \
                               const double *r_mult, const double *g_alpha,                  \
                               const double *v_coefficient, const double *u_coefficient,     \
                               int activation, double slope_value)                           \
    {                                                                                         \
        REAL *scratch = malloc(sizeof(REAL) * (3 * dim + width));                             \
        if (scratch == NULL) return -1;                                                       \
        REAL *acc = scratch, *spare[2] = {scratch + dim, scratch + 2 * dim};                  \
        REAL *r = scratch + 3 * dim;                                                          \
        const REAL slope = (REAL)slope_value;                                                 \
        for (long s = 0; s < networks; s++) {                                                 \
            REAL *g = spare[0];                                                               \
            memcpy(g, g_last + s * dim, sizeof(REAL) * dim);                                  \
            const REAL cv = (REAL)v_coefficient[s], cu = (REAL)u_coefficient[s];              \
            const REAL scale_r = (REAL)r_mult[s], alpha = (REAL)g_alpha[s];                   \
            for (long l = layers - 1; l >= 0; l--) {                                          \
                const long offset = s * width * dim;                                          \
                REAL *U = u[l] + offset, *V = v[l] + offset;                                  \
                const REAL *a = acts[l] + s * width, *h = states[l] + s * dim;                \
                for (long j = 0; j < width; j++) {                                            \
                    REAL rj = dot_update_##SUFFIX(V + j * dim, g, cv * a[j], dim);            \
                    if (activation == 1)                                                      \
                        rj = rj * (1 - a[j] * a[j]);                                          \
                    else                                                                      \
                        rj = rj * slope;                                                      \
                    r[j] = rj * scale_r;                                                      \
                }                                                                             \
                for (long d = 0; d < dim; d++) acc[d] = 0;                                    \
                for (long j = 0; j < width; j++) {                                            \
                    const REAL rj = r[j], w = cu * rj;                                        \
                    REAL *restrict row = U + j * dim;                                         \
                    for (long d = 0; d < dim; d++) {                                          \
                        const REAL x = row[d];                                                \
                        acc[d] = acc[d] + rj * x;                                             \
                        row[d] = x + w * h[d];                                                \
                    }                                                                         \
                }                                                                             \
                REAL *next = spare[(layers - l) % 2];                                         \
                for (long d = 0; d < dim; d++) next[d] = g[d] + alpha * acc[d];               \
                if (adjoints != NULL) memcpy(adjoints[l] + s * dim, next, sizeof(REAL) * dim);\
                g = next;                                                                     \
            }                                                                                 \
            memcpy(g_first + s * dim, g, sizeof(REAL) * dim);                                 \
        }                                                                                     \
        free(scratch);                                                                        \
        return 0;                                                                             \
    }

DEFINE_SWEEPS(f64, double, 16, tanh)
DEFINE_SWEEPS(f32, float, 32, tanhf)

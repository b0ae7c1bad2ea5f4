// Device random draws: Philox4x32-10 uniforms and alpha-stable (CMS) blocks, keyed exactly as
// pipeline/numerics/rng.py (counter = (col, row, layer, stream), key = (seed low, seed high)).
//
// One thread per drawn value, grid-stride loop over the n_rows x n_cols block; each thread
// runs its own Philox call (no state, no shared memory), so any launch shape gives the same
// numbers. The fill kernels write straight into the augmented GEMM operand [Z | zeta | 0]
// (row-major, leading dimension ld): Z goes to columns 0..N-1, zeta to column N (offset N).
#include "philox_cms.cuh"

// u1, u2 (float64, n_rows x n_cols row-major) of the draws at rows row_start.., cols col_start..
extern "C" __global__ void ps_uniforms_block(double* __restrict__ u1, double* __restrict__ u2,
                                             unsigned int k0, unsigned int k1,
                                             unsigned int stream, unsigned int layer,
                                             unsigned int row_start, unsigned int n_rows,
                                             unsigned int col_start, unsigned int n_cols) {
    const long long total = (long long)n_rows * (long long)n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const unsigned int r = (unsigned int)(i / n_cols);
        const unsigned int c = (unsigned int)(i - (long long)r * n_cols);
        ps_uniforms(k0, k1, stream, layer, row_start + r, col_start + c, &u1[i], &u2[i]);
    }
}

template <typename T>
__device__ __forceinline__ void ps_fill_stable(T* __restrict__ out, long long offset,
                                               long long ld, unsigned int k0, unsigned int k1,
                                               unsigned int stream, unsigned int layer,
                                               unsigned int row_start, unsigned int n_rows,
                                               unsigned int col_start, unsigned int n_cols,
                                               const ps_cms_consts& k, int mode) {
    const long long total = (long long)n_rows * (long long)n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const unsigned int r = (unsigned int)(i / n_cols);
        const unsigned int c = (unsigned int)(i - (long long)r * n_cols);
        double u1, u2;
        ps_uniforms(k0, k1, stream, layer, row_start + r, col_start + c, &u1, &u2);
        const double x = ps_cms(__dsub_rn(u1, 0.5), u2, k, mode);  // u1 - 1/2: exact
        out[offset + (long long)r * ld + c] = (T)x;  // one rounding, as NumPy's out= cast
    }
}

// out[offset + r*ld + c] = S_alpha(1) draw at (row_start + r, col_start + c), r < n_rows,
// c < n_cols; pi, pi_1ma, pi_a2, c_t, c_s as rng._cms_constants; mode PS_CMS_*.
#define PS_FILL_ENTRY(NAME, T)                                                                 \
    extern "C" __global__ void NAME(T* __restrict__ out, long long offset, long long ld,        \
                                    unsigned int k0, unsigned int k1, unsigned int stream,      \
                                    unsigned int layer, unsigned int row_start,                 \
                                    unsigned int n_rows, unsigned int col_start,                \
                                    unsigned int n_cols, double pi, double pi_1ma,              \
                                    double pi_a2, double c_t, double c_s, int mode) {           \
        ps_cms_consts k;                                                                        \
        k.pi = pi;                                                                              \
        k.pi_1ma = pi_1ma;                                                                      \
        k.pi_a2 = pi_a2;                                                                        \
        k.c_t = c_t;                                                                            \
        k.c_s = c_s;                                                                            \
        ps_fill_stable<T>(out, offset, ld, k0, k1, stream, layer, row_start, n_rows, col_start, \
                          n_cols, k, mode);                                                     \
    }

PS_FILL_ENTRY(ps_fill_stable_f32, float)
PS_FILL_ENTRY(ps_fill_stable_f64, double)

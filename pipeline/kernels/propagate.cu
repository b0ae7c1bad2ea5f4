// The fused per-layer elementwise pass of the propagation experiment, the device twin of
// _elementwise in pipeline/experiments/propagation/reference.py. The GEMM
// h = x_aug @ [Z | zeta | 0]^T runs in cuBLAS before it; this kernel turns h into the next
// augmented input x and the per-point reductions.
//
// Layout (as in the NumPy reference): h is (p*R, N) row-major, x is (p*R, ld) row-major with
// the layer input in columns 0..N-1 (columns N.. hold sigma_b and zeros and are not touched);
// the R rows of a point are contiguous: with the pair probe rows 0, 1, 2 are a, b and the
// tangent, then the circle/batch rows.
//
// Design: one thread block per grid point (grid-stride over points), threads stride over the
// N columns. The pair rows take two passes: pass 1 accumulates, per thread in float64, the sums
// |h_a|^2, |h_b|^2, <h_a, h_b>, |h_a - h_b|^2, |dh|^2, reduced over the block by warp shuffles
// and one shared-memory stage; pass 2 (which needs |dh| for the renormalisation) writes
//   x_a = sw * phi(h_a),  x_b = sw * phi(h_b),  x_t = (phi'(h_a) * dh) * (sw / |dh|),
// re-reading h from L1/L2. The other rows take one pass: x = sw * phi(h), plus |h|^2 for the
// non-finite check. Per point the kernel writes stats[5] = (saa, sbb, sab, sdist, stt) and
// bad = 1 when some row's squared norm is not a finite number of T (non-finite entry or
// overflow of T, as the NumPy reference tests it on its T-precision sums); stt is NaN when
// h_a or the tangent is not finite in T (the tangent is then NaN from here on).
//
// Summation order (mirrored by ops.NumpyOps, so the CPU tests pin it): thread t sums its
// columns j = t, t + 256, ... in order, starting from 0.0; lane 0 of each warp gets the
// __shfl_down tree (offsets 16, 8, 4, 2, 1); the warps' totals are added in warp order.
// Compiled with --fmad=false: every product is rounded before it is added.
#include "activation_ids.cuh"

#define PS_BLOCK 256
#define PS_NSTAT 5

__device__ __forceinline__ float ps_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double ps_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float ps_erf(float v) { return erff(v); }
__device__ __forceinline__ double ps_erf(double v) { return erf(v); }
__device__ __forceinline__ float ps_exp(float v) { return expf(v); }
__device__ __forceinline__ double ps_exp(double v) { return exp(v); }
__device__ __forceinline__ bool ps_finite(float v) { return isfinite(v); }
__device__ __forceinline__ bool ps_finite(double v) { return isfinite(v); }
__device__ __forceinline__ float ps_to(double v, float) { return (float)v; }
__device__ __forceinline__ double ps_to(double v, double) { return v; }

// phi(h) (pipeline/numerics/activations.py: relu propagates NaN like numpy.maximum). An id
// with no case traps: the launch fails instead of computing another activation.
template <typename T>
__device__ __forceinline__ T ps_phi(T h, int act) {
    switch (act) {
        case PS_ACT_TANH:
            return ps_tanh(h);
        case PS_ACT_RELU:
            return (h > (T)0 || h != h) ? h : (T)0;
        case PS_ACT_ERF:
            return ps_erf(h);
        case PS_ACT_LINEAR:
            return h;
        default:  // an activation with no case here is an error, not the identity
            __trap();
    }
    return h;  // not reached
}

// phi'(h) given x = phi(h) (Activation.dphi_hx)
template <typename T>
__device__ __forceinline__ T ps_dphi_hx(T h, T x, int act) {
    switch (act) {
        case PS_ACT_TANH:
            return (T)1 - x * x;
        case PS_ACT_RELU:
            return h > (T)0 ? (T)1 : (T)0;
        case PS_ACT_ERF:
            return (T)1.1283791670955126 * ps_exp(-h * h);  // 2/sqrt(pi) exp(-h^2)
        case PS_ACT_LINEAR:
            return (T)1;
        default:
            __trap();
    }
    return (T)1;  // not reached
}

__device__ __forceinline__ double ps_warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

// Sum of v[0..n_val) over the block; every thread gets the totals. n_val <= PS_NSTAT.
__device__ __forceinline__ void ps_block_sum(double* v, int n_val,
                                             double (*sh)[PS_BLOCK / 32]) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = (blockDim.x + 31) >> 5;
    for (int k = 0; k < n_val; ++k) {
        const double s = ps_warp_sum(v[k]);
        if (lane == 0) sh[k][warp] = s;
    }
    __syncthreads();
    for (int k = 0; k < n_val; ++k) {
        double s = 0.0;
        for (int w = 0; w < n_warps; ++w) s += sh[k][w];  // same order in every thread
        v[k] = s;
    }
    __syncthreads();  // sh is reused by the next call
}

template <typename T>
__device__ __forceinline__ void ps_layer_step(const T* __restrict__ h, T* __restrict__ x,
                                              long long ldx, int n, int R, int p, int has_pair,
                                              const T* __restrict__ ws, int act,
                                              double* __restrict__ stats, int* __restrict__ bad) {
    __shared__ double sh[PS_NSTAT][PS_BLOCK / 32];
    for (int pt = blockIdx.x; pt < p; pt += gridDim.x) {
        const long long row0 = (long long)pt * R;
        const T w = ws[pt];
        bool any_bad = false;
        int r_first = 0;
        if (has_pair) {
            const T* ha = h + row0 * n;
            const T* hb = ha + n;
            const T* ht = hb + n;
            double s[PS_NSTAT] = {0.0, 0.0, 0.0, 0.0, 0.0};
            for (int j = threadIdx.x; j < n; j += blockDim.x) {
                const T a = ha[j], b = hb[j], t = ht[j];
                const T d = a - b;  // in T, as the reference
                s[0] += (double)a * (double)a;
                s[1] += (double)b * (double)b;
                s[2] += (double)a * (double)b;
                s[3] += (double)d * (double)d;
                s[4] += (double)t * (double)t;
            }
            ps_block_sum(s, PS_NSTAT, sh);
            const bool lost = !ps_finite(ps_to(s[0], (T)0)) || !ps_finite(ps_to(s[4], (T)0));
            any_bad = lost || !ps_finite(ps_to(s[1], (T)0));
            // the tangent's renormalisation folded into its sigma_w pre-scaling; a tangent that
            // vanished exactly stays 0 (never 0/0); a lost one (h_a or dh not finite in T:
            // overflow) becomes NaN and |dh|^2 is reported as NaN, so lambda stays NaN and is
            // never called ordered (reference.tangent_growth)
            const double nan = __longlong_as_double(0x7FF8000000000000LL);
            const T scale_t = lost ? ps_to(nan, (T)0)
                                   : (s[4] > 0.0 ? ps_to((double)w / sqrt(s[4]), (T)0) : (T)0);
            if (lost) s[4] = nan;
            T* xa = x + row0 * ldx;
            T* xb = xa + ldx;
            T* xt = xb + ldx;
            for (int j = threadIdx.x; j < n; j += blockDim.x) {
                const T a = ha[j], b = hb[j], t = ht[j];
                const T pa = ps_phi(a, act);
                xa[j] = pa * w;
                xb[j] = ps_phi(b, act) * w;
                xt[j] = (ps_dphi_hx(a, pa, act) * t) * scale_t;
            }
            if (threadIdx.x == 0) {
                for (int k = 0; k < PS_NSTAT; ++k) stats[(long long)pt * PS_NSTAT + k] = s[k];
            }
            r_first = 3;
        }
        for (int r = r_first; r < R; ++r) {
            const T* hr = h + (row0 + r) * n;
            T* xr = x + (row0 + r) * ldx;
            double s[1] = {0.0};
            for (int j = threadIdx.x; j < n; j += blockDim.x) {
                const T v = hr[j];
                s[0] += (double)v * (double)v;
                xr[j] = ps_phi(v, act) * w;
            }
            ps_block_sum(s, 1, sh);
            any_bad = any_bad || !ps_finite(ps_to(s[0], (T)0));
        }
        if (threadIdx.x == 0) bad[pt] = any_bad ? 1 : 0;
    }
}

// Launch with blockDim.x == PS_BLOCK (a multiple of 32, at most PS_BLOCK) and any grid size.
#define PS_STEP_ENTRY(NAME, T)                                                                \
    extern "C" __global__ void __launch_bounds__(PS_BLOCK)                                    \
        NAME(const T* __restrict__ h, T* __restrict__ x, long long ldx, int n, int R, int p, \
             int has_pair, const T* __restrict__ ws, int act, double* __restrict__ stats,    \
             int* __restrict__ bad) {                                                         \
        ps_layer_step<T>(h, x, ldx, n, R, p, has_pair, ws, act, stats, bad);                 \
    }

PS_STEP_ENTRY(ps_layer_step_f32, float)
PS_STEP_ENTRY(ps_layer_step_f64, double)

// Gradient-descent training of one small MLP per hyperparameter point, the device twin of
// pipeline/experiments/trainability/reference.py (the NumPy reference). NVRTC-compatible: no
// host headers.
//
// Network (mean-field parameterisation, no biases, output dimension 1, width n, depth D):
//   z_1 = x W_1 / sqrt(n),  a_k = phi(z_k),  z_{k+1} = a_k W_{k+1} / sqrt(n),  f = z_D / sqrt(n)
// MSE loss mean_b (f_b - y_b)^2; each step W_k -= lr_k * grad_k with lr_k = lr_in for even k
// (0-based: W_1 is k = 0) and lr_out for odd k. losses[pt * steps + t] receives the full-batch
// loss before step t (as float64); the host scores the trajectories (score_trajectory).
//
// Mapping: one point per group of N lanes (N = 4, 8, 16 or 32, a power of two >= n; 32 / N
// points per warp). Lane j owns hidden unit j: column j of W_1 and of every hidden W_k, element
// j of the output weights W_D, and the matching gradient accumulators, all in registers (every
// loop over i < N is unrolled, N and D are template parameters). Why not one point per thread:
// a thread would hold 2 x (n^2 (D-1) + n) weights and accumulators (544 float64 at n = 16,
// D = 2), far beyond the 255-register limit, so every multiply-add would go through local
// memory; with one unit per lane the same state is 2n + 2 registers per lane at D = 2.
//   forward:  z_1[j] = sum_i x[b, i] W_1[i, j] (x broadcast from shared memory);
//             hidden layers broadcast a[i] from lane i with __shfl_sync;
//             the output sum over j is an xor butterfly (same bits in every lane).
//   backward: dz = (2/B) r / sqrt(n) in every lane; g_D[j] += a[j] dz;
//             dL/da for a hidden layer, sum_j W[i, j] dz[j], is a reduce-scatter across the
//             group (recursive halving, N - 1 shuffles) that leaves entry i in lane i;
//             g_1[i, j] += x[b, i] dz_1[j].
// Lanes j >= n (padding of a width that is not a power of two) hold zeros, contribute zeros
// and never update: a masked select, never a multiply, so inf/NaN of a diverged point cannot
// leak into the padding and back.
//
// Shared data: the batch (X: B x n, Y: B) is streamed through shared memory in tiles of
// PT_ROWS rows (any batch size; the minibatch pass gathers its 16 rows by index); every group
// of the block reads the same row, a broadcast. The initial weights (n^2 (D-1) + n values,
// row-major per layer) are read once per point from global memory. All points of a block run
// the same loops (steps, rows), so the __syncthreads around each tile are uniform.
//
// Sums are sequential over the batch (in T), over i (in T), as a butterfly or reduce-scatter
// over units; pipeline/experiments/trainability/emulate.py reproduces this order in NumPy.
//
// Limits: 1 <= n <= 32 (N <= 32: a group lives in one warp), 2 <= D <= 4. At N = 32 and D >= 3
// in float64 the per-lane state (w1, g1, wh, gh: 2 (D - 1) N doubles, 384 registers at D = 4)
// exceeds the 255-register limit and spills to local memory (sm_90, -Xptxas -v: D = 4 960 B
// stack, 2568 / 2272 B spill stores / loads; D = 3 432 B, 336 / 624 B); correct, and
// benchmarks/trainability.py measures its rate beside the other entry points.
//
// Compiled with --fmad=false (pipeline/gpu/kernels.py): every a*b + c below rounds twice, as in
// the emulation.
#include "activation_ids.cuh"

#define PT_BLOCK 128
#define PT_ROWS 32
#define PT_FULL_MASK 0xFFFFFFFFu

__device__ __forceinline__ float pt_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double pt_tanh(double v) { return tanh(v); }

// A trainability activation: phi(z) = gain_out * base(gain_in * z), base one of the PS_ACT_*
// ids; the gains are kernel arguments from the one table (pipeline/experiments/trainability/
// reference.py TRAIN_ACTIVATIONS: tanh(sqrt2 z), sqrt2 relu(z), sigmoid(z), identity). A gain
// of 1 multiplies exactly, so the bits are those of the formula without it.
template <typename T>
struct PtAct {
    int id;
    T gain_in, gain_out;
};

// An id with no case here is an error: the kernel traps (the launch fails), it does not fall
// back to another activation.
template <typename T>
__device__ __forceinline__ T pt_phi(T z, const PtAct<T>& act) {
    const T u = act.gain_in * z;
    switch (act.id) {
        case PS_ACT_TANH:
            return act.gain_out * pt_tanh(u);
        case PS_ACT_RELU:  // NaN propagates like numpy.maximum
            return act.gain_out * ((u > (T)0 || u != u) ? u : (T)0);
        case PS_ACT_SIGMOID:
            return act.gain_out * ((T)0.5 * ((T)1 + pt_tanh((T)0.5 * u)));
        case PS_ACT_LINEAR:
            return act.gain_out * u;
        default:
            __trap();
    }
    return z;  // not reached
}

// phi'(z) given a = phi(z): gain_in * gain_out * base'(gain_in z), base' from b = a / gain_out
template <typename T>
__device__ __forceinline__ T pt_dphi(T z, T a, const PtAct<T>& act) {
    const T g = act.gain_in * act.gain_out;
    const T b = a / act.gain_out;
    switch (act.id) {
        case PS_ACT_TANH:
            return g * ((T)1 - b * b);
        case PS_ACT_RELU:
            return act.gain_in * z > (T)0 ? g : (T)0;
        case PS_ACT_SIGMOID:
            return g * (b * ((T)1 - b));
        case PS_ACT_LINEAR:
            return g;
        default:
            __trap();
    }
    return (T)0;  // not reached
}

template <int D>
struct PtHidden {
    static constexpr int value = D > 2 ? D - 2 : 1;  // array size (>= 1) of the hidden matrices
};

// One pass over `rows` data rows (row r is idx[r], or r when idx is null): loss += sum of
// squared residuals and, with GRAD, the gradient accumulators += this pass's contributions.
template <typename T, int N, int D, bool GRAD>
__device__ __forceinline__ void pt_pass(const T* __restrict__ x, const T* __restrict__ y,
                                        const int* __restrict__ idx, int rows, int n, int j,
                                        bool real, const PtAct<T>& act, T inv, T scale, T (&xs)[PT_ROWS][N],
                                        T (&ys)[PT_ROWS], const T (&w1)[N], T (&g1)[N],
                                        const T (&wh)[PtHidden<D>::value][N],
                                        T (&gh)[PtHidden<D>::value][N], T wd, T& gd, T& loss) {
    for (int r0 = 0; r0 < rows; r0 += PT_ROWS) {
        const int cnt = min(PT_ROWS, rows - r0);
        __syncthreads();  // the previous tile is consumed
        for (int e = threadIdx.x; e < cnt * n; e += blockDim.x) {
            const int r = e / n, c = e - r * n;
            const int src = idx ? idx[r0 + r] : r0 + r;
            xs[r][c] = x[(long long)src * n + c];
        }
        for (int e = threadIdx.x; e < cnt; e += blockDim.x) ys[e] = y[idx ? idx[r0 + e] : r0 + e];
        __syncthreads();
        for (int r = 0; r < cnt; ++r) {
            // forward
            T z[D - 1], a[D - 1];
            T acc = (T)0;
#pragma unroll
            for (int i = 0; i < N; ++i)
                if (i < n) acc += xs[r][i] * w1[i];
            z[0] = acc * inv;
            a[0] = real ? pt_phi(z[0], act) : (T)0;
#pragma unroll
            for (int h = 0; h + 2 < D; ++h) {
                T s = (T)0;
#pragma unroll
                for (int i = 0; i < N; ++i)
                    if (i < n) s += __shfl_sync(PT_FULL_MASK, a[h], i, N) * wh[h][i];
                z[h + 1] = s * inv;
                a[h + 1] = real ? pt_phi(z[h + 1], act) : (T)0;
            }
            T s = real ? a[D - 2] * wd : (T)0;
#pragma unroll
            for (int o = N / 2; o > 0; o >>= 1) s += __shfl_xor_sync(PT_FULL_MASK, s, o, N);
            const T res = (s * inv) * inv - ys[r];
            loss += res * res;
            if (!GRAD) continue;
            // backward
            const T dz = (scale * res) * inv;
            gd += a[D - 2] * dz;
            T dzj = real ? ((dz * wd) * inv) * pt_dphi(z[D - 2], a[D - 2], act) : (T)0;
#pragma unroll
            for (int h = D - 3; h >= 0; --h) {  // wh[h] maps a[h] to z[h + 1]; dzj = dL/dz[h+1]
                T v[N];
#pragma unroll
                for (int i = 0; i < N; ++i) {
                    if (i < n) gh[h][i] += __shfl_sync(PT_FULL_MASK, a[h], i, N) * dzj;
                    v[i] = wh[h][i] * dzj;
                }
                // reduce-scatter: lane j ends with sum over lanes of v[j]
#pragma unroll
                for (int o = N / 2; o > 0; o >>= 1) {
                    const bool up = (j & o) != 0;
#pragma unroll
                    for (int t = 0; t < o; ++t) {
                        const T send = up ? v[t] : v[t + o];
                        const T keep = up ? v[t + o] : v[t];
                        v[t] = keep + __shfl_xor_sync(PT_FULL_MASK, send, o, N);
                    }
                }
                dzj = real ? (v[0] * inv) * pt_dphi(z[h], a[h], act) : (T)0;
            }
#pragma unroll
            for (int i = 0; i < N; ++i)
                if (i < n) g1[i] += xs[r][i] * dzj;
        }
    }
}

template <typename T, int N, int D>
__device__ __forceinline__ void pt_train(const T* __restrict__ w0, const T* __restrict__ x,
                                         const T* __restrict__ y, const int* __restrict__ mb,
                                         const T* __restrict__ lr_in,
                                         const T* __restrict__ lr_out,
                                         const T* __restrict__ offset, int n, int batch,
                                         int steps, int minibatch, const PtAct<T>& act,
                                         long long p, double* __restrict__ losses) {
    constexpr int PPB = PT_BLOCK / N;  // points per block
    constexpr int H = PtHidden<D>::value;
    __shared__ T xs[PT_ROWS][N];
    __shared__ T ys[PT_ROWS];
    const int j = threadIdx.x % N;
    const bool real = j < n;
    const T inv = (T)(1.0 / sqrt((double)n));
    const T scale_full = (T)(2.0 / (double)batch);
    const T scale_mb = (T)(2.0 / (double)minibatch);
    // grid-stride over blocks of points: the trip count depends on blockIdx only (uniform)
    for (long long base = (long long)blockIdx.x * PPB; base < p;
         base += (long long)gridDim.x * PPB) {
        const long long pt = base + threadIdx.x / N;
        const bool active = pt < p;
        const long long q = active ? pt : p - 1;  // tail groups run a copy, write nothing
        const T li = lr_in[q], lo = lr_out[q], off = offset[q];
        const T lr_h[2] = {li, lo};
        T w1[N], g1[N], wh[H][N], gh[H][N], wd, gd;
#pragma unroll
        for (int i = 0; i < N; ++i) w1[i] = (real && i < n) ? w0[i * n + j] + off : (T)0;
#pragma unroll
        for (int h = 0; h < H; ++h)
#pragma unroll
            for (int i = 0; i < N; ++i)
                wh[h][i] = (h + 2 < D && real && i < n) ? w0[(h + 1) * n * n + i * n + j] : (T)0;
        wd = real ? w0[(D - 1) * n * n + j] : (T)0;
        for (int t = 0; t < steps; ++t) {
#pragma unroll
            for (int i = 0; i < N; ++i) g1[i] = (T)0;
#pragma unroll
            for (int h = 0; h < H; ++h)
#pragma unroll
                for (int i = 0; i < N; ++i) gh[h][i] = (T)0;
            gd = (T)0;
            T loss = (T)0;
            if (minibatch) {
                // loss on the full batch, gradient on this step's minibatch rows
                pt_pass<T, N, D, false>(x, y, nullptr, batch, n, j, real, act, inv, scale_full,
                                        xs, ys, w1, g1, wh, gh, wd, gd, loss);
                T unused = (T)0;
                pt_pass<T, N, D, true>(x, y, mb + (long long)t * minibatch, minibatch, n, j,
                                       real, act, inv, scale_mb, xs, ys, w1, g1, wh, gh, wd, gd,
                                       unused);
            } else {
                pt_pass<T, N, D, true>(x, y, nullptr, batch, n, j, real, act, inv, scale_full,
                                       xs, ys, w1, g1, wh, gh, wd, gd, loss);
            }
            if (active && j == 0) losses[pt * steps + t] = (double)(loss / (T)batch);
            if (real) {
#pragma unroll
                for (int i = 0; i < N; ++i)
                    if (i < n) w1[i] -= li * (g1[i] * inv);
#pragma unroll
                for (int h = 0; h + 2 < D; ++h)
#pragma unroll
                    for (int i = 0; i < N; ++i)
                        if (i < n) wh[h][i] -= lr_h[(h + 1) & 1] * (gh[h][i] * inv);
                wd -= lr_h[(D - 1) & 1] * (gd * inv);
            }
        }
    }
}

// Launch with blockDim.x == PT_BLOCK and any grid size. `minibatch` is the number of rows per
// step in minibatch mode (mb holds steps x minibatch row indices in [0, batch)), 0 otherwise.
#define PT_ENTRY(T, SUF, N, D)                                                                \
    extern "C" __global__ void __launch_bounds__(PT_BLOCK) ps_train_##SUF##_n##N##_d##D(     \
        const T* __restrict__ w0, const T* __restrict__ x, const T* __restrict__ y,           \
        const int* __restrict__ mb, const T* __restrict__ lr_in, const T* __restrict__ lr_out, \
        const T* __restrict__ offset, int n, int batch, int steps, int minibatch, int act,     \
        double gain_in, double gain_out, long long p, double* __restrict__ losses) {          \
        const PtAct<T> a = {act, (T)gain_in, (T)gain_out};                                    \
        pt_train<T, N, D>(w0, x, y, mb, lr_in, lr_out, offset, n, batch, steps, minibatch, a, \
                          p, losses);                                                         \
    }

#define PT_ENTRIES(T, SUF)                                                                   \
    PT_ENTRY(T, SUF, 4, 2)                                                                   \
    PT_ENTRY(T, SUF, 4, 3)                                                                   \
    PT_ENTRY(T, SUF, 4, 4)                                                                   \
    PT_ENTRY(T, SUF, 8, 2)                                                                   \
    PT_ENTRY(T, SUF, 8, 3)                                                                   \
    PT_ENTRY(T, SUF, 8, 4)                                                                   \
    PT_ENTRY(T, SUF, 16, 2)                                                                  \
    PT_ENTRY(T, SUF, 16, 3)                                                                  \
    PT_ENTRY(T, SUF, 16, 4)                                                                  \
    PT_ENTRY(T, SUF, 32, 2)                                                                  \
    PT_ENTRY(T, SUF, 32, 3)                                                                  \
    PT_ENTRY(T, SUF, 32, 4)

// With -DPT_ONLY_T=double -DPT_ONLY_SUF=f64 -DPT_ONLY_N=16 -DPT_ONLY_D=2 (what the launcher
// passes) the module holds that one entry point and compiles in a few seconds; without, all 24
// (compile checks). PT_ENTRY_X expands the macro arguments before PT_ENTRY pastes them.
#define PT_ENTRY_X(T, SUF, N, D) PT_ENTRY(T, SUF, N, D)
#ifdef PT_ONLY_N
PT_ENTRY_X(PT_ONLY_T, PT_ONLY_SUF, PT_ONLY_N, PT_ONLY_D)
#else
PT_ENTRIES(float, f32)
PT_ENTRIES(double, f64)
#endif

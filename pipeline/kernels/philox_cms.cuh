// Philox4x32-10 and the Chambers-Mallows-Stuck alpha-stable sampler: the device twin of
// pipeline/numerics/rng.py (read its module docstring first; this file follows it line by line).
//
// NVRTC-compatible: no host headers, only CUDA built-in types and math functions.
//
// Bit-exactness rules:
//  * Philox is integer arithmetic: __umulhi / plain 32-bit multiply give the hi / lo words of
//    the 32x32->64-bit products that rng.py forms with uint64 arithmetic (the NumPy emulation
//    in tests/test_kernels_compile.py checks this formulation against rng.uniforms).
//  * The uniforms u = (n + 1/2) 2^-52 with n < 2^52 are exact in float64, as in rng.py.
//  * Every float64 operation of the CMS transform is written with the _rn intrinsics, so the
//    compiler cannot contract a*b + c into an FMA (which would round once instead of twice and
//    drift from NumPy by an ulp). Only tan/log/exp/sqrt differ from the host libm (<= 2 ulp).
#pragma once

#define PS_PHILOX_M0 0xD2511F53u
#define PS_PHILOX_M1 0xCD9E8D57u
#define PS_PHILOX_W0 0x9E3779B9u
#define PS_PHILOX_W1 0xBB67AE85u

// Which CMS evaluation a fill kernel runs (chosen on the host exactly as rng._cms does).
#define PS_CMS_GENERAL 0   // alpha < 2: the tan/log/exp form
#define PS_CMS_ALPHA2 1    // alpha == 2: X = t sqrt(4W / (1 + t^2)), S_2(1) = N(0, 2)
#define PS_CMS_NORMAL 2    // N(0, 1): X = t sqrt(2W / (1 + t^2))

struct ps_philox_out {
    unsigned int w0, w1, w2, w3;
};

// Philox4x32-10: counter (c0, c1, c2, c3), key (k0, k1). Same round structure as
// rng.philox4x32: x0' = hi(M1 x2) ^ x1 ^ k0, x1' = lo(M1 x2), x2' = hi(M0 x0) ^ x3 ^ k1,
// x3' = lo(M0 x0); keys bumped by the Weyl constants (mod 2^32, unsigned wrap-around).
__device__ __forceinline__ ps_philox_out ps_philox4x32_10(unsigned int c0, unsigned int c1,
                                                          unsigned int c2, unsigned int c3,
                                                          unsigned int k0, unsigned int k1) {
    unsigned int x0 = c0, x1 = c1, x2 = c2, x3 = c3;
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        const unsigned int hi0 = __umulhi(PS_PHILOX_M0, x0);
        const unsigned int lo0 = PS_PHILOX_M0 * x0;
        const unsigned int hi1 = __umulhi(PS_PHILOX_M1, x2);
        const unsigned int lo1 = PS_PHILOX_M1 * x2;
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
        k0 += PS_PHILOX_W0;
        k1 += PS_PHILOX_W1;
    }
    ps_philox_out o;
    o.w0 = x0;
    o.w1 = x1;
    o.w2 = x2;
    o.w3 = x3;
    return o;
}

// Uniform in [2^-53, 1 - 2^-53] from the top 52 bits of hi:lo, exactly as rng._u_from_words:
// n = ((hi << 32) | lo) >> 12, u = (n + 0.5) * 2^-52 (both steps exact in float64).
__device__ __forceinline__ double ps_uniform52(unsigned int hi, unsigned int lo) {
    const unsigned long long n =
        ((((unsigned long long)hi) << 32) | (unsigned long long)lo) >> 12;
    return __dmul_rn(__dadd_rn((double)n, 0.5), 2.220446049250313080847263336181640625e-16);
}

// The two uniforms of the draw keyed by (seed, stream, layer, row, col):
// counter = (col, row, layer, stream), key = (seed & 0xFFFFFFFF, seed >> 32).
__device__ __forceinline__ void ps_uniforms(unsigned int k0, unsigned int k1,
                                            unsigned int stream, unsigned int layer,
                                            unsigned int row, unsigned int col, double* u1,
                                            double* u2) {
    const ps_philox_out w = ps_philox4x32_10(col, row, layer, stream, k0, k1);
    *u1 = ps_uniform52(w.w0, w.w1);
    *u2 = ps_uniform52(w.w2, w.w3);
}

// Constants of rng._cms_constants, computed on the host in float64 and passed as arguments.
struct ps_cms_consts {
    double pi;      // pi
    double pi_1ma;  // pi (1 - alpha)
    double pi_a2;   // pi alpha / 2
    double c_t;     // 1 / (2 alpha)
    double c_s;     // (1 - alpha) / (2 alpha)
};

// Chambers-Mallows-Stuck from d = u1 - 1/2 and u2, the same operation sequence as rng._cms.
__device__ __forceinline__ double ps_cms(double d, double u2, const ps_cms_consts& k, int mode) {
    if (mode != PS_CMS_GENERAL) {
        // X = t sqrt(w_scale log(u2) / (1 + t^2)),  t = tan(pi d),  w_scale = -4 (or -2)
        const double w_scale = (mode == PS_CMS_NORMAL) ? -2.0 : -4.0;
        const double t = tan(__dmul_rn(d, k.pi));
        double v = __dmul_rn(log(u2), w_scale);
        const double s1 = __dadd_rn(__dmul_rn(t, t), 1.0);
        v = __ddiv_rn(v, s1);
        return __dmul_rn(sqrt(v), t);
    }
    double w2 = log(u2);
    w2 = __dmul_rn(w2, w2);  // W^2 = (log u2)^2
    double s1 = tan(__dmul_rn(d, k.pi));
    s1 = log(__dadd_rn(__dmul_rn(s1, s1), 1.0));  // log(1 + t^2) = -2 log cos V
    double s2 = tan(__dmul_rn(d, k.pi_1ma));
    s2 = __dmul_rn(__dadd_rn(__dmul_rn(s2, s2), 1.0), w2);
    s2 = log(s2);  // log((1 + s^2) W^2)
    s1 = __dmul_rn(s1, k.c_t);
    s2 = __dmul_rn(s2, k.c_s);
    const double e = exp(__dsub_rn(s1, s2));
    const double tau = tan(__dmul_rn(d, k.pi_a2));  // tau = tan(alpha V / 2)
    double den = __dadd_rn(__dmul_rn(tau, tau), 1.0);
    den = __dmul_rn(den, 0.5);
    return __dmul_rn(__ddiv_rn(tau, den), e);  // sin(alpha V) * e
}

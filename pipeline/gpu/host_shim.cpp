// Host definitions for running CUDA's libdevice and rng.cu on the CPU; built by
// pipeline/gpu/host_build.py (read its docstring). The arithmetic intrinsics are exact IEEE
// operations; the two hardware approximations follow a model chosen at run time.

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>

static int ps_approx_hw = 1;
static int ps_ftz = 0;

static inline double bits_d(uint64_t u) { double d; std::memcpy(&d, &u, 8); return d; }
static inline uint64_t d_bits(double d) { uint64_t u; std::memcpy(&u, &d, 8); return u; }
static inline float bits_f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t f_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float ftz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

extern "C" {
int ps_nvvm_reflect(const char* name) {
    if (!std::strcmp(name, "__CUDA_FTZ")) return ps_ftz;
    if (!std::strcmp(name, "__CUDA_PREC_SQRT")) return 1;
    if (!std::strcmp(name, "__CUDA_ARCH")) return 900;
    return 0;
}
double ps_nvvm_add_rn_d(double a, double b) { return a + b; }
double ps_nvvm_mul_rn_d(double a, double b) { return a * b; }
double ps_nvvm_fma_rn_d(double a, double b, double c) { return std::fma(a, b, c); }
float ps_nvvm_fma_rn_f(float a, float b, float c) { return std::fmaf(a, b, c); }
float ps_nvvm_fma_rn_ftz_f(float a, float b, float c) { return ftz(std::fmaf(ftz(a), ftz(b), ftz(c))); }
static float fma_rm(float a, float b, float c) {
    const int old = std::fegetround();
    std::fesetround(FE_DOWNWARD);
    volatile float r = std::fmaf(a, b, c);
    std::fesetround(old);
    return r;
}
float ps_nvvm_fma_rm_f(float a, float b, float c) { return fma_rm(a, b, c); }
float ps_nvvm_fma_rm_ftz_f(float a, float b, float c) { return ftz(fma_rm(ftz(a), ftz(b), ftz(c))); }
double ps_nvvm_fabs_d(double a) { return std::fabs(a); }
float ps_nvvm_fabs_f(float a) { return std::fabs(a); }
float ps_nvvm_fabs_ftz_f(float a) { return ftz(std::fabs(a)); }
int32_t ps_nvvm_d2i_hi(double a) { return (int32_t)(d_bits(a) >> 32); }
int32_t ps_nvvm_d2i_lo(double a) { return (int32_t)(uint32_t)d_bits(a); }
double ps_nvvm_lohi_i2d(int32_t lo, int32_t hi) {
    return bits_d(((uint64_t)(uint32_t)hi << 32) | (uint64_t)(uint32_t)lo);
}
int32_t ps_nvvm_d2i_rn(double a) { return (int32_t)std::nearbyint(a); }
float ps_nvvm_round_f(float a) { return std::nearbyintf(a); }  /* cvt.rni: ties to even */
float ps_nvvm_saturate_f(float a) { return a > 0.0f ? (a < 1.0f ? a : 1.0f) : 0.0f; }
float ps_nvvm_saturate_ftz_f(float a) { return ftz(ps_nvvm_saturate_f(ftz(a))); }
/* rcp.approx.ftz.f64: reciprocal of the top 32 bits of a, returned in the top 32 bits (the
   low word zero): what MUFU.RCP64H delivers; "exact" returns the correctly rounded 1/a. */
double ps_nvvm_rcp_approx_ftz_d(double a) {
    if (!ps_approx_hw) return 1.0 / a;
    const double top = bits_d(d_bits(a) & 0xFFFFFFFF00000000ull);
    const double r = 1.0 / top;
    return bits_d(d_bits(r) & 0xFFFFFFFF00000000ull);
}
/* ex2.approx.ftz.f32: 2^a to ~22 bits (mantissa rounded to 22 bits); "exact": exp2f. */
float ps_nvvm_ex2_approx_ftz_f(float a) {
    const float e = std::exp2(ftz(a));
    if (!ps_approx_hw || !std::isfinite(e)) return ftz(e);
    return ftz(bits_f((f_bits(e) + 0x1u) & ~0x3u));
}

/* the inline PTX of libdevice: 128-bit integer helpers (exact) and rcp.approx.ftz.f32 */
struct ps_u128 { uint64_t lo, hi; };
static ps_u128 split(unsigned __int128 v) { ps_u128 r = {(uint64_t)v, (uint64_t)(v >> 64)}; return r; }
static unsigned __int128 join(uint64_t lo, uint64_t hi) { return ((unsigned __int128)hi << 64) | lo; }
ps_u128 ps_asm_add128(uint64_t alo, uint64_t ahi, uint64_t blo, uint64_t bhi) { return split(join(alo, ahi) + join(blo, bhi)); }
ps_u128 ps_asm_sub128(uint64_t alo, uint64_t ahi, uint64_t blo, uint64_t bhi) { return split(join(alo, ahi) - join(blo, bhi)); }
ps_u128 ps_asm_mad128(uint64_t a, uint64_t b, uint64_t c) { return split((unsigned __int128)a * b + c); }
ps_u128 ps_asm_mul128(uint64_t a, uint64_t b) { return split((unsigned __int128)a * b); }
float ps_asm_rcp_approx_ftz_f(float a) {  /* 1 ulp approximation; "exact": rounded 1/a */
    const float r = ftz(1.0f / ftz(a));
    if (!ps_approx_hw || !std::isfinite(r) || r == 0.0f) return r;
    return bits_f(f_bits(r) & ~0x1u);
}

double __nv_tan(double); double __nv_log(double); double __nv_exp(double);
double __nv_tanh(double); double __nv_erf(double);
float __nv_tanhf(float); float __nv_erff(float); float __nv_expf(float);

void ps_set_mode(int approx_hw, int flush) { ps_approx_hw = approx_hw; ps_ftz = flush; }
#define PS_VEC(NAME, T, F) void NAME(const T* x, T* y, long long n) { for (long long i = 0; i < n; ++i) y[i] = F(x[i]); }
PS_VEC(ps_v_tan, double, __nv_tan)
PS_VEC(ps_v_log, double, __nv_log)
PS_VEC(ps_v_exp, double, __nv_exp)
PS_VEC(ps_v_tanh, double, __nv_tanh)
PS_VEC(ps_v_erf, double, __nv_erf)
PS_VEC(ps_v_tanhf, float, __nv_tanhf)
PS_VEC(ps_v_erff, float, __nv_erff)
PS_VEC(ps_v_expf, float, __nv_expf)
}

/* rng.cu as host C++: one thread runs every grid-stride loop; CUDA's tan/log/exp are the
   libdevice functions above, sqrt is the correctly rounded one (as sqrt.rn.f64). */
struct ps_dim3 { unsigned int x; };
static const ps_dim3 blockIdx = {0}, threadIdx = {0}, blockDim = {1}, gridDim = {1};
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__ __restrict
#define tan __nv_tan
#define log __nv_log
#define exp __nv_exp

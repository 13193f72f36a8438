#include "khsgd/model/libm_lanes.hpp"

#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "khsgd/base/vector_clones.hpp"
#include "khsgd/model/logistic.hpp"

#if KHSGD_X86_INTRINSICS
#include <immintrin.h>
#endif

namespace khsgd {

namespace {

// The scalar forms, what the lanes must equal and what runs where they do not, are logistic.hpp's
// sigmoid() and log1p_exp_minus_abs().

#if KHSGD_X86_INTRINSICS

// glibc's tables (sysdeps/ieee754/dbl-64/e_exp_data.c: 2^(i/128) as tail and bits; flt-32/
// e_exp2f_data.c: 2^(i/32)), read out of Debian 12's libm.so.6 (glibc 2.36) and checked there.
alignas(64) constexpr uint64_t kExpTable[2 * 128] = {
    0x0000000000000000, 0x3ff0000000000000, 0x3c9b3b4f1a88bf6e, 0x3feff63da9fb3335,
    0xbc7160139cd8dc5d, 0x3fefec9a3e778061, 0xbc905e7a108766d1, 0x3fefe315e86e7f85,
    0x3c8cd2523567f613, 0x3fefd9b0d3158574, 0xbc8bce8023f98efa, 0x3fefd06b29ddf6de,
    0x3c60f74e61e6c861, 0x3fefc74518759bc8, 0x3c90a3e45b33d399, 0x3fefbe3ecac6f383,
    0x3c979aa65d837b6d, 0x3fefb5586cf9890f, 0x3c8eb51a92fdeffc, 0x3fefac922b7247f7,
    0x3c3ebe3d702f9cd1, 0x3fefa3ec32d3d1a2, 0xbc6a033489906e0b, 0x3fef9b66affed31b,
    0xbc9556522a2fbd0e, 0x3fef9301d0125b51, 0xbc5080ef8c4eea55, 0x3fef8abdc06c31cc,
    0xbc91c923b9d5f416, 0x3fef829aaea92de0, 0x3c80d3e3e95c55af, 0x3fef7a98c8a58e51,
    0xbc801b15eaa59348, 0x3fef72b83c7d517b, 0xbc8f1ff055de323d, 0x3fef6af9388c8dea,
    0x3c8b898c3f1353bf, 0x3fef635beb6fcb75, 0xbc96d99c7611eb26, 0x3fef5be084045cd4,
    0x3c9aecf73e3a2f60, 0x3fef54873168b9aa, 0xbc8fe782cb86389d, 0x3fef4d5022fcd91d,
    0x3c8a6f4144a6c38d, 0x3fef463b88628cd6, 0x3c807a05b0e4047d, 0x3fef3f49917ddc96,
    0x3c968efde3a8a894, 0x3fef387a6e756238, 0x3c875e18f274487d, 0x3fef31ce4fb2a63f,
    0x3c80472b981fe7f2, 0x3fef2b4565e27cdd, 0xbc96b87b3f71085e, 0x3fef24dfe1f56381,
    0x3c82f7e16d09ab31, 0x3fef1e9df51fdee1, 0xbc3d219b1a6fbffa, 0x3fef187fd0dad990,
    0x3c8b3782720c0ab4, 0x3fef1285a6e4030b, 0x3c6e149289cecb8f, 0x3fef0cafa93e2f56,
    0x3c834d754db0abb6, 0x3fef06fe0a31b715, 0x3c864201e2ac744c, 0x3fef0170fc4cd831,
    0x3c8fdd395dd3f84a, 0x3feefc08b26416ff, 0xbc86a3803b8e5b04, 0x3feef6c55f929ff1,
    0xbc924aedcc4b5068, 0x3feef1a7373aa9cb, 0xbc9907f81b512d8e, 0x3feeecae6d05d866,
    0xbc71d1e83e9436d2, 0x3feee7db34e59ff7, 0xbc991919b3ce1b15, 0x3feee32dc313a8e5,
    0x3c859f48a72a4c6d, 0x3feedea64c123422, 0xbc9312607a28698a, 0x3feeda4504ac801c,
    0xbc58a78f4817895b, 0x3feed60a21f72e2a, 0xbc7c2c9b67499a1b, 0x3feed1f5d950a897,
    0x3c4363ed60c2ac11, 0x3feece086061892d, 0x3c9666093b0664ef, 0x3feeca41ed1d0057,
    0x3c6ecce1daa10379, 0x3feec6a2b5c13cd0, 0x3c93ff8e3f0f1230, 0x3feec32af0d7d3de,
    0x3c7690cebb7aafb0, 0x3feebfdad5362a27, 0x3c931dbdeb54e077, 0x3feebcb299fddd0d,
    0xbc8f94340071a38e, 0x3feeb9b2769d2ca7, 0xbc87deccdc93a349, 0x3feeb6daa2cf6642,
    0xbc78dec6bd0f385f, 0x3feeb42b569d4f82, 0xbc861246ec7b5cf6, 0x3feeb1a4ca5d920f,
    0x3c93350518fdd78e, 0x3feeaf4736b527da, 0x3c7b98b72f8a9b05, 0x3feead12d497c7fd,
    0x3c9063e1e21c5409, 0x3feeab07dd485429, 0x3c34c7855019c6ea, 0x3feea9268a5946b7,
    0x3c9432e62b64c035, 0x3feea76f15ad2148, 0xbc8ce44a6199769f, 0x3feea5e1b976dc09,
    0xbc8c33c53bef4da8, 0x3feea47eb03a5585, 0xbc845378892be9ae, 0x3feea34634ccc320,
    0xbc93cedd78565858, 0x3feea23882552225, 0x3c5710aa807e1964, 0x3feea155d44ca973,
    0xbc93b3efbf5e2228, 0x3feea09e667f3bcd, 0xbc6a12ad8734b982, 0x3feea012750bdabf,
    0xbc6367efb86da9ee, 0x3fee9fb23c651a2f, 0xbc80dc3d54e08851, 0x3fee9f7df9519484,
    0xbc781f647e5a3ecf, 0x3fee9f75e8ec5f74, 0xbc86ee4ac08b7db0, 0x3fee9f9a48a58174,
    0xbc8619321e55e68a, 0x3fee9feb564267c9, 0x3c909ccb5e09d4d3, 0x3feea0694fde5d3f,
    0xbc7b32dcb94da51d, 0x3feea11473eb0187, 0x3c94ecfd5467c06b, 0x3feea1ed0130c132,
    0x3c65ebe1abd66c55, 0x3feea2f336cf4e62, 0xbc88a1c52fb3cf42, 0x3feea427543e1a12,
    0xbc9369b6f13b3734, 0x3feea589994cce13, 0xbc805e843a19ff1e, 0x3feea71a4623c7ad,
    0xbc94d450d872576e, 0x3feea8d99b4492ed, 0x3c90ad675b0e8a00, 0x3feeaac7d98a6699,
    0x3c8db72fc1f0eab4, 0x3feeace5422aa0db, 0xbc65b6609cc5e7ff, 0x3feeaf3216b5448c,
    0x3c7bf68359f35f44, 0x3feeb1ae99157736, 0xbc93091fa71e3d83, 0x3feeb45b0b91ffc6,
    0xbc5da9b88b6c1e29, 0x3feeb737b0cdc5e5, 0xbc6c23f97c90b959, 0x3feeba44cbc8520f,
    0xbc92434322f4f9aa, 0x3feebd829fde4e50, 0xbc85ca6cd7668e4b, 0x3feec0f170ca07ba,
    0x3c71affc2b91ce27, 0x3feec49182a3f090, 0x3c6dd235e10a73bb, 0x3feec86319e32323,
    0xbc87c50422622263, 0x3feecc667b5de565, 0x3c8b1c86e3e231d5, 0x3feed09bec4a2d33,
    0xbc91bbd1d3bcbb15, 0x3feed503b23e255d, 0x3c90cc319cee31d2, 0x3feed99e1330b358,
    0x3c8469846e735ab3, 0x3feede6b5579fdbf, 0xbc82dfcd978e9db4, 0x3feee36bbfd3f37a,
    0x3c8c1a7792cb3387, 0x3feee89f995ad3ad, 0xbc907b8f4ad1d9fa, 0x3feeee07298db666,
    0xbc55c3d956dcaeba, 0x3feef3a2b84f15fb, 0xbc90a40e3da6f640, 0x3feef9728de5593a,
    0xbc68d6f438ad9334, 0x3feeff76f2fb5e47, 0xbc91eee26b588a35, 0x3fef05b030a1064a,
    0x3c74ffd70a5fddcd, 0x3fef0c1e904bc1d2, 0xbc91bdfbfa9298ac, 0x3fef12c25bd71e09,
    0x3c736eae30af0cb3, 0x3fef199bdd85529c, 0x3c8ee3325c9ffd94, 0x3fef20ab5fffd07a,
    0x3c84e08fd10959ac, 0x3fef27f12e57d14b, 0x3c63cdaf384e1a67, 0x3fef2f6d9406e7b5,
    0x3c676b2c6c921968, 0x3fef3720dcef9069, 0xbc808a1883ccb5d2, 0x3fef3f0b555dc3fa,
    0xbc8fad5d3ffffa6f, 0x3fef472d4a07897c, 0xbc900dae3875a949, 0x3fef4f87080d89f2,
    0x3c74a385a63d07a7, 0x3fef5818dcfba487, 0xbc82919e2040220f, 0x3fef60e316c98398,
    0x3c8e5a50d5c192ac, 0x3fef69e603db3285, 0x3c843a59ac016b4b, 0x3fef7321f301b460,
    0xbc82d52107b43e1f, 0x3fef7c97337b9b5f, 0xbc892ab93b470dc9, 0x3fef864614f5a129,
    0x3c74b604603a88d3, 0x3fef902ee78b3ff6, 0x3c83c5ec519d7271, 0x3fef9a51fbc74c83,
    0xbc8ff7128fd391f0, 0x3fefa4afa2a490da, 0xbc8dae98e223747d, 0x3fefaf482d8e67f1,
    0x3c8ec3bc41aa2008, 0x3fefba1bee615a27, 0x3c842b94c3a9eb32, 0x3fefc52b376bba97,
    0x3c8a64a931d185ee, 0x3fefd0765b6e4540, 0xbc8e37bae43be3ed, 0x3fefdbfdad9cbe14,
    0x3c77893b4d91cd9d, 0x3fefe7c1819e90d8, 0x3c5305c14160cc89, 0x3feff3c22b8f71f1,
};
alignas(64) constexpr uint64_t kExpfTable[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

// Bit for bit only as compiled: every add, multiply and fused multiply-add below is one
// instruction because the project builds with -ffp-contract=off (khsgd_numerics); with contraction
// on, GCC would fuse some of the plain vector adds and multiplies too.
//
// The algorithms (libm_lanes_body.inc) are written once over a few operations on a vector of
// doubles (Real), of 64-bit words (Bits), of the floats they came from (Floats) and a lane mask
// (Mask), and compiled twice: four lanes with AVX2 and FMA, and eight with AVX-512 where the CPU
// has it (the evaluation's chain of ~110 dependent operations a group is bound by how many groups
// the core keeps in flight, so eight lanes a group do twice the work in the same time).
namespace four {
#define KHSGD_LANES_TARGET __attribute__((target("avx2,fma")))
#define KHSGD_LANES KHSGD_LANES_TARGET __attribute__((always_inline)) inline
using Real = __m256d;
using Bits = __m256i;
using Mask = __m256i;
using Floats = __m128;
constexpr int kWidth = 4;
KHSGD_LANES Bits words(long long value) { return _mm256_set1_epi64x(value); }
KHSGD_LANES Real constant(uint64_t bits) {
  return _mm256_castsi256_pd(words(static_cast<long long>(bits)));
}
KHSGD_LANES Real add(Real a, Real b) { return _mm256_add_pd(a, b); }
KHSGD_LANES Real sub(Real a, Real b) { return _mm256_sub_pd(a, b); }
KHSGD_LANES Real mul(Real a, Real b) { return _mm256_mul_pd(a, b); }
KHSGD_LANES Real div(Real a, Real b) { return _mm256_div_pd(a, b); }
KHSGD_LANES Real fmadd(Real a, Real b, Real c) { return _mm256_fmadd_pd(a, b, c); }
KHSGD_LANES Real fmsub(Real a, Real b, Real c) { return _mm256_fmsub_pd(a, b, c); }
KHSGD_LANES Bits as_bits(Real a) { return _mm256_castpd_si256(a); }
KHSGD_LANES Real as_real(Bits a) { return _mm256_castsi256_pd(a); }
KHSGD_LANES Bits bit_and(Bits a, Bits b) { return _mm256_and_si256(a, b); }
KHSGD_LANES Bits bit_or(Bits a, Bits b) { return _mm256_or_si256(a, b); }
KHSGD_LANES Bits add_words(Bits a, Bits b) { return _mm256_add_epi64(a, b); }
KHSGD_LANES Bits sub_words(Bits a, Bits b) { return _mm256_sub_epi64(a, b); }
template <int n>
KHSGD_LANES Bits shift_right(Bits a) {
  return _mm256_srli_epi64(a, n);
}
template <int n>
KHSGD_LANES Bits shift_left(Bits a) {
  return _mm256_slli_epi64(a, n);
}
KHSGD_LANES Mask greater(Bits a, Bits b) { return _mm256_cmpgt_epi64(a, b); }
KHSGD_LANES Mask equal(Bits a, Bits b) { return _mm256_cmpeq_epi64(a, b); }
KHSGD_LANES Mask both(Mask a, Mask b) { return _mm256_and_si256(a, b); }
KHSGD_LANES Mask first_not_second(Mask a, Mask b) { return _mm256_andnot_si256(b, a); }
KHSGD_LANES Mask abs_below(Real a, double limit) {  // |a| < limit, false for NaN
  return _mm256_castpd_si256(
      _mm256_cmp_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), a), _mm256_set1_pd(limit), _CMP_LT_OQ));
}
KHSGD_LANES int lanes_of(Mask m) { return _mm256_movemask_pd(_mm256_castsi256_pd(m)); }
KHSGD_LANES Real select(Mask m, Real if_set, Real otherwise) {
  return _mm256_blendv_pd(otherwise, if_set, _mm256_castsi256_pd(m));
}
KHSGD_LANES Bits select(Mask m, Bits if_set, Bits otherwise) {
  return _mm256_blendv_epi8(otherwise, if_set, m);
}
KHSGD_LANES Bits gather(const uint64_t* table, Bits index) {
  return _mm256_i64gather_epi64(reinterpret_cast<const long long*>(table), index, 8);
}
KHSGD_LANES Real small_words_as_reals(Bits k) {  // |k| < 2^31
  return _mm256_cvtepi32_pd(_mm256_castsi256_si128(
      _mm256_permutevar8x32_epi32(k, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0))));
}
KHSGD_LANES Real widen(Floats f) { return _mm256_cvtps_pd(f); }
KHSGD_LANES Floats narrow(Real r) { return _mm256_cvtpd_ps(r); }
KHSGD_LANES Floats load_floats(const float* p) { return _mm_loadu_ps(p); }
KHSGD_LANES void store_floats(float* p, Floats f) { _mm_storeu_ps(p, f); }
KHSGD_LANES void store_reals(double* p, Real r) { _mm256_storeu_pd(p, r); }
KHSGD_LANES Floats negated(Floats f) { return _mm_xor_ps(f, _mm_set1_ps(-0.0f)); }
KHSGD_LANES Floats one_over_one_plus(Floats e) {  // 1.0f / (1.0f + e), each in float
  const __m128 one = _mm_set1_ps(1.0f);
  return _mm_div_ps(one, _mm_add_ps(one, e));
}
#include "libm_lanes_body.inc"
#undef KHSGD_LANES
#undef KHSGD_LANES_TARGET
}  // namespace four

// GCC 12 takes the undefined first operand of its AVX-512 intrinsics (_mm512_undefined_*) for an
// uninitialized variable.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace eight {
#define KHSGD_LANES_TARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define KHSGD_LANES KHSGD_LANES_TARGET __attribute__((always_inline)) inline
using Real = __m512d;
using Bits = __m512i;
using Mask = __mmask8;
using Floats = __m256;
constexpr int kWidth = 8;
KHSGD_LANES Bits words(long long value) { return _mm512_set1_epi64(value); }
KHSGD_LANES Real constant(uint64_t bits) {
  return _mm512_castsi512_pd(words(static_cast<long long>(bits)));
}
KHSGD_LANES Real add(Real a, Real b) { return _mm512_add_pd(a, b); }
KHSGD_LANES Real sub(Real a, Real b) { return _mm512_sub_pd(a, b); }
KHSGD_LANES Real mul(Real a, Real b) { return _mm512_mul_pd(a, b); }
KHSGD_LANES Real div(Real a, Real b) { return _mm512_div_pd(a, b); }
KHSGD_LANES Real fmadd(Real a, Real b, Real c) { return _mm512_fmadd_pd(a, b, c); }
KHSGD_LANES Real fmsub(Real a, Real b, Real c) { return _mm512_fmsub_pd(a, b, c); }
KHSGD_LANES Bits as_bits(Real a) { return _mm512_castpd_si512(a); }
KHSGD_LANES Real as_real(Bits a) { return _mm512_castsi512_pd(a); }
KHSGD_LANES Bits bit_and(Bits a, Bits b) { return _mm512_and_si512(a, b); }
KHSGD_LANES Bits bit_or(Bits a, Bits b) { return _mm512_or_si512(a, b); }
KHSGD_LANES Bits add_words(Bits a, Bits b) { return _mm512_add_epi64(a, b); }
KHSGD_LANES Bits sub_words(Bits a, Bits b) { return _mm512_sub_epi64(a, b); }
template <int n>
KHSGD_LANES Bits shift_right(Bits a) {
  return _mm512_srli_epi64(a, n);
}
template <int n>
KHSGD_LANES Bits shift_left(Bits a) {
  return _mm512_slli_epi64(a, n);
}
KHSGD_LANES Mask greater(Bits a, Bits b) { return _mm512_cmpgt_epi64_mask(a, b); }
KHSGD_LANES Mask equal(Bits a, Bits b) { return _mm512_cmpeq_epi64_mask(a, b); }
KHSGD_LANES Mask both(Mask a, Mask b) { return static_cast<Mask>(a & b); }
KHSGD_LANES Mask first_not_second(Mask a, Mask b) { return static_cast<Mask>(a & ~b); }
KHSGD_LANES Mask abs_below(Real a, double limit) {
  return _mm512_cmp_pd_mask(as_real(bit_and(as_bits(a), words(0x7fffffffffffffffLL))),
                            _mm512_set1_pd(limit), _CMP_LT_OQ);
}
KHSGD_LANES int lanes_of(Mask m) { return m; }
KHSGD_LANES Real select(Mask m, Real if_set, Real otherwise) {
  return _mm512_mask_blend_pd(m, otherwise, if_set);
}
KHSGD_LANES Bits select(Mask m, Bits if_set, Bits otherwise) {
  return _mm512_mask_blend_epi64(m, otherwise, if_set);
}
KHSGD_LANES Bits gather(const uint64_t* table, Bits index) {
  return _mm512_i64gather_epi64(index, reinterpret_cast<const long long*>(table), 8);
}
KHSGD_LANES Real small_words_as_reals(Bits k) { return _mm512_cvtepi64_pd(k); }
KHSGD_LANES Real widen(Floats f) { return _mm512_cvtps_pd(f); }
KHSGD_LANES Floats narrow(Real r) { return _mm512_cvtpd_ps(r); }
KHSGD_LANES Floats load_floats(const float* p) { return _mm256_loadu_ps(p); }
KHSGD_LANES void store_floats(float* p, Floats f) { _mm256_storeu_ps(p, f); }
KHSGD_LANES void store_reals(double* p, Real r) { _mm512_storeu_pd(p, r); }
KHSGD_LANES Floats negated(Floats f) { return _mm256_xor_ps(f, _mm256_set1_ps(-0.0f)); }
KHSGD_LANES Floats one_over_one_plus(Floats e) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, e));
}
#include "libm_lanes_body.inc"
#undef KHSGD_LANES
#undef KHSGD_LANES_TARGET
}  // namespace eight
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Arguments on which glibc 2.36's SSE2 variants round differently from its FMA variants (found by
// running both algorithms over floats; tests/test_libm_lanes.cpp checks that libm then is not
// used), then a spread over each common path and the branches the lanes take.
constexpr float kSigmoidProbes[] = {0x1.f8cbb2p+5f, 0.0f,   1.0f,   -1.0f, 0.5f,
                                    -3.25f,         7.125f, -15.5f, 20.0f, 60.0f,
                                    -60.0f,         87.9f,  -87.9f, 1e-8f, -1e-30f};
constexpr float kSoftplusProbes[] = {
    // exp (of -|z|): FMA and SSE2 differ.
    -0x1.a3d3cep+2f, -0x1.16975ap+4f, -0x1.0a6314p+4f, -0x1.4d455ap+3f, -0x1.f0843ep+3f,
    -0x1.a744ep+1f, -0x1.2e5b9cp+4f, -0x1.4a7c7ap+4f,
    // log1p (of exp(-|z|)): FMA and SSE2 differ.
    0x1.3c266ap+0f, 0x1.12ee0ap+0f, 0x1.309f18p+0f, 0x1.5145fep-1f, 0x1.944b2p-1f, 0x1.61335ep-1f,
    0x1.52057cp-1f, 0x1.ac7d38p-1f,
    // Both of log1p's paths, k = 0 and 1, near their edges, and far out.
    1e-6f, 0.001f, 0.3f, 0.8813736f, 0.8813737f, 2.0f, 10.0f, 19.9f, 20.5f, 36.0f, 300.0f};

template <typename Word, typename Real>
Word bits_of(Real value) {
  static_assert(sizeof(Word) == sizeof(Real), "one word a value");
  Word word;
  std::memcpy(&word, &value, sizeof word);
  return word;
}

// Whether the lanes of one width give libm's bits on every probe.
template <typename Sigmoids, typename Softplus>
bool lanes_answer_as_libm(Sigmoids sigmoids_in_lanes, Softplus softplus_in_lanes) {
  for (const float z : kSigmoidProbes) {
    for (const float signed_z : {z, -z}) {
      float lane = 0.0f;
      sigmoids_in_lanes(&signed_z, 1, &lane);
      const float scalar = sigmoid(signed_z);
      if (bits_of<uint32_t>(lane) != bits_of<uint32_t>(scalar)) return false;
    }
  }
  for (const float z : kSoftplusProbes) {
    double lane = 0.0;
    softplus_in_lanes(&z, 1, &lane);
    const double scalar = log1p_exp_minus_abs(z);
    if (bits_of<uint64_t>(lane) != bits_of<uint64_t>(scalar)) return false;
  }
  return true;
}

int widest_lanes_that_answer_as_libm() {
  const CpuVectorSets& cpu = cpu_vector_sets();
  if (!cpu.avx2 || !cpu.fma ||
      !lanes_answer_as_libm(four::sigmoids_in_lanes, four::softplus_in_lanes))
    return 0;
  if (!cpu.avx512f || !cpu.avx512dq ||
      !lanes_answer_as_libm(eight::sigmoids_in_lanes, eight::softplus_in_lanes))
    return 4;
  return 8;
}

const int kLaneWidth = widest_lanes_that_answer_as_libm();

#else

constexpr int kLaneWidth = 0;

#endif

void require_width(int width) {
  if (width != 0 && width != 4 && width != 8)
    throw std::invalid_argument("libm lanes come 0, 4 or 8 wide, not " + std::to_string(width));
  if (width > kLaneWidth)
    throw std::invalid_argument(std::to_string(width) + " libm lanes do not run here (at most " +
                                std::to_string(kLaneWidth) + ")");
}

}  // namespace

int libm_lane_width() { return kLaneWidth; }

void sigmoids(const float* z, int64_t n, float* out, int width) {
  require_width(width);
#if KHSGD_X86_INTRINSICS
  if (width == 8) return eight::sigmoids_in_lanes(z, n, out);
  if (width == 4) return four::sigmoids_in_lanes(z, n, out);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = sigmoid(z[i]);
}

void softplus_of_minus_abs(const float* z, int64_t n, double* out, int width) {
  require_width(width);
#if KHSGD_X86_INTRINSICS
  if (width == 8) return eight::softplus_in_lanes(z, n, out);
  if (width == 4) return four::softplus_in_lanes(z, n, out);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = log1p_exp_minus_abs(z[i]);
}

void sigmoids(const float* z, int64_t n, float* out) { sigmoids(z, n, out, kLaneWidth); }

void softplus_of_minus_abs(const float* z, int64_t n, double* out) {
  softplus_of_minus_abs(z, n, out, kLaneWidth);
}

}  // namespace khsgd

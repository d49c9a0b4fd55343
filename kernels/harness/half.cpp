// half.cpp — exact IEEE 754 binary16 ↔ binary32 conversions for the harness, bit for bit what
// the GPU's cvt.f32.f16 / cvt.rn.f16.f32 give for every non-NaN value: round to nearest, ties
// to even; subnormals kept (no flush to zero); overflow to ±inf from 65520 up (the midpoint
// between 65504 and 2^16 rounds to the even 2^16). NaNs stay NaN with the quiet bit set and the
// top payload bits kept (the GPU returns a canonical NaN; only NaN-ness is meaningful).
// Integer-only, so the result never depends on the host's floating-point modes.
#include <stdint.h>
#include <string.h>

#include "f2i_sim.h"

extern "C" float f2i_sim_half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant ? (0x400000u | (mant << 13)) : 0u);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: mant · 2^-24. Normalise: shift until the implicit bit (0x400) is set.
    uint32_t e = 113;  // exponent field of 2^-14
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

extern "C" uint16_t f2i_sim_float_to_half(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    if (abs == 0x7f800000u) return uint16_t(sign | 0x7c00u);
    return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // ≥ 65520: rounds to inf
  const uint32_t e = abs >> 23;
  if (e < 113) {
    // Below 2^-14: a subnormal half (or zero), q = round(|f| · 2^24).
    if (abs <= 0x33000000u) return sign;  // ≤ 2^-25 (the tie at 2^-25 goes to even 0)
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return uint16_t(sign | q);  // q == 0x400 is the smallest normal: the encoding carries over
  }
  uint32_t h = ((e - 112u) << 10) | ((abs >> 13) & 0x3ffu);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carries into the exponent
  return uint16_t(sign | h);
}

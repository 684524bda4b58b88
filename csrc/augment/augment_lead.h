// The seven augmentations applied to one lead of one view of one sample.
//
// Plain C++ (no torch headers) so that the CPU kernel and the CUDA kernel run
// the very same code. Every step works on one lead: the pipeline's unit of
// parallel work is (view, sample, lead). Parameters come from the float64 row
// drawn in ecgfast/augment/params.py, in the column order of ECGFAST_AUGMENT_COLUMNS below
// (checked against params.py's at import).
//
// Rows (the lead's samples, the band-pass scratch) are template parameters:
// anything indexable like a pointer. The CPU kernel passes pointers; the CUDA
// kernel passes strided rows of a warp's interleaved tile (coalesced). Only the
// addressing differs: the arithmetic is the same code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ECG_HD __host__ __device__ __forceinline__
#else
#define ECG_HD inline __attribute__((always_inline))
#endif

namespace ecgfast {
namespace augment {

// Columns of the parameter row, in order: X(enum constant, column name). One list gives the
// enum the kernels index with and the names ecgfast::augment_param_layout returns, which
// ecgfast/augment/params.py checks against its COLUMNS at import: the layouts cannot drift.
#define ECGFAST_AUGMENT_COLUMNS(X) \
  X(kWarpOn, "warp_on") X(kWarpR, "warp_r") \
  X(kBpOn, "bp_on") X(kHpB0, "hp_b0") X(kHpB1, "hp_b1") X(kHpB2, "hp_b2") X(kHpA1, "hp_a1") X(kHpA2, "hp_a2") \
  X(kLpB0, "lp_b0") X(kLpB1, "lp_b1") X(kLpB2, "lp_b2") X(kLpA1, "lp_a1") X(kLpA2, "lp_a2") \
  X(kMixOn, "mix_on") X(kMixLambda, "mix_lambda") X(kMixPartner, "mix_partner") \
  X(kCutOn, "cut_on") X(kCutStart, "cut_start") X(kCutLen, "cut_len") X(kCutPartner, "cut_partner") \
  X(kMotionOn, "motion_on") X(kMotionAmp, "motion_amp") X(kMotionFreq, "motion_freq") \
  X(kMotionPhase, "motion_phase") \
  X(kNoiseOn, "noise_on") X(kNoiseFrac, "noise_frac") \
  X(kDropOn, "drop_on") X(kDropStart, "drop_start") X(kDropLen, "drop_len") \
  X(kNoiseKeyLo, "noise_key_lo") X(kNoiseKeyHi, "noise_key_hi") \
  X(kCropStart, "crop_start") X(kRrcOn, "rrc_on") X(kRrcStart, "rrc_start") X(kRrcFrac, "rrc_frac")

enum Col : int {
#define ECGFAST_AUGMENT_COLUMN_ENUM(id, name) id,
  ECGFAST_AUGMENT_COLUMNS(ECGFAST_AUGMENT_COLUMN_ENUM)
#undef ECGFAST_AUGMENT_COLUMN_ENUM
  kNumParams
};

// scipy.signal.sosfiltfilt's default padlen for two biquads, 3 * (2 * 2 + 1). Exposed as
// ecgfast::augment_bandpass_pad, which params.py checks against its BANDPASS_PADLEN at import.
constexpr int kBandpassPad = 15;

ECG_HD uint32_t lowbias32(uint32_t v) {
  v ^= v >> 16;
  v *= 0x7feb352dU;
  v ^= v >> 15;
  v *= 0x846ca68bU;
  v ^= v >> 16;
  return v;
}

// Unit-variance noise of element e: Irwin-Hall sum of eight 16-bit uniforms.
ECG_HD float hash_normal(uint32_t e, uint32_t lo, uint32_t hi) {
  uint32_t total = 0;
  for (uint32_t j = 0; j < 4; ++j) {
    const uint32_t w = lowbias32(lowbias32((e * 4u + j) ^ lo) + hi);
    total += (w & 0xffffu) + (w >> 16);
  }
  // total < 2^19: a signed conversion is exact and vectorises (unsigned needs AVX-512).
  return ((static_cast<float>(static_cast<int32_t>(total)) + 4.0f) * (1.0f / 65536.0f) - 4.0f) *
         1.2247448713915890f;
}

// Where output sample t reads from: y(t) = x(c + (t - c) r), c = (T - 1) / 2,
// clamped to the record; the left neighbour and the interpolation weight.
ECG_HD void warp_position(int t, int T, double r, int* i0, float* w) {
  const double c = (T - 1) / 2.0;
  double pos = c + (t - c) * r;
  pos = pos < 0 ? 0 : (pos > T - 1 ? T - 1 : pos);
  *i0 = static_cast<int>(pos);  // pos >= 0: truncation is floor, without a libm call
  *w = static_cast<float>(pos - *i0);
}

// Linear interpolation at precomputed positions (shared by all leads of a sample; CPU kernel).
ECG_HD void warp_apply(const float* x, float* y, int T, const int* i0, const float* w) {
  for (int t = 0; t < T; ++t) {
    const int i1 = i0[t] + 1 < T ? i0[t] + 1 : T - 1;
    y[t] = x[i0[t]] * (1 - w[t]) + x[i1] * w[t];
  }
}

template <class X, class Y>
ECG_HD void frequency_warp(X x, Y y, int T, double r) {
  for (int t = 0; t < T; ++t) {
    int i0;
    float w;
    warp_position(t, T, r, &i0, &w);
    const int i1 = i0 + 1 < T ? i0 + 1 : T - 1;
    y[t] = x[i0] * (1 - w) + x[i1] * w;
  }
}

// scipy.signal.sosfilt_zi of the high-pass + low-pass cascade: the steady
// state of each section for a unit step, scaled by the DC gain before it.
ECG_HD void sos_zi(const double* p, double zi[2][2]) {
  double scale = 1.0;
  for (int s = 0; s < 2; ++s) {
    const double* c = p + (s == 0 ? kHpB0 : kLpB0);
    const double B0 = c[1] - c[3] * c[0], B1 = c[2] - c[4] * c[0];
    const double z0 = (B0 + B1) / (1 + c[3] + c[4]);
    zi[s][0] = scale * z0;
    zi[s][1] = scale * (B1 - c[4] * z0);
    scale *= (c[0] + c[1] + c[2]) / (1 + c[3] + c[4]);
  }
}

template <class V>
ECG_HD void reverse(V v, int n) {
  for (int i = 0, j = n - 1; i < j; ++i, --j) {
    const double tmp = v[i];
    v[i] = v[j];
    v[j] = tmp;
  }
}

// The band-pass's two biquads (high-pass, then low-pass), coefficients held by
// value so a loop over time keeps them in registers. step() advances one time
// step in transposed direct form II; V is double, or a SIMD vector of leads.
struct Cascade {
  double hb0, hb1, hb2, ha1, ha2, lb0, lb1, lb2, la1, la2;

  ECG_HD static Cascade from(const double* p) {
    return {p[kHpB0], p[kHpB1], p[kHpB2], p[kHpA1], p[kHpA2], p[kLpB0], p[kLpB1], p[kLpB2], p[kLpA1], p[kLpA2]};
  }

  template <class V>
  ECG_HD V step(V xt, V& z0, V& z1, V& w0, V& w1) const {
    const V u = hb0 * xt + z0;
    z0 = hb1 * xt - ha1 * u + z1;
    z1 = hb2 * xt - ha2 * u;
    const V v = lb0 * u + w0;
    w0 = lb1 * u - la1 * v + w1;
    w1 = lb2 * u - la2 * v;
    return v;
  }
};

// Zero-phase high-pass + low-pass cascade, as scipy.signal.sosfiltfilt:
// odd extension by kBandpassPad samples, sosfilt_zi initial conditions.
// ext: scratch of T + 2 * kBandpassPad doubles.
template <class Y, class Ext>
ECG_HD void bandpass(Y y, int T, const double* p, Ext ext) {
  const int pad = kBandpassPad, n = T + 2 * pad;
  for (int k = 1; k <= pad; ++k) {
    ext[pad - k] = 2.0 * y[0] - y[k];
    ext[pad + T - 1 + k] = 2.0 * y[T - 1] - y[T - 1 - k];
  }
  for (int t = 0; t < T; ++t) ext[pad + t] = y[t];
  double zi[2][2];
  sos_zi(p, zi);
  const Cascade k = Cascade::from(p);
  for (int pass = 0; pass < 2; ++pass) {
    // sosfilt applies the initial conditions scaled by the first input of the
    // whole cascade, so section 2 starts from zi * x0 as well.
    const double x0 = ext[0];
    double z0 = zi[0][0] * x0, z1 = zi[0][1] * x0;
    double w0 = zi[1][0] * x0, w1 = zi[1][1] * x0;
    for (int t = 0; t < n; ++t) ext[t] = k.step(ext[t], z0, z1, w0, w1);
    reverse(ext, n);
  }
  for (int t = 0; t < T; ++t) y[t] = static_cast<float>(ext[pad + t]);
}

// Population std of a lead. Four interleaved accumulators break the serial
// dependency of one running sum (the Numba kernel sums in the same order).
template <class Y>
ECG_HD double lead_std(Y y, int T) {
  double s[4] = {0, 0, 0, 0};
  int t = 0;
  for (; t + 4 <= T; t += 4)
    for (int k = 0; k < 4; ++k) s[k] += y[t + k];
  for (; t < T; ++t) s[0] += y[t];
  const double mean = ((s[0] + s[1]) + (s[2] + s[3])) / T;
  double q[4] = {0, 0, 0, 0};
  for (t = 0; t + 4 <= T; t += 4)
    for (int k = 0; k < 4; ++k) {
      const double d = y[t + k] - mean;
      q[k] += d * d;
    }
  for (; t < T; ++t) q[0] += (y[t] - mean) * (y[t] - mean);
  return std::sqrt(((q[0] + q[1]) + (q[2] + q[3])) / T);
}

// Step 0, the view's crop (when the op is given a view length): output sample t of
// the view, read from the record row x of T samples. A plain crop copies sample
// crop_start + t; a random-resized-crop (rrc_on) reads position
// rrc_start + t * rrc_frac of the record by linear interpolation (the kept part
// of the crop, rrc_frac of its span, stretched back to the view's length), with
// the warp's arithmetic. Every later step then works on the view.
ECG_HD float crop_sample(const float* x, int T, int t, const double* p) {
  if (p[kRrcOn] != 0) {
    double pos = p[kRrcStart] + t * p[kRrcFrac];
    pos = pos < 0 ? 0 : (pos > T - 1 ? T - 1 : pos);
    const int i0 = static_cast<int>(pos);  // pos >= 0: truncation is floor
    const float w = static_cast<float>(pos - i0);
    const int i1 = i0 + 1 < T ? i0 + 1 : T - 1;
    return x[i0] * (1 - w) + x[i1] * w;
  }
  return x[static_cast<int>(p[kCropStart]) + t];
}

// Step 0 of one lead: the record row x (T samples) -> the view row y (L samples).
template <class Y>
ECG_HD void crop_lead(const float* x, Y y, int T, int L, const double* p) {
  for (int t = 0; t < L; ++t) y[t] = crop_sample(x, T, t, p);
}

// Whether a view's crop columns stay inside a record of T samples for a view of L.
ECG_HD bool crop_in_range(const double* p, int64_t T, int64_t L) {
  const double s = p[kCropStart];
  return s >= 0 && s + static_cast<double>(L) <= static_cast<double>(T);  // NaN fails both
}

// Step 1 of one lead: frequency warp (or a copy) from the input row x into y.
template <class X, class Y>
ECG_HD void augment_lead_warp(X x, Y y, int T, const double* p) {
  if (p[kWarpOn] != 0) {
    frequency_warp(x, y, T, p[kWarpR]);
  } else {
    for (int t = 0; t < T; ++t) y[t] = x[t];
  }
}

// a sin(w t + ph) by rotating (cos, sin) one step per sample: no libm call per
// element; in double the drift over a record is ~1e-13. Adds to (or writes) out.
template <class Y>
ECG_HD void motion_wave(Y out, int T, double fs, const double* p, bool accumulate) {
  const double w = 2 * M_PI * p[kMotionFreq] / fs, a = p[kMotionAmp], ph = p[kMotionPhase];
  const double cw = std::cos(w), sw = std::sin(w);
  double cs = a * std::cos(ph), sn = a * std::sin(ph);
  for (int t = 0; t < T; ++t) {
    out[t] = (accumulate ? out[t] : 0.0f) + static_cast<float>(sn);
    const double next_sn = sn * cw + cs * sw;
    cs = cs * cw - sn * sw;
    sn = next_sn;
  }
}

// Steps 3-7 of one lead, in place on y. mix/cut: the partners' input rows;
// wave: the motion artefact precomputed for the sample, or nullptr.
// add_noise(y, T, e0, lo, hi, sigma) adds sigma * hash_normal(e0 + t, lo, hi).
template <class Y, class AddNoise>
ECG_HD void augment_lead_rest(const float* mix, const float* cut, Y y, int T, int lead, double fs,
                              const double* p, const float* wave, AddNoise add_noise) {
  if (p[kMixOn] != 0) {
    const float lam = static_cast<float>(p[kMixLambda]);
    for (int t = 0; t < T; ++t) y[t] = lam * y[t] + (1 - lam) * mix[t];
  }
  if (p[kCutOn] != 0) {
    const int s = static_cast<int>(p[kCutStart]), L = static_cast<int>(p[kCutLen]);
    for (int t = s; t < s + L && t < T; ++t) y[t] = cut[t];
  }
  if (p[kMotionOn] != 0) {
    if (wave != nullptr) {
      for (int t = 0; t < T; ++t) y[t] += wave[t];
    } else {
      motion_wave(y, T, fs, p, /*accumulate=*/true);
    }
  }
  if (p[kNoiseOn] != 0) {
    const float sigma = static_cast<float>(p[kNoiseFrac] * lead_std(y, T));
    add_noise(y, T, static_cast<uint32_t>(lead) * static_cast<uint32_t>(T),
              static_cast<uint32_t>(p[kNoiseKeyLo]), static_cast<uint32_t>(p[kNoiseKeyHi]), sigma);
  }
  if (p[kDropOn] != 0) {
    const int s = static_cast<int>(p[kDropStart]), L = static_cast<int>(p[kDropLen]);
    if (s >= 1 && s + L < T) {
      const float left = y[s - 1], right = y[s + L];
      for (int k = 0; k < L; ++k) {
        const float frac = static_cast<float>(k + 1) / static_cast<float>(L + 1);
        y[s + k] = left + (right - left) * frac;
      }
    }
  }
}

// One lead through the whole pipeline, in DESIGN.md's order (the CUDA kernel's
// unit of work). x/mix/cut: this sample's and the partners' input rows of this
// lead; y: the output row; ext: scratch of T + 2 * kBandpassPad doubles.
template <class X, class Y, class Ext, class AddNoise>
ECG_HD void augment_lead(X x, const float* mix, const float* cut, Y y, int T, int lead, double fs, const double* p,
                         Ext ext, AddNoise add_noise) {
  augment_lead_warp(x, y, T, p);
  if (p[kBpOn] != 0) bandpass(y, T, p, ext);
  augment_lead_rest(mix, cut, y, T, lead, fs, p, nullptr, add_noise);
}

}  // namespace augment
}  // namespace ecgfast

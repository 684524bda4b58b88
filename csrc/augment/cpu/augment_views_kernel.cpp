#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "augment/augment_views.h"

namespace ecgfast {
namespace {

using namespace augment;

// The hot loops are compiled three times (AVX-512 + FMA, AVX2 + FMA, baseline)
// and the best one for the CPU is picked at load time; "avx512f" alone would not
// enable FMA. Other compilers and architectures get the baseline build.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ECGFAST_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ECGFAST_CPU_CLONES
#endif

// The noise hashes every element (Irwin-Hall of hashed uniforms): integer SIMD.
ECGFAST_CPU_CLONES void add_hash_noise(float* y, int T, uint32_t e0, uint32_t lo, uint32_t hi, float sigma) {
  for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
}

// The band-pass of the 12 leads of one sample at once. Each lead's IIR is a
// serial chain (latency-bound); interleaving the leads ([t][c] layout) gives
// the CPU 12 independent chains per step, held as one 8-wide and one 4-wide
// vector (GCC vector extensions, so the clones pick AVX-512 or AVX2), stepped
// by the same Cascade as augment::bandpass: the same arithmetic per lead.
typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));

ECGFAST_CPU_CLONES void bandpass_12_leads(float* y, int T, const double* p, double* ext) {
  constexpr int C = 12;
  const int pad = kBandpassPad, n = T + 2 * pad;
  for (int c = 0; c < C; ++c) {  // odd extension, as scipy's sosfiltfilt
    const float* yc = y + static_cast<int64_t>(c) * T;
    for (int k = 1; k <= pad; ++k) {
      ext[(pad - k) * C + c] = 2.0 * yc[0] - yc[k];
      ext[(pad + T - 1 + k) * C + c] = 2.0 * yc[T - 1] - yc[T - 1 - k];
    }
  }
  for (int t = 0; t < T; ++t) {  // time outermost: contiguous writes, 12 sequential read streams
    double* e = ext + static_cast<int64_t>(pad + t) * C;
#pragma GCC unroll 12
    for (int c = 0; c < C; ++c) e[c] = y[static_cast<int64_t>(c) * T + t];
  }
  double zi[2][2];
  sos_zi(p, zi);
  const Cascade k = Cascade::from(p);
  for (int pass = 0; pass < 2; ++pass) {
    // Pass 1 runs forward, pass 2 backward over the filtered sequence.
    const int first = pass == 0 ? 0 : n - 1, stride = pass == 0 ? 1 : -1;
    v8d a, az0, az1, aw0, aw1;  // leads 0-7
    v4d b, bz0, bz1, bw0, bw1;  // leads 8-11
    std::memcpy(&a, ext + first * C, sizeof a);
    std::memcpy(&b, ext + first * C + 8, sizeof b);
    az0 = zi[0][0] * a, az1 = zi[0][1] * a, aw0 = zi[1][0] * a, aw1 = zi[1][1] * a;
    bz0 = zi[0][0] * b, bz1 = zi[0][1] * b, bw0 = zi[1][0] * b, bw1 = zi[1][1] * b;
    for (int i = 0, t = first; i < n; ++i, t += stride) {
      double* e = ext + static_cast<int64_t>(t) * C;
      std::memcpy(&a, e, sizeof a);
      std::memcpy(&b, e + 8, sizeof b);
      a = k.step(a, az0, az1, aw0, aw1);
      b = k.step(b, bz0, bz1, bw0, bw1);
      std::memcpy(e, &a, sizeof a);
      std::memcpy(e + 8, &b, sizeof b);
    }
  }
  for (int t = 0; t < T; ++t) {
    const double* e = ext + static_cast<int64_t>(pad + t) * C;
#pragma GCC unroll 12
    for (int c = 0; c < C; ++c) y[static_cast<int64_t>(c) * T + t] = static_cast<float>(e[c]);
  }
}

struct SampleScratch {
  double* ext;   // (T + 2 * pad) * C: the band-pass's extended signal
  int* warp_i0;  // T: warp source positions, shared by the leads
  float* warp_w;
  float* wave;   // T: the motion artefact, shared by the leads
};

// One view of one sample, all leads: x its input, mix/cut the partners' inputs,
// y its output. Cloned like the loops above, so that the warp, mixup, std and
// interpolation loops inlined here vectorise too.
ECGFAST_CPU_CLONES void augment_sample(
    const float* x, const float* mix, const float* cut, float* y, int C, int T, double fs, const double* p,
    const SampleScratch& s) {
  if (p[kWarpOn] != 0) {  // positions once per sample, applied to every lead
    for (int t = 0; t < T; ++t) warp_position(t, T, p[kWarpR], &s.warp_i0[t], &s.warp_w[t]);
    for (int c = 0; c < C; ++c)
      warp_apply(x + static_cast<int64_t>(c) * T, y + static_cast<int64_t>(c) * T, T, s.warp_i0, s.warp_w);
  } else {
    std::copy(x, x + static_cast<int64_t>(C) * T, y);
  }
  if (p[kMotionOn] != 0) motion_wave(s.wave, T, fs, p, /*accumulate=*/false);
  if (p[kBpOn] != 0) {
    if (C == 12) {
      bandpass_12_leads(y, T, p, s.ext);
    } else {
      for (int c = 0; c < C; ++c) bandpass(y + static_cast<int64_t>(c) * T, T, p, s.ext);
    }
  }
  for (int c = 0; c < C; ++c) {
    const int64_t off = static_cast<int64_t>(c) * T;
    augment_lead_rest(mix + off, cut + off, y + off, T, c, fs, p, s.wave, add_hash_noise);
  }
}

at::Tensor augment_views_cpu(const at::Tensor& x_in, const at::Tensor& params_in, double fs) {
  check_augment_views_args(x_in, params_in, fs);
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  auto out = at::empty({2, B, C, T}, x.options());
  const float* xp = x.data_ptr<float>();
  const double* pp = params.data_ptr<double>();
  float* yp = out.data_ptr<float>();

  for (int64_t i = 0; i < 2 * B; ++i) {  // partners index into the batch
    for (int col : {kMixPartner, kCutPartner}) {
      const double partner = pp[i * kNumParams + col];
      TORCH_CHECK(partner >= 0 && partner < B, "augment_views: partner index ", partner, " out of range");
    }
  }
  // Work item = (view, sample): all leads of one sample stay in cache through
  // the seven steps; every item reads only the input, so order doesn't matter.
  at::parallel_for(0, 2 * B, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> ext((T + 2 * kBandpassPad) * C);
    std::vector<int> warp_i0(T);
    std::vector<float> warp_w(T), wave(T);
    SampleScratch scratch{ext.data(), warp_i0.data(), warp_w.data(), wave.data()};
    for (int64_t vb = begin; vb < end; ++vb) {
      const double* p = pp + vb * kNumParams;
      augment_sample(xp + (vb % B) * C * T, xp + static_cast<int64_t>(p[kMixPartner]) * C * T,
                     xp + static_cast<int64_t>(p[kCutPartner]) * C * T, yp + vb * C * T, static_cast<int>(C),
                     static_cast<int>(T), fs, p, scratch);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CPU, m) { m.impl("augment_views", &augment_views_cpu); }

}  // namespace ecgfast

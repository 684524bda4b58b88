#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "augment/augment_views.h"

namespace ecgfast {
namespace {

using namespace augment;

// The noise loop hashes every element: let the compiler emit an AVX2 version
// beside the baseline one, picked at load time.
__attribute__((target_clones("avx512f", "avx2", "default"))) void add_hash_noise(float* y, int T, uint32_t e0,
                                                                        uint32_t lo, uint32_t hi,
                                                                        float sigma) {
  for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
}

// The band-pass of all C leads of one sample at once. Each lead's IIR is a
// serial chain (latency-bound); interleaving the leads ([t][c] layout) gives
// the CPU C independent chains per step, which also vectorise. Same arithmetic,
// in the same order per lead, as augment::bandpass.
template <int C>
__attribute__((target_clones("avx512f", "avx2", "default"))) void bandpass_leads(float* y, int T, const double* p,
                                                                        double* ext) {
  const int pad = kBandpassPad, n = T + 2 * pad;
  for (int c = 0; c < C; ++c) {
    const float* yc = y + static_cast<int64_t>(c) * T;
    for (int k = 1; k <= pad; ++k) {
      ext[(pad - k) * C + c] = 2.0 * yc[0] - yc[k];
      ext[(pad + T - 1 + k) * C + c] = 2.0 * yc[T - 1] - yc[T - 1 - k];
    }
    for (int t = 0; t < T; ++t) ext[(pad + t) * C + c] = yc[t];
  }
  double zi[2][2];
  sos_zi(p, zi);
  const double *hp = p + kHpB0, *lp = p + kLpB0;
  double z0[C], z1[C], w0[C], w1[C];
  for (int pass = 0; pass < 2; ++pass) {
    // Pass 1 runs forward, pass 2 backward over the filtered sequence.
    const int first = pass == 0 ? 0 : n - 1, stride = pass == 0 ? 1 : -1;
    for (int c = 0; c < C; ++c) {
      const double x0 = ext[first * C + c];
      z0[c] = zi[0][0] * x0, z1[c] = zi[0][1] * x0, w0[c] = zi[1][0] * x0, w1[c] = zi[1][1] * x0;
    }
    for (int i = 0, t = first; i < n; ++i, t += stride) {
      double* e = ext + static_cast<int64_t>(t) * C;
      for (int c = 0; c < C; ++c) {
        const double xt = e[c];
        const double u = hp[0] * xt + z0[c];
        z0[c] = hp[1] * xt - hp[3] * u + z1[c];
        z1[c] = hp[2] * xt - hp[4] * u;
        const double v = lp[0] * u + w0[c];
        w0[c] = lp[1] * u - lp[3] * v + w1[c];
        w1[c] = lp[2] * u - lp[4] * v;
        e[c] = v;
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int t = 0; t < T; ++t) y[static_cast<int64_t>(c) * T + t] = static_cast<float>(ext[(pad + t) * C + c]);
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
    for (int64_t vb = begin; vb < end; ++vb) {
      const int64_t b = vb % B;
      const double* p = pp + vb * kNumParams;
      const float* xs = xp + b * C * T;
      const float* mix = xp + static_cast<int64_t>(p[kMixPartner]) * C * T;
      const float* cut = xp + static_cast<int64_t>(p[kCutPartner]) * C * T;
      float* y = yp + vb * C * T;
      const int Ti = static_cast<int>(T);
      if (p[kWarpOn] != 0) {  // positions once per sample, applied to every lead
        for (int t = 0; t < Ti; ++t) warp_position(t, Ti, p[kWarpR], &warp_i0[t], &warp_w[t]);
        for (int64_t c = 0; c < C; ++c) warp_apply(xs + c * T, y + c * T, Ti, warp_i0.data(), warp_w.data());
      } else {
        std::copy(xs, xs + C * T, y);
      }
      if (p[kMotionOn] != 0) motion_wave(wave.data(), Ti, fs, p, /*accumulate=*/false);
      if (p[kBpOn] != 0) {
        if (C == 12) {
          bandpass_leads<12>(y, static_cast<int>(T), p, ext.data());
        } else {
          for (int64_t c = 0; c < C; ++c) bandpass(y + c * T, static_cast<int>(T), p, ext.data());
        }
      }
      for (int64_t c = 0; c < C; ++c)
        augment_lead_rest(mix + c * T, cut + c * T, y + c * T, Ti, static_cast<int>(c), fs, p, wave.data(),
                          add_hash_noise);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CPU, m) { m.impl("augment_views", &augment_views_cpu); }

}  // namespace ecgfast

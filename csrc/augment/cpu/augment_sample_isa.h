// The augmentation kernel's per-sample code, compiled once per x86 ISA level.
//
// augment_views_kernel.cpp includes this file several times, each time inside
// its own namespace and under its own `#pragma GCC target`, and picks one
// compilation at run time (the best the CPU has, or ECGFAST_CPU_ISA). So no
// #pragma once and no #include here: everything it needs is included before.

// The noise hashes every element (Irwin-Hall of hashed uniforms): integer SIMD.
void add_hash_noise(float* y, int T, uint32_t e0, uint32_t lo, uint32_t hi, float sigma) {
  for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
}

// The band-pass of the 12 leads of one sample at once. Each lead's IIR is a
// serial chain (latency-bound); interleaving the leads ([t][c] layout) gives
// the CPU 12 independent chains per step, held as one 8-wide and one 4-wide
// vector (GCC vector extensions: AVX-512 or AVX2 registers in those compilations), stepped
// by the same Cascade as augment::bandpass: the same arithmetic per lead.
typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));

void bandpass_12_leads(float* y, int T, const double* p, double* ext) {
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

// One view of one sample, all leads: x its input, mix/cut the partners' inputs,
// y its output. Compiled per ISA like the loops above, so that the warp, mixup,
// std and interpolation loops inlined here vectorise too.
void augment_sample(
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

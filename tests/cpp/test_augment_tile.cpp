// The CUDA kernel's tile code (csrc/augment/cuda/augment_views_tile.h) run on the host, lane by lane
// and phase by phase (a valid schedule of the warp-synchronous program), against the per-lead code
// with plain rows (augment_lead.h): bit for bit, for shapes that leave partial tiles and partial
// 32-sample chunks, and with fewer scratch slots than tiles (the kernel's grid stride).
// Torch-free: `g++ -std=c++17 -O2 -Icsrc tests/cpp/test_augment_tile.cpp` builds it alone.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "augment/cuda/augment_views_tile.h"
#include "check_macro.h"

namespace aug = ecgfast::augment;
namespace tile = ecgfast::augment::tile;


// All lanes of a phase, one after another; a barrier is the end of the phase.
struct HostWarp {
  int first() const { return 0; }
  int step() const { return 1; }
  void sync() const {}
  void check_partners(bool mix_ok, bool cut_ok) const { ECG_CHECK(mix_ok && cut_ok); }
};

// Butterworth biquad as ecgfast/augment/params.py's butterworth2.
static void butterworth2(double f, double fs, bool highpass, double* c) {
  const double k = std::tan(M_PI * f / fs), norm = 1.0 / (1.0 + std::sqrt(2.0) * k + k * k);
  c[3] = 2.0 * (k * k - 1.0) * norm;
  c[4] = (1.0 - std::sqrt(2.0) * k + k * k) * norm;
  c[0] = highpass ? norm : k * k * norm;
  c[1] = highpass ? -2.0 * norm : 2.0 * c[0];
  c[2] = c[0];
}

static std::vector<double> draw(int64_t B, int64_t T, double fs, std::mt19937_64& g, double rate) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto on = [&] { return u(g) < rate ? 1.0 : 0.0; };
  std::vector<double> p(2 * B * aug::kNumParams, 0.0);
  for (int64_t vb = 0; vb < 2 * B; ++vb) {
    double* q = p.data() + vb * aug::kNumParams;
    const int64_t b = vb % B;
    auto partner = [&] { return B == 1 ? 0.0 : static_cast<double>((b + 1 + static_cast<int64_t>(u(g) * (B - 1))) % B); };
    q[aug::kWarpOn] = on(), q[aug::kWarpR] = 0.95 + 0.1 * u(g);
    q[aug::kBpOn] = on();
    butterworth2(0.5 + u(g), fs, true, q + aug::kHpB0);
    butterworth2(std::min(40 + 20 * u(g), 0.95 * fs / 2), fs, false, q + aug::kLpB0);
    q[aug::kMixOn] = on(), q[aug::kMixLambda] = 0.5 + 0.5 * u(g), q[aug::kMixPartner] = partner();
    q[aug::kCutOn] = on(), q[aug::kCutLen] = std::round((0.1 + 0.2 * u(g)) * T);
    q[aug::kCutStart] = std::floor(u(g) * (T - q[aug::kCutLen] + 1)), q[aug::kCutPartner] = partner();
    q[aug::kMotionOn] = on(), q[aug::kMotionAmp] = 0.01 + 0.04 * u(g), q[aug::kMotionFreq] = 0.5 + 1.5 * u(g);
    q[aug::kMotionPhase] = 2 * M_PI * u(g);
    q[aug::kNoiseOn] = on(), q[aug::kNoiseFrac] = 0.005 + 0.015 * u(g);
    q[aug::kDropOn] = on(), q[aug::kDropLen] = std::round((0.05 + 0.15 * u(g)) * T);
    q[aug::kDropStart] = 1 + std::floor(u(g) * (T - q[aug::kDropLen] - 1));
    q[aug::kNoiseKeyLo] = static_cast<double>(g() & 0xffffffffu), q[aug::kNoiseKeyHi] = static_cast<double>(g() >> 32);
  }
  return p;
}

// per_view: each view reads its own input batch (the crops of step 0: x is (2, B, C, T), Problem::view_stride
// B * C * T), partners included; else both views read one (B, C, T) batch.
static void check_case(int64_t B, int64_t C, int64_t T, double fs, int64_t slots, double rate, uint64_t seed,
                       bool per_view = false) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const int64_t view_stride = per_view ? B * C * T : 0;
  std::vector<float> x((per_view ? 2 : 1) * B * C * T);
  for (auto& v : x) v = n(g);
  const auto params = draw(B, T, fs, g, rate);
  const int64_t items = 2 * B * C, tiles = (items + tile::kLanes - 1) / tile::kLanes;

  // Reference: the per-lead code on plain rows, one (view, sample, lead) at a time.
  std::vector<float> want(items * T);
  std::vector<double> ext(T + 2 * aug::kBandpassPad);
  for (int64_t item = 0; item < items; ++item) {
    const int64_t vb = item / C, c = item % C, b = vb % B;
    const double* p = params.data() + vb * aug::kNumParams;
    const int64_t mix = static_cast<int64_t>(p[aug::kMixPartner]), cut = static_cast<int64_t>(p[aug::kCutPartner]);
    const float* xv = x.data() + (vb / B) * view_stride;
    aug::augment_lead(xv + (b * C + c) * T, xv + (mix * C + c) * T, xv + (cut * C + c) * T,
                      want.data() + item * T, static_cast<int>(T), static_cast<int>(c), fs, p, ext.data(),
                      tile::AddHashNoise{});
  }

  // The kernel's schedule: block k of `slots` takes tiles k, k + slots, ... in its own scratch.
  std::vector<float> got(items * T, std::nanf(""));
  std::vector<double> ws_ext(slots * tile::Scratch::ext_size(T), std::nan(""));
  std::vector<float> ws_y(slots * tile::Scratch::y_size(T), std::nanf(""));
  const tile::Problem pb{x.data(), view_stride, params.data(), got.data(), B, C, T, fs};
  for (int64_t k = 0; k < slots; ++k) {
    tile::Shared sh;
    std::memset(&sh, 0xff, sizeof sh);  // garbage, as uninitialised shared memory
    const tile::Scratch s{ws_ext.data() + k * tile::Scratch::ext_size(T), ws_y.data() + k * tile::Scratch::y_size(T)};
    for (int64_t t = k; t < tiles; t += slots) tile::process_tile(HostWarp{}, pb, t, s, sh);
  }
  ECG_CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  bool changed = false;  // the case did augment something
  for (int64_t item = 0; item < items && !changed; ++item) {
    const int64_t vb = item / C, b = vb % B, c = item % C;
    changed = std::memcmp(want.data() + item * T, x.data() + (vb / B) * view_stride + (b * C + c) * T,
                          T * sizeof(float)) != 0;
  }
  ECG_CHECK(changed || rate == 0);
}

// Step 0 (crop_sample, which the CUDA crop kernel runs per element and the CPU kernel per row): a plain
// crop is the record's samples from crop_start; a resized crop of fraction 1 starting on a sample is that
// copy too (weights 0); one of fraction 1/2 is the midpoints and samples alternately.
static void check_crop() {
  const int T = 300, L = 100;
  std::vector<float> x(T);
  for (int t = 0; t < T; ++t) x[t] = static_cast<float>(std::sin(0.1 * t) + 0.01 * t);
  std::vector<double> p(aug::kNumParams, 0.0);
  std::vector<float> y(L);
  p[aug::kCropStart] = 57;
  ECG_CHECK(aug::crop_in_range(p.data(), T, L));
  aug::crop_lead(x.data(), y.data(), T, L, p.data());
  ECG_CHECK(std::memcmp(y.data(), x.data() + 57, L * sizeof(float)) == 0);
  p[aug::kRrcOn] = 1, p[aug::kRrcStart] = 57, p[aug::kRrcFrac] = 1.0;
  aug::crop_lead(x.data(), y.data(), T, L, p.data());
  ECG_CHECK(std::memcmp(y.data(), x.data() + 57, L * sizeof(float)) == 0);
  p[aug::kRrcStart] = 10, p[aug::kRrcFrac] = 0.5;
  aug::crop_lead(x.data(), y.data(), T, L, p.data());
  for (int t = 0; t < L; ++t) {
    const int i = 10 + t / 2;
    if (t % 2 == 0) {
      ECG_CHECK(y[t] == x[i]);
    } else {
      ECG_CHECK(std::fabs(y[t] - 0.5f * (x[i] + x[i + 1])) <= 1e-6f);
    }
  }
  p[aug::kCropStart] = T - L + 1;  // one past the last start
  ECG_CHECK(!aug::crop_in_range(p.data(), T, L));
  p[aug::kCropStart] = -1;
  ECG_CHECK(!aug::crop_in_range(p.data(), T, L));
}

int main() {
  check_crop();
  check_case(/*B=*/5, /*C=*/12, /*T=*/1000, 100.0, /*slots=*/2, /*rate=*/1.0, 1);  // 120 rows: 3 full tiles + 24
  check_case(4, 12, 1000, 100.0, 3, 0.5, 2);                                       // 96 rows: exactly 3 tiles
  check_case(7, 3, 257, 100.0, 1, 0.7, 3);                                         // 42 rows, T not a multiple of 32
  check_case(1, 12, 64, 100.0, 4, 1.0, 4);                                         // 24 rows: one partial tile
  check_case(3, 12, 5000, 500.0, 1, 0.6, 5);                                       // 500 Hz
  check_case(2, 12, 200, 100.0, 1, 0.0, 6);                                        // nothing on: a copy
  check_case(5, 12, 250, 100.0, 2, 1.0, 7, /*per_view=*/true);                     // the views' crops as input
  check_case(3, 12, 97, 100.0, 1, 0.6, 8, /*per_view=*/true);
  std::puts("test_augment_tile: ok");
  return 0;
}

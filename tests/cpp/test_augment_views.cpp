// ecgfast::augment_views through the dispatcher: parameters set by hand.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "augment/augment_lead.h"
#include "check.h"

using ecgfast::augment::kNumParams;
namespace col = ecgfast::augment;

using AugmentOp =
    c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, double, std::optional<int64_t>)>;

at::Tensor no_augmentation(int64_t B) { return at::zeros({2, B, kNumParams}, at::kDouble); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Frequency warp, y(t) = x(c + (t - c) r), c = (T - 1) / 2, clamped, linear interpolation: on a ramp
// the output is the clamped source position itself (exact for linear interpolation); on noise it
// equals the interpolation written out here. r > 1 reads beyond the record (clamped), r < 1 inside.
void check_frequency_warp(const AugmentOp& op) {
  const int64_t B = 2, C = 12, T = 300;
  const double r[2][2] = {{1.04, 0.955}, {0.97, 1.0}};
  auto ramp = at::arange(T, at::kFloat).expand({B, C, T}).contiguous();
  auto noise = at::randn({B, C, T});
  for (const auto& x : {ramp, noise}) {
    auto params = no_augmentation(B);
    for (int v = 0; v < 2; ++v)
      for (int b = 0; b < B; ++b) {
        params[v][b][col::kWarpOn] = 1;
        params[v][b][col::kWarpR] = r[v][b];
      }
    auto out = op.call(x, params, 100.0, std::nullopt);
    auto xa = x.to(at::kDouble);
    for (int v = 0; v < 2; ++v)
      for (int b = 0; b < B; ++b) {
        auto want = at::empty({C, T}, at::kDouble);
        const double c = (T - 1) / 2.0;
        for (int64_t t = 0; t < T; ++t) {
          const double pos = std::min(std::max(c + (t - c) * r[v][b], 0.0), T - 1.0);
          const int64_t i0 = static_cast<int64_t>(std::floor(pos)), i1 = std::min(i0 + 1, T - 1);
          const double w = pos - i0;
          want.select(1, t).copy_(xa[b].select(1, i0) * (1 - w) + xa[b].select(1, i1) * w);
        }
        const double scale = xa.abs().max().item<double>();
        ECG_CHECK(max_abs_diff(out[v][b], want) <= 1e-6 * scale + 1e-6);
      }
  }
}

// Band-pass (2nd-order Butterworth high-pass at 1 Hz, low-pass at 40 Hz, fs = 100 Hz, zero phase with
// sosfiltfilt's odd padding and initial conditions), against values of scipy 1.x:
//   sos = vstack([butter(2, 1.0, 'highpass', fs=100, output='sos'), butter(2, 40.0, 'lowpass', fs=100, output='sos')])
//   sosfiltfilt(sos, x.astype(float32).astype(float64), axis=-1)
// for the input x below, at leads 0, 2, 11 and the times in kTimes (edges included: the padding and
// initial conditions show there). Both the 12-lead interleaved path and the per-lead one (C = 3).
void check_bandpass(const AugmentOp& op) {
  const int64_t T = 200;
  const double fs = 100.0;
  const int kTimes[10] = {0, 1, 2, 7, 50, 100, 150, 197, 198, 199};
  const int kLeads[3] = {0, 2, 11};
  const double kScipy[3][10] = {
      {-0.0590243, 0.5414611, 0.8911803, -0.9565868, 0.0117134, 0.0050166, -0.1107122, -0.3987057, -0.1932166,
       0.0181739},
      {-0.1579630, 0.3065349, 0.4042688, -1.3733545, 0.5356816, 0.4812767, 0.4480007, -0.8571626, -0.4009101,
       -0.0369717},
      {-0.1827938, -0.7621323, -1.2747969, 0.4164306, 0.4304783, 0.3759407, 0.5044831, 0.0671610, 0.3747667,
       -0.0460786}};
  // scipy.signal.butter's coefficients (b0, b1, b2, a1, a2), printed to 8 digits
  const double hp[5] = {0.95654323, -1.91308645, 0.95654323, -1.91119707, 0.91497583};
  const double lp[5] = {0.63894553, 1.27789105, 0.63894553, 1.1429805, 0.4128016};
  auto x = at::empty({1, 12, T});
  for (int c = 0; c < 12; ++c)
    for (int t = 0; t < T; ++t)
      x[0][c][t] = 0.5 + 0.3 * c / 11 + std::sin(2 * M_PI * 10 * t / fs + 0.25 * c) +
                   0.4 * std::sin(2 * M_PI * 45 * t / fs) + 0.3 * std::sin(2 * M_PI * 0.2 * t / fs);
  for (int64_t C : {12, 3}) {
    auto xc = x.slice(1, 0, C).contiguous();
    auto params = no_augmentation(1);
    params[1][0][col::kBpOn] = 1;
    // the closed form of ecgfast/augment/params.py: butterworth2 (K = tan(pi f / fs))
    for (int kind = 0; kind < 2; ++kind) {
      const double f = kind == 0 ? 1.0 : 40.0, k = std::tan(M_PI * f / fs);
      const double norm = 1.0 / (1.0 + std::sqrt(2.0) * k + k * k);
      const double b0 = kind == 0 ? norm : k * k * norm, b1 = kind == 0 ? -2 * norm : 2 * b0;
      const double coef[5] = {b0, b1, b0, 2 * (k * k - 1) * norm, (1 - std::sqrt(2.0) * k + k * k) * norm};
      const int first = kind == 0 ? col::kHpB0 : col::kLpB0;
      for (int i = 0; i < 5; ++i) {
        ECG_CHECK(std::abs(coef[i] - (kind == 0 ? hp[i] : lp[i])) < 1e-7);
        params[1][0][first + i] = coef[i];
      }
    }
    auto out = op.call(xc, params, fs, std::nullopt);
    ECG_CHECK(at::equal(out[0], xc));  // view 0: no band-pass
    for (int j = 0; j < 3; ++j) {
      if (kLeads[j] >= C) continue;
      for (int i = 0; i < 10; ++i)
        ECG_CHECK(std::abs(out[1][0][kLeads[j]][kTimes[i]].item<float>() - kScipy[j][i]) < 2e-6);
    }
  }
}

// Motion artefact: every lead gets A sin(2 pi f t / fs + phi), each view and sample its own.
void check_motion_artifact(const AugmentOp& op) {
  const int64_t B = 2, C = 12, T = 1000;
  const double fs = 250.0;
  const double amp[2][2] = {{0.04, 0.011}, {0.03, 0.05}}, freq[2][2] = {{1.3, 0.5}, {2.0, 0.77}},
               phase[2][2] = {{0.7, 5.9}, {3.1, 0.0}};
  auto x = at::randn({B, C, T});
  auto params = no_augmentation(B);
  for (int v = 0; v < 2; ++v)
    for (int b = 0; b < B; ++b) {
      params[v][b][col::kMotionOn] = 1;
      params[v][b][col::kMotionAmp] = amp[v][b];
      params[v][b][col::kMotionFreq] = freq[v][b];
      params[v][b][col::kMotionPhase] = phase[v][b];
    }
  auto out = op.call(x, params, fs, std::nullopt);
  auto t = at::arange(T, at::kDouble);
  for (int v = 0; v < 2; ++v)
    for (int b = 0; b < B; ++b) {
      auto wave = amp[v][b] * at::sin(2 * M_PI * freq[v][b] * t / fs + phase[v][b]);
      ECG_CHECK(max_abs_diff(out[v][b], x[b].to(at::kDouble) + wave.unsqueeze(0)) < 2e-6);
    }
}

// Per-lead noise: y = x + frac * std(x_lead) * z, z the unit-variance hash noise of element
// (lead * T + t) under the view's key. Checked against augment_lead.h's hash_normal, and by its
// statistics: sigma per lead (leads of unlike scale), zero mean, leads and views independent.
void check_channel_noise(const AugmentOp& op) {
  const int64_t C = 12, T = 4000;
  const double frac = 0.02;
  auto scales = at::arange(1, C + 1, at::kFloat).unsqueeze(1);  // lead c has std ~ c + 1
  auto x = (at::randn({1, C, T}) * scales).contiguous();
  auto params = no_augmentation(1);
  const uint32_t lo[2] = {12345u, 4000000000u}, hi[2] = {678u, 99u};
  for (int v = 0; v < 2; ++v) {
    params[v][0][col::kNoiseOn] = 1;
    params[v][0][col::kNoiseFrac] = frac;
    params[v][0][col::kNoiseKeyLo] = static_cast<double>(lo[v]);
    params[v][0][col::kNoiseKeyHi] = static_cast<double>(hi[v]);
  }
  auto out = op.call(x, params, 100.0, std::nullopt);
  ECG_CHECK(at::equal(out, op.call(x, params, 100.0, std::nullopt)));  // a pure function of the key
  auto lead_std = x[0].to(at::kDouble).std(1, /*unbiased=*/false);
  std::vector<at::Tensor> z(2);
  for (int v = 0; v < 2; ++v) {
    auto d = (out[v][0].to(at::kDouble) - x[0].to(at::kDouble));
    z[v] = d / (frac * lead_std.unsqueeze(1));  // the unit noise, recovered
    for (int c = 0; c < C; ++c) {
      for (int t : {0, 1, 1234, 3999}) {
        const double want = ecgfast::augment::hash_normal(static_cast<uint32_t>(c * T + t), lo[v], hi[v]);
        ECG_CHECK(std::abs(z[v][c][t].item<double>() - want) < 1e-3);
      }
      const double s = z[v][c].std(0, false).item<double>(), m = z[v][c].mean().item<double>();
      ECG_CHECK(std::abs(s - 1) < 0.1 && std::abs(m) < 0.1);  // 4000 draws: SE 0.011 and 0.016
    }
    auto zz = z[v];  // neighbouring leads draw independent noise
    for (int c = 0; c + 1 < C; ++c)
      ECG_CHECK(std::abs((zz[c] * zz[c + 1]).mean().item<double>()) < 0.1);
  }
  ECG_CHECK(std::abs((z[0] * z[1]).mean().item<double>()) < 0.05);  // the views' keys differ
}

// Step 0: with a view length, each view is first cut to it (crop_start), and the seven steps run on the
// crop: CutMix's span and partner are in the view's time and the partner's crop of the same view.
void check_crop(const AugmentOp& op) {
  const int64_t B = 3, C = 12, T = 300, L = 120;
  auto x = at::randn({B, C, T});
  auto params = no_augmentation(B);
  const int64_t start[2][3] = {{0, 180, 57}, {13, 0, 99}};
  for (int v = 0; v < 2; ++v)
    for (int b = 0; b < B; ++b) params[v][b][col::kCropStart] = static_cast<double>(start[v][b]);
  auto out = op.call(x, params, 100.0, L);
  ECG_CHECK(out.sizes() == at::IntArrayRef({2, B, C, L}));
  for (int v = 0; v < 2; ++v)
    for (int b = 0; b < B; ++b) ECG_CHECK(at::equal(out[v][b], x[b].slice(1, start[v][b], start[v][b] + L)));
  // The whole record as the view, start 0: the views of no view length (a copy, bit for bit).
  ECG_CHECK(at::equal(op.call(x, no_augmentation(B), 100.0, T), op.call(x, no_augmentation(B), 100.0, std::nullopt)));
  params[1][0][col::kCutOn] = 1;
  params[1][0][col::kCutStart] = 30;
  params[1][0][col::kCutLen] = 20;
  params[1][0][col::kCutPartner] = 2;
  out = op.call(x, params, 100.0, L);
  ECG_CHECK(at::equal(out[1][0].slice(1, 30, 50), x[2].slice(1, 99 + 30, 99 + 50)));
  ECG_CHECK(at::equal(out[1][0].slice(1, 0, 30), x[0].slice(1, 13, 13 + 30)));
  // A crop start past the record's end, and a view longer than the record, are refused.
  params[0][1][col::kCropStart] = T - L + 1;
  bool threw = false;
  try {
    op.call(x, params, 100.0, L);
  } catch (const c10::Error&) {
    threw = true;
  }
  ECG_CHECK(threw);
  threw = false;
  try {
    op.call(x, no_augmentation(B), 100.0, T + 1);
  } catch (const c10::Error&) {
    threw = true;
  }
  ECG_CHECK(threw);
}

// The layout the extension reports (for params.py's import check) is the one the kernels index with.
void check_param_layout() {
  const auto names = find_op<std::vector<std::string>()>("ecgfast::augment_param_layout").call();
  ECG_CHECK(static_cast<int>(names.size()) == kNumParams);
  ECG_CHECK(names[col::kWarpOn] == "warp_on" && names[col::kHpB0] == "hp_b0" && names[col::kLpB0] == "lp_b0");
  ECG_CHECK(names[col::kMixPartner] == "mix_partner" && names[col::kCutPartner] == "cut_partner");
  ECG_CHECK(names[col::kNoiseKeyHi] == "noise_key_hi" && names[col::kRrcFrac] == "rrc_frac");
  ECG_CHECK(find_op<int64_t()>("ecgfast::augment_bandpass_pad").call() == col::kBandpassPad);
}

int main() {
  check_param_layout();
  auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double, std::optional<int64_t>)>(
      "ecgfast::augment_views");
  at::manual_seed(0);
  const int64_t B = 3, C = 12, T = 200;
  auto x = at::randn({B, C, T});
  auto params = at::zeros({2, B, kNumParams}, at::kDouble);

  // Every augmentation off: both views are the input.
  auto out = op.call(x, params, 100.0, std::nullopt);
  ECG_CHECK(out.sizes() == at::IntArrayRef({2, B, C, T}));
  ECG_CHECK(at::equal(out[0], x) && at::equal(out[1], x));

  // CutMix on view 1 of sample 0 with partner 2 over [50, 90): exactly the partner's samples.
  params[1][0][col::kCutOn] = 1;
  params[1][0][col::kCutStart] = 50;
  params[1][0][col::kCutLen] = 40;
  params[1][0][col::kCutPartner] = 2;
  out = op.call(x, params, 100.0, std::nullopt);
  ECG_CHECK(at::equal(out[1][0].slice(1, 50, 90), x[2].slice(1, 50, 90)));
  ECG_CHECK(at::equal(out[1][0].slice(1, 0, 50), x[0].slice(1, 0, 50)));
  ECG_CHECK(at::equal(out[1][0].slice(1, 90, T), x[0].slice(1, 90, T)));  // the tail too
  ECG_CHECK(at::equal(out[1].slice(0, 1, B), x.slice(0, 1, B)) && at::equal(out[0], x));

  // Mixup with lambda 0.75 and partner 1 on view 0 of sample 2.
  params[0][2][col::kMixOn] = 1;
  params[0][2][col::kMixLambda] = 0.75;
  params[0][2][col::kMixPartner] = 1;
  out = op.call(x, params, 100.0, std::nullopt);
  ECG_CHECK(at::allclose(out[0][2], 0.75 * x[2] + 0.25 * x[1], 1e-6, 1e-6));

  // Temporal dropout: a straight line between the span's edges.
  params[0][1][col::kDropOn] = 1;
  params[0][1][col::kDropStart] = 20;
  params[0][1][col::kDropLen] = 9;
  out = op.call(x, params, 100.0, std::nullopt);
  auto y = out[0][1][4];
  const float left = y[19].item<float>(), right = y[29].item<float>();
  for (int k = 0; k < 9; ++k) ECG_CHECK(std::abs(y[20 + k].item<float>() - (left + (right - left) * (k + 1) / 10.0f)) < 1e-5);

  check_frequency_warp(op);
  check_crop(op);
  check_bandpass(op);
  check_motion_artifact(op);
  check_channel_noise(op);

  // A partner outside the batch is refused.
  params[0][0][col::kMixPartner] = 7;
  bool threw = false;
  try {
    op.call(x, params, 100.0, std::nullopt);
  } catch (const c10::Error&) {
    threw = true;
  }
  ECG_CHECK(threw);
  std::puts("test_augment_views: ok");
  return 0;
}

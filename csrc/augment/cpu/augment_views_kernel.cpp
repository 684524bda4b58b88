#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "augment/augment_views.h"

namespace ecgfast {
namespace {

using namespace augment;

struct SampleScratch {
  double* ext;   // (T + 2 * pad) * C: the band-pass's extended signal
  int* warp_i0;  // T: warp source positions, shared by the leads
  float* warp_w;
  float* wave;   // T: the motion artefact, shared by the leads
};

// The per-sample code (augment_sample_isa.h) is compiled three times: x86-64-v4
// (AVX-512 + FMA), x86-64-v3 (AVX2 + FMA) and the baseline; augment_views uses
// the best the CPU has. ECGFAST_CPU_ISA=x86-64-v4|x86-64-v3|baseline picks one
// instead (at most what the CPU has), so tests can check each compilation
// where the CPU runs it. Other compilers and architectures get the baseline only.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ECGFAST_X86_ISAS 1
namespace isa_v4 {
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#include "augment/cpu/augment_sample_isa.h"
#pragma GCC pop_options
}  // namespace isa_v4
namespace isa_v3 {
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#include "augment/cpu/augment_sample_isa.h"
#pragma GCC pop_options
}  // namespace isa_v3
#endif
namespace isa_baseline {
#include "augment/cpu/augment_sample_isa.h"
}  // namespace isa_baseline

struct IsaLevel {
  const char* name;
  decltype(&isa_baseline::augment_sample) augment_sample;
  bool (*cpu_has)();
};

const IsaLevel kIsaLevels[] = {  // best first
#ifdef ECGFAST_X86_ISAS
    {"x86-64-v4", &isa_v4::augment_sample, [] { return __builtin_cpu_supports("x86-64-v4") != 0; }},
    {"x86-64-v3", &isa_v3::augment_sample, [] { return __builtin_cpu_supports("x86-64-v3") != 0; }},
#endif
    {"baseline", &isa_baseline::augment_sample, [] { return true; }},
};

const IsaLevel& choose_isa() {
#ifdef ECGFAST_X86_ISAS
  __builtin_cpu_init();
#endif
  const IsaLevel* best = nullptr;
  for (const auto& level : kIsaLevels) {
    if (level.cpu_has()) {
      best = &level;
      break;
    }
  }
  const char* env = std::getenv("ECGFAST_CPU_ISA");
  if (env == nullptr || *env == '\0') return *best;
  std::string names;
  for (const auto& level : kIsaLevels) {
    if (std::strcmp(env, level.name) == 0) {
      TORCH_CHECK(level.cpu_has(), "ECGFAST_CPU_ISA=", env, ": this CPU does not have it (best here: ", best->name,
                  ")");
      return level;
    }
    names += names.empty() ? level.name : std::string(", ") + level.name;
  }
  TORCH_CHECK(false, "ECGFAST_CPU_ISA=", env, ": expected one of ", names);
}

// Chosen once, at the first call (a failed choice is retried, and raises, at the next).
const IsaLevel& isa() {
  static const IsaLevel& chosen = choose_isa();
  return chosen;
}

std::string augment_cpu_isa() { return isa().name; }

// Step 0: every (view, sample, lead) row of the record cut to its view (2, B, C, L).
at::Tensor crop_views(const at::Tensor& x, const double* pp, int64_t L) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  for (int64_t i = 0; i < 2 * B; ++i)
    TORCH_CHECK(crop_in_range(pp + i * kNumParams, T, L), "augment_views: crop start ", pp[i * kNumParams + kCropStart],
                " out of range for views of ", L, " samples of a record of ", T);
  auto crops = at::empty({2, B, C, L}, x.options());
  const float* xp = x.data_ptr<float>();
  float* cp = crops.data_ptr<float>();
  at::parallel_for(0, 2 * B * C, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t vb = row / C, c = row % C;
      crop_lead(xp + ((vb % B) * C + c) * T, cp + row * L, static_cast<int>(T), static_cast<int>(L),
                pp + vb * kNumParams);
    }
  });
  return crops;
}

at::Tensor augment_views_cpu(const at::Tensor& x_in, const at::Tensor& params_in, double fs,
                             std::optional<int64_t> view_length) {
  check_augment_views_args(x_in, params_in, fs);
  const int64_t L = checked_view_length(x_in, view_length);
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1);
  const double* pp = params.data_ptr<double>();
  // The views' inputs: the crops (one batch per view), or the record itself for both views.
  const auto input = view_length.has_value() ? crop_views(x, pp, L) : x;
  const int64_t view_stride = view_length.has_value() ? B * C * L : 0;
  auto out = at::empty({2, B, C, L}, x.options());
  const float* xp = input.data_ptr<float>();
  float* yp = out.data_ptr<float>();

  for (int64_t i = 0; i < 2 * B; ++i) {  // partners index into the batch
    for (int col : {kMixPartner, kCutPartner}) {
      const double partner = pp[i * kNumParams + col];
      TORCH_CHECK(partner >= 0 && partner < B, "augment_views: partner index ", partner, " out of range");
    }
  }
  // Work item = (view, sample): all leads of one sample stay in cache through
  // the seven steps; every item reads only the input, so order doesn't matter.
  const auto sample = isa().augment_sample;
  const int64_t T = L;
  at::parallel_for(0, 2 * B, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> ext((T + 2 * kBandpassPad) * C);
    std::vector<int> warp_i0(T);
    std::vector<float> warp_w(T), wave(T);
    SampleScratch scratch{ext.data(), warp_i0.data(), warp_w.data(), wave.data()};
    for (int64_t vb = begin; vb < end; ++vb) {
      const double* p = pp + vb * kNumParams;
      const float* xv = xp + (vb / B) * view_stride;  // this view's input batch
      sample(xv + (vb % B) * C * T, xv + static_cast<int64_t>(p[kMixPartner]) * C * T,
             xv + static_cast<int64_t>(p[kCutPartner]) * C * T, yp + vb * C * T, static_cast<int>(C),
             static_cast<int>(T), fs, p, scratch);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CPU, m) { m.impl("augment_views", &augment_views_cpu); }

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // The ISA level the CPU kernel of augment_views runs (x86-64-v4, x86-64-v3 or baseline).
  m.def("augment_cpu_isa() -> str", &augment_cpu_isa);
}

}  // namespace ecgfast

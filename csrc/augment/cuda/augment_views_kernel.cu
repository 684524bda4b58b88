// CUDA kernel of ecgfast::augment_views. One thread per (view, sample, lead)
// runs the same per-lead code as the CPU kernel (augment/augment_lead.h).
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include "augment/augment_views.h"

namespace ecgfast {
namespace {

using namespace augment;

struct AddHashNoise {
  __device__ void operator()(float* y, int T, uint32_t e0, uint32_t lo, uint32_t hi, float sigma) const {
    for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
  }
};

// workspace: one band-pass scratch row of T + 2 * kBandpassPad doubles per
// thread, so any (B, C, T) the CPU kernel accepts runs without shared-memory
// limits.
__global__ void augment_views_kernel(const float* __restrict__ x, const double* __restrict__ params,
                                     float* __restrict__ out, double* __restrict__ workspace, int64_t B,
                                     int64_t C, int64_t T, double fs) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (item >= 2 * B * C) return;
  const int64_t vb = item / C, c = item % C, b = vb % B;
  const double* p = params + vb * kNumParams;
  // Device-side assert rather than a host check: reading the partners on the
  // host would cost a sync every step. NaN fails both comparisons too.
  const double mix_d = p[kMixPartner], cut_d = p[kCutPartner];
  CUDA_KERNEL_ASSERT(mix_d >= 0 && mix_d < static_cast<double>(B) && "augment_views: mixup partner out of range");
  CUDA_KERNEL_ASSERT(cut_d >= 0 && cut_d < static_cast<double>(B) && "augment_views: CutMix partner out of range");
  const int64_t mix = static_cast<int64_t>(mix_d), cut = static_cast<int64_t>(cut_d);
  double* ext = workspace + item * (T + 2 * kBandpassPad);
  augment_lead(x + (b * C + c) * T, x + (mix * C + c) * T, x + (cut * C + c) * T, out + item * T,
               static_cast<int>(T), static_cast<int>(c), fs, p, ext, AddHashNoise{});
}

at::Tensor augment_views_cuda(const at::Tensor& x_in, const at::Tensor& params_in, double fs) {
  check_augment_views_args(x_in, params_in, fs);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  auto out = at::empty({2, B, C, T}, x.options());
  const int64_t items = 2 * B * C;
  if (items == 0) return out;
  auto workspace = at::empty({items * (T + 2 * kBandpassPad)}, x.options().dtype(at::kDouble));
  constexpr int threads = 128;
  const int64_t blocks = (items + threads - 1) / threads;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "augment_views: batch too large for one launch");
  augment_views_kernel<<<static_cast<unsigned>(blocks), threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      x.data_ptr<float>(), params.data_ptr<double>(), out.data_ptr<float>(), workspace.data_ptr<double>(), B, C,
      T, fs);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) { m.impl("augment_views", &augment_views_cuda); }

}  // namespace ecgfast

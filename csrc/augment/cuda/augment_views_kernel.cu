// CUDA kernel of ecgfast::augment_views: one warp per tile of 32 (view, sample,
// lead) rows, each lane running the CPU kernel's per-lead code on its row
// (augment/augment_lead.h) over a coalesced, interleaved tile in scratch memory
// (augment_views_tile.h, which says how and why). With a view length, an
// elementwise kernel first writes each view's crops (step 0), which the tiles
// then read as their input (tile::Problem::view_stride).
//
// Launch shape, for H100/H200 (132 SMs): the work is 2 * B * 12 rows, each a
// serial chain (the band-pass recursion runs over time) -- 6,144 rows, 192
// warps at batch 256. Blocks of one warp, so the warps spread over every SM
// (blocks of 128 threads made 48 blocks at batch 256: 84 SMs idle). The grid is
// capped at kTilesPerSM blocks per SM and strides over the tiles: a lane's
// chain issues a float64 FMA every few cycles, so two warps per scheduler
// (8 per SM) keep the FP64 units busy, and the scratch (one tile per block:
// 32 rows x 12 bytes per time sample) stays bounded by the GPU's size rather
// than the batch's. The per-lead arithmetic is the same code as
// before this layout, so the views are bit for bit those of one thread per row.
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

#include "augment/augment_views.h"
#include "augment/cuda/augment_views_tile.h"

namespace ecgfast {
namespace {

using namespace augment;
using tile::kLanes;

constexpr int kTilesPerSM = 8;

// The warp of tile::process_tile on the device: this thread is one lane.
struct DeviceWarp {
  __device__ int first() const { return static_cast<int>(threadIdx.x); }
  __device__ int step() const { return kLanes; }
  __device__ void sync() const { __syncwarp(); }
  // Device-side assert rather than a host check: reading the partners on the
  // host would cost a sync every step.
  __device__ void check_partners(bool mix_ok, bool cut_ok) const {
    CUDA_KERNEL_ASSERT(mix_ok && "augment_views: mixup partner out of range");
    CUDA_KERNEL_ASSERT(cut_ok && "augment_views: CutMix partner out of range");
  }
};

__global__ void __launch_bounds__(kLanes) augment_views_kernel(tile::Problem pb, double* __restrict__ ext,
                                                               float* __restrict__ y, int64_t tiles) {
  __shared__ tile::Shared sh;
  const tile::Scratch s{ext + blockIdx.x * tile::Scratch::ext_size(pb.T), y + blockIdx.x * tile::Scratch::y_size(pb.T)};
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) tile::process_tile(DeviceWarp{}, pb, t, s, sh);
}

// Step 0, one thread per element of the crops (2, B, C, L): writes along time coalesce, and so do the
// reads of a plain crop (a resized one reads nearby samples). Grid-stride.
__global__ void crop_views_kernel(const float* __restrict__ x, const double* __restrict__ params,
                                  float* __restrict__ crops, int64_t B, int64_t C, int64_t T, int64_t L) {
  const int64_t n = 2 * B * C * L;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = e / L, vb = row / C, c = row % C;
    const double* p = params + vb * kNumParams;
    CUDA_KERNEL_ASSERT(crop_in_range(p, T, L) && "augment_views: crop start out of range");
    crops[e] = crop_sample(x + ((vb % B) * C + c) * T, static_cast<int>(T), static_cast<int>(e % L), p);
  }
}

at::Tensor augment_views_cuda(const at::Tensor& x_in, const at::Tensor& params_in, double fs,
                              std::optional<int64_t> view_length) {
  check_augment_views_args(x_in, params_in, fs);
  const int64_t L = checked_view_length(x_in, view_length);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), T = L;  // the seven steps run on views of L samples
  auto out = at::empty({2, B, C, L}, x.options());
  if (out.numel() == 0) return out;
  // The views' input: the crops of step 0 (one batch per view), or the record itself for both views.
  at::Tensor input = x;
  int64_t view_stride = 0;
  if (view_length.has_value()) {
    input = at::empty({2, B, C, L}, x.options());
    view_stride = B * C * L;
    constexpr int kCropThreads = 256;
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const int64_t crop_blocks = std::min<int64_t>((2 * B * C * L + kCropThreads - 1) / kCropThreads, sms * 32);
    crop_views_kernel<<<static_cast<unsigned>(crop_blocks), kCropThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), params.data_ptr<double>(), input.data_ptr<float>(), B, C, x.size(2), L);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const int64_t tiles = (2 * B * C + kLanes - 1) / kLanes;
  if (tiles == 0) return out;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t blocks = std::min<int64_t>(tiles, sms * kTilesPerSM);
  auto ext = at::empty({blocks * tile::Scratch::ext_size(T)}, x.options().dtype(at::kDouble));
  auto y = at::empty({blocks * tile::Scratch::y_size(T)}, x.options());
  const tile::Problem pb{input.data_ptr<float>(), view_stride, params.data_ptr<double>(), out.data_ptr<float>(),
                        B, C, T, fs};
  augment_views_kernel<<<static_cast<unsigned>(blocks), kLanes, 0, at::cuda::getCurrentCUDAStream()>>>(
      pb, ext.data_ptr<double>(), y.data_ptr<float>(), tiles);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) { m.impl("augment_views", &augment_views_cuda); }

}  // namespace ecgfast

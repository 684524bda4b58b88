// Plain CUDA BYOL loss: one warp per row reduces p.z, |p|^2, |z|^2; the
// per-row cosines are summed on the host side of the binding (N is small).
#include <cuda_runtime.h>
#include <cstdint>

namespace {

template <typename T>
__device__ void row_stats(const T* p, const T* z, int64_t D, double* pz, double* pp, double* zz) {
  double a = 0, b = 0, c = 0;
  for (int64_t d = threadIdx.x; d < D; d += 32) {
    a += static_cast<double>(p[d]) * z[d];
    b += static_cast<double>(p[d]) * p[d];
    c += static_cast<double>(z[d]) * z[d];
  }
  for (int off = 16; off > 0; off /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, off);
    b += __shfl_down_sync(0xffffffffu, b, off);
    c += __shfl_down_sync(0xffffffffu, c, off);
  }
  *pz = __shfl_sync(0xffffffffu, a, 0);
  *pp = __shfl_sync(0xffffffffu, b, 0);
  *zz = __shfl_sync(0xffffffffu, c, 0);
}

template <typename T>
__global__ void byol_forward(const T* p, const T* z, double* cos, int64_t N, int64_t D) {
  const int64_t i = blockIdx.x;
  if (i >= N) return;
  double pz, pp, zz;
  row_stats(p + i * D, z + i * D, D, &pz, &pp, &zz);
  if (threadIdx.x == 0) cos[i] = pz / (fmax(sqrt(pp), 1e-12) * fmax(sqrt(zz), 1e-12));
}

template <typename T>
__global__ void byol_backward(const T* p, const T* z, T* dp, T* dz, double g, int64_t N, int64_t D) {
  const int64_t i = blockIdx.x;
  if (i >= N) return;
  double pz, pp, zz;
  row_stats(p + i * D, z + i * D, D, &pz, &pp, &zz);
  const double ip = 1.0 / fmax(sqrt(pp), 1e-12), iz = 1.0 / fmax(sqrt(zz), 1e-12);
  const double c = pz * ip * iz, a = ip * iz, cp = c * ip * ip, cz = c * iz * iz;
  for (int64_t d = threadIdx.x; d < D; d += 32) {
    dp[i * D + d] = static_cast<T>(g * (z[i * D + d] * a - p[i * D + d] * cp));
    dz[i * D + d] = static_cast<T>(g * (p[i * D + d] * a - z[i * D + d] * cz));
  }
}

}  // namespace

// cos: N doubles (device). is_double selects float64, else float32.
extern "C" cudaError_t ecgfast_byol_forward_cuda(const void* p, const void* z, double* cos, int64_t N, int64_t D,
                                                 bool is_double, cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  if (is_double)
    byol_forward<<<N, 32, 0, stream>>>(static_cast<const double*>(p), static_cast<const double*>(z), cos, N, D);
  else
    byol_forward<<<N, 32, 0, stream>>>(static_cast<const float*>(p), static_cast<const float*>(z), cos, N, D);
  return cudaGetLastError();
}

// g = upstream gradient * (-2 / N).
extern "C" cudaError_t ecgfast_byol_backward_cuda(const void* p, const void* z, void* dp, void* dz, double g,
                                                  int64_t N, int64_t D, bool is_double, cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  if (is_double)
    byol_backward<<<N, 32, 0, stream>>>(static_cast<const double*>(p), static_cast<const double*>(z),
                                        static_cast<double*>(dp), static_cast<double*>(dz), g, N, D);
  else
    byol_backward<<<N, 32, 0, stream>>>(static_cast<const float*>(p), static_cast<const float*>(z),
                                        static_cast<float*>(dp), static_cast<float*>(dz), g, N, D);
  return cudaGetLastError();
}

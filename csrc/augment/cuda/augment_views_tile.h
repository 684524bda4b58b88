// The CUDA kernel's unit of work: a tile of 32 (view, sample, lead) rows, one
// per lane of a warp, each through the per-lead code of augment/augment_lead.h.
//
// Plain C++ like augment_lead.h: the warp is a template parameter, so the same
// code runs as the kernel (DeviceWarp: each thread is one lane, sync() is
// __syncwarp) and on the host (tests/cpp/test_augment_tile.cpp runs the lanes
// of each phase one after another, a valid schedule of the same program, and
// checks the result bit for bit against the per-lead code), so the tile layout
// and the transposes are tested without a GPU.
//
// Why tiles. One thread per row keeps the per-lead arithmetic (the band-pass
// is a serial recursion over time). But with each thread walking its own row,
// a warp's 32 accesses of one time step land in 32 rows T floats apart: 32
// memory transactions per instruction. The rows of a tile are therefore kept
// interleaved, [t][lane], in scratch memory: at each time step the warp touches
// 32 consecutive values. The input rows come in, and the output rows go out,
// through a 32 x 33 shared-memory transpose, so those global accesses run along
// time and coalesce too. Only the mixup/CutMix partners' rows are read per lane.
#pragma once
#include <cstdint>

#include "augment/augment_lead.h"

namespace ecgfast {
namespace augment {
namespace tile {

constexpr int kLanes = 32;

// Row i of a tile stored interleaved with the other lanes' rows: p[i * stride].
template <class V>
struct StridedRow {
  V* p;
  int64_t stride;
  ECG_HD V& operator[](int64_t i) const { return p[i * stride]; }
};

struct Problem {
  const float* x;        // the views' input, contiguous: (B, C, T) read by both views, or (2, B, C, T) the crops
  int64_t view_stride;   // elements from view 0's input batch to view 1's: 0, or B * C * T for the crops
  const double* params;  // (2, B, kNumParams), contiguous
  float* out;            // (2, B, C, T): row `item` = (view * B + sample) * C + lead at out + item * T
  int64_t B, C, T;
  double fs;
};

// One tile's scratch in global memory (one per resident block).
struct Scratch {
  double* ext;  // [T + 2 * kBandpassPad][kLanes] band-pass rows; before the band-pass, the x tile [T][kLanes] floats
  float* y;     // [T][kLanes] the rows being augmented
  ECG_HD static int64_t ext_size(int64_t T) { return (T + 2 * kBandpassPad) * kLanes; }
  ECG_HD static int64_t y_size(int64_t T) { return T * kLanes; }
};

// The tile's shared memory: the transpose buffer (33 columns: conflict-free both ways) and the input row of each lane.
struct Shared {
  float v[kLanes][kLanes + 1];
  int64_t row[kLanes];
};

// sigma * noise added along a row (the CPU kernel's add_hash_noise, for any row type).
struct AddHashNoise {
  template <class Y>
  ECG_HD void operator()(Y y, int T, uint32_t e0, uint32_t lo, uint32_t hi, float sigma) const {
    for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
  }
};

// for (LANES(w, lane)): every lane of the warp; on the device, the calling thread's lane only.
#define ECG_LANES(w, lane) int lane = (w).first(); lane < kLanes; lane += (w).step()

// Tile `tile` of the problem: rows item0 = tile * kLanes, ... (fewer in the last tile). Every lane of the
// warp must call it (sync() is a warp barrier): lanes without a row only help with the transposes.
template <class Warp>
ECG_HD void process_tile(const Warp& w, const Problem& pb, int64_t tile, const Scratch& s, Shared& sh) {
  const int64_t items = 2 * pb.B * pb.C, item0 = tile * kLanes;
  const int64_t rows = items - item0 < kLanes ? items - item0 : kLanes;
  const int T = static_cast<int>(pb.T);
  float* xt = reinterpret_cast<float*>(s.ext);

  // 0. Where each row's input is: sample (view * B + sample) % B, same lead, of the view's input batch.
  for (ECG_LANES(w, lane)) {
    if (lane < rows) {
      const int64_t item = item0 + lane, vb = item / pb.C;
      sh.row[lane] = (vb / pb.B) * pb.view_stride + ((vb % pb.B) * pb.C + item % pb.C) * pb.T;
    }
  }
  w.sync();
  // 1. Input rows -> x tile, 32 time steps at a time: read along time (lane = time step), write along lanes.
  for (int t0 = 0; t0 < T; t0 += kLanes) {
    for (ECG_LANES(w, lane)) {
      if (t0 + lane < T)
        for (int r = 0; r < rows; ++r) sh.v[r][lane] = pb.x[sh.row[r] + t0 + lane];
    }
    w.sync();
    for (ECG_LANES(w, lane)) {
      if (lane < rows)
        for (int i = 0; i < kLanes && t0 + i < T; ++i) xt[static_cast<int64_t>(t0 + i) * kLanes + lane] = sh.v[lane][i];
    }
    w.sync();
  }
  // 2. Frequency warp (or a copy): x tile -> y tile, each lane its own row.
  for (ECG_LANES(w, lane)) {
    if (lane < rows) {
      const double* p = pb.params + (item0 + lane) / pb.C * kNumParams;
      augment_lead_warp(StridedRow<const float>{xt + lane, kLanes}, StridedRow<float>{s.y + lane, kLanes}, T, p);
    }
  }
  w.sync();  // every lane is done with the x tile: the band-pass rows take its memory
  // 3. Steps 2-7 in place on the y tile; the partners' input rows are read directly.
  for (ECG_LANES(w, lane)) {
    if (lane < rows) {
      const int64_t item = item0 + lane, c = item % pb.C;
      const double* p = pb.params + item / pb.C * kNumParams;
      const double mix_d = p[kMixPartner], cut_d = p[kCutPartner];
      const double B = static_cast<double>(pb.B);
      w.check_partners(mix_d >= 0 && mix_d < B, cut_d >= 0 && cut_d < B);  // NaN fails both comparisons too
      const float* xv = pb.x + (item / pb.C / pb.B) * pb.view_stride;  // the view's input batch
      const float* mix = xv + (static_cast<int64_t>(mix_d) * pb.C + c) * pb.T;
      const float* cut = xv + (static_cast<int64_t>(cut_d) * pb.C + c) * pb.T;
      const StridedRow<float> y{s.y + lane, kLanes};
      if (p[kBpOn] != 0) bandpass(y, T, p, StridedRow<double>{s.ext + lane, kLanes});
      augment_lead_rest(mix, cut, y, T, static_cast<int>(c), pb.fs, p, /*wave=*/nullptr, AddHashNoise{});
    }
  }
  w.sync();
  // 4. y tile -> output rows: read along lanes, write along time.
  for (int t0 = 0; t0 < T; t0 += kLanes) {
    for (ECG_LANES(w, lane)) {
      if (lane < rows)
        for (int i = 0; i < kLanes && t0 + i < T; ++i) sh.v[i][lane] = s.y[static_cast<int64_t>(t0 + i) * kLanes + lane];
    }
    w.sync();
    for (ECG_LANES(w, lane)) {
      if (t0 + lane < T)
        for (int r = 0; r < rows; ++r) pb.out[(item0 + r) * pb.T + t0 + lane] = sh.v[lane][r];
    }
    w.sync();
  }
}

#undef ECG_LANES

}  // namespace tile
}  // namespace augment
}  // namespace ecgfast

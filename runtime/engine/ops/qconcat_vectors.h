// QConcat's whole-vector form for short outer steps (docs/runtime.md, "int8 data movement"): an
// output whose step (an NHWC pixel's channels) is shorter than 64 bytes is written 64 bytes at a
// time, each vector gathered from its inputs by VBMI byte permutes, instead of input by input and
// pixel by pixel (BlazeFace's channel pads: 24 channels and 4 zero points per pixel). qconcat.cc
// picks it where one input is gathered and the rest are fills, where it measured faster.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace axstream::engine {

// One input of a QConcat as its kernels see it.
struct ConcatPart {
  enum class Kind { copy, lookup, fill } kind = Kind::copy;
  int64_t bytes = 0;   // per outer step, in the input and in the output
  int64_t offset = 0;  // where its run starts in the output's step
  uint8_t fill_byte = 0;
  uint8_t flip = 0;  // lookup: the table is indexed by x ^ flip (0x80 for int8 x)
  std::array<uint8_t, 256> table{};
};

// Outer steps of fewer bytes take the whole-vector form (where the CPU has VBMI); longer ones,
// whose runs are a few 64-byte moves each already, are written input by input.
constexpr int64_t kConcatVectorStepBytes = 64;

// Whether the whole-vector form may run: AVX-512 VBMI (cpu_features.h, under oneDNN's ISA cap)
// and AXSTREAM_ENGINE_QCONCAT_VECTOR not 0 (0 keeps the input-by-input form; the same bytes).
// Read at each compile.
bool concat_vectors_allowed();

// The output is a run of out_bytes per outer step, so its byte pattern repeats every
// lcm(out_bytes, 64) bytes: that many / 64 output vectors (phases), steps_per_period() steps.
// Per phase the constructor precomputes, for each input with bytes there, where its bytes
// start in the input (relative to the period's) and the permute index and lane mask that put
// them in place; fills are preset in the phase's vector. The lookup tables are applied to the
// loaded input bytes (a lookup commutes with a permute).
class ConcatVectors {
 public:
  // One input's bytes in one phase's vector.
  struct Gather {
    alignas(64) std::array<uint8_t, 64> index{};  // lane j takes the loaded byte index[j]
    uint64_t lanes = 0;                           // the lanes this input writes
    int64_t input_offset = 0;  // first byte loaded, from the input's start of the period
    int part = 0;
  };

  // At most this many inputs (a QConcat with more is written input by input).
  static constexpr size_t kMaxInputs = 16;

  // parts: the QConcat's inputs in order (their offsets consecutive), out_bytes their sum,
  // 1..kConcatVectorStepBytes - 1; 1..kMaxInputs of them.
  ConcatVectors(const std::vector<ConcatPart> &parts, int64_t out_bytes);

  // Outer steps [first, first + steps) of y, of `outer` in all (the inputs' ends bound the
  // loads); first a multiple of steps_per_period(). Needs VBMI (concat_vectors_allowed()).
  void run(const void *const *in, uint8_t *y, int64_t outer, int64_t first, int64_t steps) const;

  int64_t steps_per_period() const { return steps_per_period_; }

  // Public so that a test can spoil an index and see its checks catch it.
  std::vector<Gather> gathers;  // phase by phase, phase_begin_[p] .. phase_begin_[p + 1]

 private:
  struct Input {
    int64_t bytes = 0;         // per outer step
    int64_t period_bytes = 0;  // per period: steps_per_period_ * bytes
    bool lookup = false, fill = false;
    alignas(64) std::array<uint8_t, 256> table{};  // indexed by the byte itself (flip applied)
  };
  struct alignas(64) Preset {
    std::array<uint8_t, 64> bytes{};
  };
  int64_t out_bytes_ = 0, steps_per_period_ = 0, phases_ = 0;
  std::vector<Input> inputs_;
  std::vector<Preset> presets_;  // per phase: the fill bytes in their lanes
  std::vector<int64_t> phase_begin_;
  int held_ = -1;    // the first requantised input: its table is held in registers
  int single_ = -1;  // the one input gathered, where only one is (and its table held)

  friend struct ConcatVectorsKernel;  // qconcat_vectors.cc: the AVX-512 code
};

}  // namespace axstream::engine

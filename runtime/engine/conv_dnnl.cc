#include "conv_dnnl.h"

#include <cstdlib>
#include <dnnl.hpp>

#include "compiler.h"

namespace axstream::engine {

bool dnnl_kernels_enabled() {
  // Read at each compile so tests can build reference and oneDNN programs side by side.
  const char *env = std::getenv("AXSTREAM_ENGINE_REFERENCE");
  return !(env && std::string(env) == "1");
}

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims dims_of(const Shape &s) { return memory::dims(s.begin(), s.end()); }

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

dnnl::post_ops activation_post_ops(const FusedActivation &act) {
  dnnl::post_ops ops;
  if (act.kind == FusedActivation::Kind::relu)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  else if (act.kind == FusedActivation::Kind::clip)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, act.lo, act.hi);
  return ops;
}

// Runs a convolution primitive between plain NCHW caller buffers, reordering the activations
// into the primitive's preferred layout when it chose a blocked one.
class DnnlConvKernel : public Kernel {
 public:
  DnnlConvKernel(dnnl::convolution_forward::primitive_desc pd, memory::desc user_src,
                 memory::desc user_dst, std::shared_ptr<memory> weights,
                 std::shared_ptr<memory> bias)
      : pd_(pd),
        conv_(pd),
        user_src_(user_src),
        user_dst_(user_dst),
        weights_(std::move(weights)),
        bias_(std::move(bias)) {
    auto &eng = cpu_engine();
    src_reorder_needed_ = pd.src_desc() != user_src;
    dst_reorder_needed_ = pd.dst_desc() != user_dst;
    if (src_reorder_needed_)
      src_reorder_ =
          dnnl::reorder(dnnl::reorder::primitive_desc(eng, user_src, eng, pd.src_desc()));
    if (dst_reorder_needed_)
      dst_reorder_ =
          dnnl::reorder(dnnl::reorder::primitive_desc(eng, pd.dst_desc(), eng, user_dst));
    pad_offset_ = align64(pd.scratchpad_desc().get_size());
    dst_offset_ = pad_offset_ + (src_reorder_needed_ ? align64(pd.src_desc().get_size()) : 0);
    scratch_bytes = dst_offset_ + (dst_reorder_needed_ ? align64(pd.dst_desc().get_size()) : 0);
  }

  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    auto &eng = *ctx.engine;
    auto *scratch = static_cast<uint8_t *>(ctx.scratch);
    memory user_src(user_src_, eng, const_cast<void *>(in[0]));
    memory user_dst(user_dst_, eng, out[0]);
    memory src = user_src, dst = user_dst;
    if (src_reorder_needed_) {
      src = memory(pd_.src_desc(), eng, scratch + pad_offset_);
      src_reorder_.execute(*ctx.stream, user_src, src);
    }
    if (dst_reorder_needed_) dst = memory(pd_.dst_desc(), eng, scratch + dst_offset_);
    memory pad(pd_.scratchpad_desc(), eng, scratch);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, *weights_},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, pad}};
    if (bias_) args.insert({DNNL_ARG_BIAS, *bias_});
    conv_.execute(*ctx.stream, args);
    if (dst_reorder_needed_) dst_reorder_.execute(*ctx.stream, dst, user_dst);
    ctx.stream->wait();
  }

 private:
  dnnl::convolution_forward::primitive_desc pd_;
  dnnl::convolution_forward conv_;
  memory::desc user_src_, user_dst_;
  std::shared_ptr<memory> weights_, bias_;
  bool src_reorder_needed_ = false, dst_reorder_needed_ = false;
  dnnl::reorder src_reorder_, dst_reorder_;
  size_t pad_offset_ = 0, dst_offset_ = 0;
};

}  // namespace

std::unique_ptr<Kernel> make_dnnl_conv_f32(const DnnlConvParams &p, const Tensor &weights,
                                           const Tensor *bias) {
  if (!dnnl_kernels_enabled()) return nullptr;
  try {
    auto &eng = cpu_engine();
    memory::desc user_src(dims_of(p.src), dt::f32, tag::nchw);
    memory::desc user_dst(dims_of(p.dst), dt::f32, tag::nchw);
    Shape wshape = p.weights;
    tag wtag = tag::oihw;
    if (p.group > 1) {
      wshape = {p.group, p.weights[0] / p.group, p.weights[1], p.weights[2], p.weights[3]};
      wtag = tag::goihw;
    }
    memory::desc user_w(dims_of(wshape), dt::f32, wtag);
    memory::desc any_src(dims_of(p.src), dt::f32, tag::any);
    memory::desc any_dst(dims_of(p.dst), dt::f32, tag::any);
    memory::desc any_w(dims_of(wshape), dt::f32, tag::any);
    memory::desc bias_md({p.weights[0]}, dt::f32, tag::x);
    memory::dims dil = {p.dilation[0] - 1, p.dilation[1] - 1};
    auto desc = bias ? dnnl::convolution_forward::desc(
                           dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                           any_src, any_w, bias_md, any_dst, dims_of(p.stride), dil,
                           dims_of(p.pad_begin), dims_of(p.pad_end))
                     : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::convolution_direct, any_src,
                                                       any_w, any_dst, dims_of(p.stride), dil,
                                                       dims_of(p.pad_begin), dims_of(p.pad_end));
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(activation_post_ops(p.activation));
    dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);
    dnnl::stream stream(eng);
    memory user_w_mem(user_w, eng, const_cast<uint8_t *>(weights.bytes.data()));
    auto w_mem = std::make_shared<memory>(pd.weights_desc(), eng);
    dnnl::reorder(user_w_mem, *w_mem).execute(stream, user_w_mem, *w_mem);
    std::shared_ptr<memory> b_mem;
    if (bias) {
      b_mem = std::make_shared<memory>(bias_md, eng);
      std::memcpy(b_mem->get_data_handle(), bias->bytes.data(), bias->bytes.size());
    }
    stream.wait();
    return std::make_unique<DnnlConvKernel>(pd, user_src, user_dst, w_mem, b_mem);
  } catch (const dnnl::error &) {
    return nullptr;  // no oneDNN implementation: the reference kernel runs instead
  }
}

}  // namespace axstream::engine

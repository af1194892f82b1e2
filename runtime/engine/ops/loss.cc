// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: float32 scores (N, C, d1, ...), int32 or
// int64 targets (N, d1, ...), optional class weights (C), ignore_index, reductions none/sum/mean.
#include "common.h"
#include "softmax.h"

namespace axstream::engine {
namespace {

enum class Reduction { none, sum, mean };

// What both losses share once the scores are log-probabilities.
struct NllPlan {
  int64_t batch = 0, classes = 0, inner = 0;  // inner: d1 * d2 * ...
  Reduction reduction = Reduction::mean;
  bool has_ignore_index = false;
  int64_t ignore_index = 0;
  bool has_weight = false;
  DType target_dtype = DType::i64;
  std::string where;
};

// Checks the scores (input 0), target (1) and weight (2) and sets output 0: the per-item losses
// (the target's shape) for reduction none, a scalar otherwise.
NllPlan plan_nll(OpContext &ctx, const char *scores_name) {
  ctx.expect_inputs(2, 3);
  const Shape &scores = ctx.in_shape(0), &target = ctx.in_shape(1);
  if (scores.size() < 2)
    ctx.fail(std::string(scores_name) + " must be (N, C, d1, ...), got " + shape_str(scores));
  Shape expected_target = scores;
  expected_target.erase(expected_target.begin() + 1);
  if (target != expected_target)
    ctx.fail("target shape " + shape_str(target) + " does not match " + scores_name + " " +
             shape_str(scores) + ": expected " + shape_str(expected_target));
  NllPlan p;
  p.target_dtype = ctx.in_dtype(1);
  if (p.target_dtype != DType::i32 && p.target_dtype != DType::i64)
    ctx.fail(std::string("target is ") + dtype_name(p.target_dtype) + ", expected int32 or int64");
  p.has_weight = ctx.has_input(2);
  if (p.has_weight && ctx.in_shape(2) != Shape{scores[1]})
    ctx.fail("weight shape " + shape_str(ctx.in_shape(2)) + " is not (" +
             std::to_string(scores[1]) + "), one weight per class");
  std::string reduction = ctx.attr_s("reduction", "mean");
  if (reduction == "none")
    p.reduction = Reduction::none;
  else if (reduction == "sum")
    p.reduction = Reduction::sum;
  else if (reduction != "mean")
    ctx.fail("reduction '" + reduction + "' is not one of none, sum, mean");
  p.has_ignore_index = ctx.has_attr("ignore_index");
  p.ignore_index = ctx.attr_i("ignore_index", 0);
  p.batch = scores[0];
  p.classes = scores[1];
  p.inner = product(scores, 2, scores.size());
  p.where = ctx.where();
  ctx.set_output(0, DType::f32, p.reduction == Reduction::none ? target : Shape{});
  if (!ctx.infer_only()) {
    if (ctx.in_dtype(0) != DType::f32)
      ctx.unsupported(std::string(scores_name) + " of type " + dtype_name(ctx.in_dtype(0)) +
                      " (float32 only)");
    if (p.has_weight && ctx.in_dtype(2) != DType::f32)
      ctx.fail(std::string("weight is ") + dtype_name(ctx.in_dtype(2)) + ", expected float32");
  }
  return p;
}

// ONNX's loss: item i of class t = target[i] loses -log_prob[t] * weight[t]; an item whose target
// is ignore_index loses 0 and weighs 0; mean divides the sum by the sum of the weights applied
// (the count of items kept, without weights).
template <typename Index>
void nll(const NllPlan &p, const float *log_prob, const Index *target, const float *weight,
         float *loss) {
  double loss_sum = 0, weight_sum = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    const float *scores = log_prob + b * p.classes * p.inner;
    for (int64_t j = 0; j < p.inner; ++j) {
      int64_t item = b * p.inner + j;
      int64_t t = static_cast<int64_t>(target[item]);
      float item_loss = 0.f, item_weight = 0.f;
      if (!p.has_ignore_index || t != p.ignore_index) {
        if (t < 0 || t >= p.classes)
          throw InvalidArgument(
              p.where + ": target[" + std::to_string(item) + "] = " + std::to_string(t) +
              " is not a class in [0, " + std::to_string(p.classes) + ")" +
              (p.has_ignore_index ? " nor ignore_index " + std::to_string(p.ignore_index)
                                  : std::string()));
        item_weight = weight ? weight[t] : 1.f;
        item_loss = -scores[t * p.inner + j] * item_weight;
      }
      if (p.reduction == Reduction::none) {
        loss[item] = item_loss;
      } else {
        loss_sum += item_loss;
        weight_sum += item_weight;
      }
    }
  }
  // Mean over no kept item is 0 / 0: NaN, as ONNX's reference computes it.
  if (p.reduction == Reduction::sum) loss[0] = static_cast<float>(loss_sum);
  if (p.reduction == Reduction::mean) loss[0] = static_cast<float>(loss_sum / weight_sum);
}

void nll_any_target(const NllPlan &p, const float *log_prob, const void *target,
                    const float *weight, float *loss) {
  if (p.target_dtype == DType::i32)
    nll(p, log_prob, static_cast<const int32_t *>(target), weight, loss);
  else
    nll(p, log_prob, static_cast<const int64_t *>(target), weight, loss);
}

std::unique_ptr<Kernel> compile_nll_loss(OpContext &ctx) {
  NllPlan p = plan_nll(ctx, "input");
  if (ctx.infer_only()) return nullptr;
  auto k = make_kernel([p](ExecContext &, const void *const *in, void *const *out) {
    nll_any_target(p, static_cast<const float *>(in[0]), in[1],
                   p.has_weight ? static_cast<const float *>(in[2]) : nullptr,
                   static_cast<float *>(out[0]));
  });
  k->macs = static_cast<uint64_t>(p.batch * p.inner);
  return k;
}

// The loss of log_softmax(scores) over the class axis; the log-probabilities are output 1 when
// the node asks for them, scratch otherwise.
std::unique_ptr<Kernel> compile_softmax_cross_entropy(OpContext &ctx) {
  NllPlan p = plan_nll(ctx, "scores");
  bool log_prob_output = ctx.output_count() > 1;
  if (log_prob_output) ctx.set_output(1, DType::f32, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  auto k = make_kernel([p, log_prob_output](ExecContext &ec, const void *const *in,
                                            void *const *out) {
    float *log_prob =
        log_prob_output ? static_cast<float *>(out[1]) : static_cast<float *>(ec.scratch);
    softmax_groups<SoftmaxKind::log_softmax>(static_cast<const float *>(in[0]), log_prob, p.batch,
                                             p.classes, p.inner);
    nll_any_target(p, log_prob, in[1], p.has_weight ? static_cast<const float *>(in[2]) : nullptr,
                   static_cast<float *>(out[0]));
  });
  int64_t scores = p.batch * p.classes * p.inner;
  if (!log_prob_output) k->scratch_bytes = static_cast<size_t>(scores) * sizeof(float);
  k->macs = static_cast<uint64_t>(scores * 4 + p.batch * p.inner);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(NegativeLogLikelihoodLoss, "NegativeLogLikelihoodLoss", 12, 17, compile_nll_loss)
AXSTREAM_ENGINE_OP(SoftmaxCrossEntropyLoss, "SoftmaxCrossEntropyLoss", 12, 17,
                   compile_softmax_cross_entropy)

}  // namespace axstream::engine

// NonMaxSuppression (opsets 10-17), as onnx's reference implementation runs it: per batch and
// class, boxes scoring above score_threshold in descending score (ties: lower box index first),
// each kept unless its IoU with a box kept before in that class is above iou_threshold, at most
// max_output_boxes_per_class per class. Its output, (selected, 3) int64 rows of (batch, class,
// box), has as many rows as boxes survive: an upper-bound output (OpContext::
// set_output_upper_bound) of batches x classes x min(max_output_boxes_per_class, boxes) rows.
#include <algorithm>
#include <cmath>

#include "common.h"

namespace axstream::engine {
namespace {

// A box as the reference reads it: per axis its two edges, ordered for corner boxes (flipped
// corners are the same box) and taken as given for centre boxes (a negative width has no area).
struct BoxEdges {
  float x_min, x_max, y_min, y_max;
  float area() const { return (x_max - x_min) * (y_max - y_min); }
};

BoxEdges box_edges(const float *box, bool center_point_box) {
  if (center_point_box) {
    const float half_width = box[2] / 2, half_height = box[3] / 2;
    return {box[0] - half_width, box[0] + half_width, box[1] - half_height, box[1] + half_height};
  }
  // [y1, x1, y2, x2]
  return {std::min(box[1], box[3]), std::max(box[1], box[3]), std::min(box[0], box[2]),
          std::max(box[0], box[2])};
}

// The reference's suppress_by_iou: boxes that do not overlap, or either without area, never
// suppress each other; otherwise IoU strictly above the threshold does.
bool suppresses(const BoxEdges &a, const BoxEdges &b, float iou_threshold) {
  const float x_min = std::max(a.x_min, b.x_min), x_max = std::min(a.x_max, b.x_max);
  if (x_max <= x_min) return false;
  const float y_min = std::max(a.y_min, b.y_min), y_max = std::min(a.y_max, b.y_max);
  if (y_max <= y_min) return false;
  const float intersection = (x_max - x_min) * (y_max - y_min);
  if (intersection <= 0) return false;
  const float area_a = a.area(), area_b = b.area();
  const float union_area = area_a + area_b - intersection;
  if (area_a <= 0 || area_b <= 0 || union_area <= 0) return false;
  return intersection / union_area > iou_threshold;
}

// An optional one-value input: absent or empty means "not given".
void expect_optional_scalar(OpContext &ctx, size_t i, DType dtype, const char *what) {
  if (!ctx.has_input(i)) return;
  if (ctx.in_dtype(i) != dtype)
    ctx.fail(std::string("input ") + std::to_string(i) + " (" + what + ") must be " +
             dtype_name(dtype) + ", got " + dtype_name(ctx.in_dtype(i)));
  const int64_t count = checked_element_count(ctx.in_shape(i), what);
  if (count > 1)
    ctx.fail(std::string("input ") + std::to_string(i) + " (" + what +
             ") must hold one value, got shape " + shape_str(ctx.in_shape(i)));
}

std::unique_ptr<Kernel> compile_non_max_suppression(OpContext &ctx) {
  ctx.expect_inputs(2, 5);
  const Shape &boxes_shape = ctx.in_shape(0), &scores_shape = ctx.in_shape(1);
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported(std::string("boxes and scores must be float32, got ") +
                    dtype_name(ctx.in_dtype(0)) + " and " + dtype_name(ctx.in_dtype(1)));
  if (boxes_shape.size() != 3 || boxes_shape[2] != 4)
    ctx.fail("boxes must be (batches, boxes, 4), got " + shape_str(boxes_shape));
  if (scores_shape.size() != 3 || scores_shape[0] != boxes_shape[0] ||
      scores_shape[2] != boxes_shape[1])
    ctx.fail("scores must be (batches, classes, boxes) = (" + std::to_string(boxes_shape[0]) +
             ", classes, " + std::to_string(boxes_shape[1]) + ") for boxes " +
             shape_str(boxes_shape) + ", got " + shape_str(scores_shape));
  expect_optional_scalar(ctx, 2, DType::i64, "max_output_boxes_per_class");
  expect_optional_scalar(ctx, 3, DType::f32, "iou_threshold");
  expect_optional_scalar(ctx, 4, DType::f32, "score_threshold");
  const int64_t center_point_box = ctx.attr_i("center_point_box", 0);
  if (center_point_box != 0 && center_point_box != 1)
    ctx.fail("center_point_box must be 0 or 1, got " + std::to_string(center_point_box));

  const int64_t batches = boxes_shape[0], classes = scores_shape[1], boxes = boxes_shape[1];
  // A constant limit bounds the rows tighter than the box count.
  int64_t per_class_bound = boxes;
  if (const Tensor *limit = ctx.constant(2))
    per_class_bound = limit->count() == 0 ? 0 : std::clamp<int64_t>(limit->as_int(0), 0, boxes);
  const int64_t max_rows =
      checked_element_count({batches, classes, per_class_bound}, ctx.label() + " output");
  ctx.set_output_upper_bound(0, DType::i64, {max_rows, 3});
  if (ctx.infer_only()) return nullptr;

  const bool has_limit = ctx.has_input(2) && checked_element_count(ctx.in_shape(2), "") == 1;
  const bool has_iou = ctx.has_input(3) && checked_element_count(ctx.in_shape(3), "") == 1;
  const bool has_score = ctx.has_input(4) && checked_element_count(ctx.in_shape(4), "") == 1;
  const std::string where = ctx.where();
  return make_kernel([=](ExecContext &exec, const void *const *in, void *const *out) {
    const auto *box_data = static_cast<const float *>(in[0]);
    const auto *score_data = static_cast<const float *>(in[1]);
    const int64_t limit =
        has_limit ? std::clamp<int64_t>(static_cast<const int64_t *>(in[2])[0], 0, boxes) : 0;
    const float iou_threshold = has_iou ? static_cast<const float *>(in[3])[0] : 0.0f;
    const float score_threshold = has_score ? static_cast<const float *>(in[4])[0] : 0.0f;
    if (!(iou_threshold >= 0.0f && iou_threshold <= 1.0f))
      throw InvalidArgument(where + ": iou_threshold " + std::to_string(iou_threshold) +
                            " is outside [0, 1]");
    auto *rows = static_cast<int64_t *>(out[0]);
    int64_t row_count = 0;
    std::vector<BoxEdges> edges(static_cast<size_t>(boxes));
    std::vector<int64_t> candidates, kept;
    candidates.reserve(static_cast<size_t>(boxes));
    kept.reserve(static_cast<size_t>(limit));
    for (int64_t b = 0; b < batches && limit > 0; ++b) {
      for (int64_t i = 0; i < boxes; ++i)
        edges[static_cast<size_t>(i)] = box_edges(box_data + (b * boxes + i) * 4, center_point_box);
      for (int64_t c = 0; c < classes; ++c) {
        const float *scores = score_data + (b * classes + c) * boxes;
        candidates.clear();
        // A NaN score ranks against nothing, so it is never a candidate (with a threshold the
        // reference drops it too: NaN > threshold is false).
        for (int64_t i = 0; i < boxes; ++i)
          if (!std::isnan(scores[i]) && (!has_score || scores[i] > score_threshold))
            candidates.push_back(i);
        std::stable_sort(candidates.begin(), candidates.end(),
                         [scores](int64_t x, int64_t y) { return scores[x] > scores[y]; });
        kept.clear();
        for (int64_t i : candidates) {
          if (static_cast<int64_t>(kept.size()) >= limit) break;
          const BoxEdges &box = edges[static_cast<size_t>(i)];
          bool suppressed = false;
          for (int64_t k : kept)
            if (suppresses(box, edges[static_cast<size_t>(k)], iou_threshold)) {
              suppressed = true;
              break;
            }
          if (suppressed) continue;
          kept.push_back(i);
          rows[row_count * 3] = b;
          rows[row_count * 3 + 1] = c;
          rows[row_count * 3 + 2] = i;
          ++row_count;
        }
      }
    }
    exec.output_shapes[0] = {row_count, 3};
  });
}

}  // namespace

AXSTREAM_ENGINE_OP(NonMaxSuppression, "NonMaxSuppression", 10, 17, compile_non_max_suppression)

}  // namespace axstream::engine

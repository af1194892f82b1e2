#include "axstream/decoders/nms.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <unordered_map>

namespace axstream::decoders {

float iou(const Box &a, const Box &b) {
  const float ix0 = std::max(a.x0, b.x0), iy0 = std::max(a.y0, b.y0);
  const float ix1 = std::min(a.x1, b.x1), iy1 = std::min(a.y1, b.y1);
  const float intersection = Box{ix0, iy0, ix1, iy1}.area();
  const float united = a.area() + b.area() - intersection;
  return united > 0 ? intersection / united : 0.0f;
}

static void sort_best_first(std::vector<Detection> &detections) {
  std::stable_sort(detections.begin(), detections.end(),
                   [](const Detection &a, const Detection &b) { return a.score > b.score; });
}

std::vector<Detection> nms(std::vector<Detection> detections, float iou_threshold,
                           int max_detections, bool class_agnostic) {
  // Best first from a heap of indices instead of sorting every candidate: an untrained model or a
  // low threshold gives tens of thousands of candidates (25200 for yolov5 at 640x640) of which
  // only the first few hundred are looked at before max_detections are kept. Ties go to the
  // earlier candidate, the order a stable sort by score gives.
  std::vector<uint32_t> heap(detections.size());
  std::iota(heap.begin(), heap.end(), 0u);
  const auto ranks_below = [&](uint32_t a, uint32_t b) {
    const float score_a = detections[a].score, score_b = detections[b].score;
    return score_a < score_b || (!(score_b < score_a) && a > b);
  };
  std::make_heap(heap.begin(), heap.end(), ranks_below);
  // Kept boxes by class (one bucket when class_agnostic): a candidate is compared only with the
  // boxes that can suppress it.
  std::unordered_map<int, std::vector<Box>> kept_boxes;
  std::vector<Detection> kept;
  for (auto heap_end = heap.end(); heap_end != heap.begin(); --heap_end) {
    if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
    std::pop_heap(heap.begin(), heap_end, ranks_below);
    Detection &candidate = detections[*(heap_end - 1)];
    std::vector<Box> &rivals = kept_boxes[class_agnostic ? 0 : candidate.class_id];
    const bool suppressed = std::any_of(rivals.begin(), rivals.end(), [&](const Box &k) {
      return iou(k, candidate.box) > iou_threshold;
    });
    if (suppressed) continue;
    rivals.push_back(candidate.box);
    kept.push_back(std::move(candidate));
  }
  return kept;
}

std::vector<Detection> weighted_nms(std::vector<Detection> detections, float iou_threshold,
                                    int max_detections) {
  sort_best_first(detections);
  std::vector<bool> used(detections.size(), false);
  std::vector<Detection> kept;
  for (size_t i = 0; i < detections.size(); ++i) {
    if (used[i]) continue;
    if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
    const Detection &best = detections[i];
    Detection merged = best;
    double weight_sum = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    std::vector<double> keypoint_sums(best.keypoints.size() * 2, 0.0);
    for (size_t j = i; j < detections.size(); ++j) {
      if (used[j] || (j != i && iou(best.box, detections[j].box) <= iou_threshold)) continue;
      const Detection &member = detections[j];
      used[j] = true;
      const double w = member.score;
      weight_sum += w;
      x0 += w * member.box.x0;
      y0 += w * member.box.y0;
      x1 += w * member.box.x1;
      y1 += w * member.box.y1;
      for (size_t k = 0; k < member.keypoints.size() && k < best.keypoints.size(); ++k) {
        keypoint_sums[2 * k] += w * member.keypoints[k].x;
        keypoint_sums[2 * k + 1] += w * member.keypoints[k].y;
      }
    }
    if (weight_sum > 0) {
      merged.box = {static_cast<float>(x0 / weight_sum), static_cast<float>(y0 / weight_sum),
                    static_cast<float>(x1 / weight_sum), static_cast<float>(y1 / weight_sum)};
      for (size_t k = 0; k < merged.keypoints.size(); ++k)
        merged.keypoints[k] = {static_cast<float>(keypoint_sums[2 * k] / weight_sum),
                               static_cast<float>(keypoint_sums[2 * k + 1] / weight_sum)};
    }
    kept.push_back(std::move(merged));
  }
  return kept;
}

}  // namespace axstream::decoders

// Non-maximum suppression over detections: the greedy form (YOLO, SSD) and MediaPipe's weighted
// form (BlazeFace), where each kept box is the score-weighted mean of the boxes it suppresses.
#pragma once

#include <vector>

#include "axstream/decoders/types.h"

namespace axstream::decoders {

// Intersection over union of two boxes; 0 when either is empty.
float iou(const Box &a, const Box &b);

// Greedy NMS: best first, drops boxes with IoU > iou_threshold against a kept box of the same
// class (all classes together when class_agnostic). Keeps at most max_detections (<=0: all).
std::vector<Detection> nms(std::vector<Detection> detections, float iou_threshold,
                           int max_detections, bool class_agnostic = false);

// Weighted NMS: best first, every remaining box with IoU > iou_threshold joins the cluster; the
// output box (and keypoints) is the score-weighted mean of the cluster, score the best one.
std::vector<Detection> weighted_nms(std::vector<Detection> detections, float iou_threshold,
                                    int max_detections);

}  // namespace axstream::decoders

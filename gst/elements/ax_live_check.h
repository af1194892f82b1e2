// When a stream that may never end (a live source: v4l2src, rtspsrc, videotestsrc is-live=true)
// has run long enough for the elements' end-of-stream checks ("decoded nothing", "object-class
// never selected anything") to be decided without its EOS.
#pragma once

#include <gst/gst.h>

namespace axstream::gst {

// Not thread-safe: each element calls it from its streaming thread or under its own lock.
class LiveCheck {
 public:
  // A stream is judged after this many frames, or this much stream time between the first
  // frame's timestamp and a later one's (a 1 fps camera would take minutes for the frames),
  // whichever comes first.
  static constexpr guint64 kFrames = 300;
  static constexpr GstClockTime kStreamTime = 10 * GST_SECOND;

  // Counts one frame; true once per stream (until reset()): on the frame at which either bound
  // is first reached.
  bool due(const GstBuffer *buffer) {
    if (done_) return false;
    ++frames_;
    const GstClockTime pts = GST_BUFFER_PTS(buffer);
    if (GST_CLOCK_TIME_IS_VALID(pts) && !GST_CLOCK_TIME_IS_VALID(first_pts_)) first_pts_ = pts;
    const bool long_enough = GST_CLOCK_TIME_IS_VALID(pts) && GST_CLOCK_TIME_IS_VALID(first_pts_) &&
                             pts >= first_pts_ && pts - first_pts_ >= kStreamTime;
    done_ = frames_ >= kFrames || long_enough;
    return done_;
  }
  // Whether due() returned true in this stream.
  bool done() const { return done_; }
  guint64 frames() const { return frames_; }
  // A new stream (the element's start, or after an EOS): counted from its first frame again.
  // A flush (a seek) is not one: the stream's frames so far still count.
  void reset() {
    frames_ = 0;
    first_pts_ = GST_CLOCK_TIME_NONE;
    done_ = false;
  }

 private:
  guint64 frames_ = 0;
  GstClockTime first_pts_ = GST_CLOCK_TIME_NONE;
  bool done_ = false;
};

}  // namespace axstream::gst

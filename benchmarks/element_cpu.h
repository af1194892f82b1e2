// Per-element CPU time inside a running pipeline, from GStreamer's tracer hooks: each thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID) between two pad pushes is charged to the element that was
// running then, so an element's figure is its own work in every thread that runs it, without
// what downstream elements do inside its push.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace axstream::bench {

// Installs the hooks (once per process, after gst_init and before the pipeline runs). The figures
// are keyed by element kind: "source" and "sink" (elements flagged as such) or the factory name
// ("axpreprocess", "axinference", "axdecode"); several elements of one kind add up. What runs in
// a thread whose name starts with one of `group_threads` is keyed "kind@prefix" instead (e.g.
// "axdecode@axinf-": axdecode in axinference's threads), so a caller can count those threads
// whole and still see what each element took in them.
void start_element_cpu(const std::vector<std::string> &group_threads = {});

// Seconds of CPU charged to each element kind so far (empty before start_element_cpu()).
std::map<std::string, double> element_cpu_seconds();

}  // namespace axstream::bench

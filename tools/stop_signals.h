// Ctrl-C and SIGTERM for the command-line tools (axrun, axcompile): the first signal is only
// recorded, so the tool stops at its next check with its cores released and no partial output
// left, and exits 128 + signal; the handler then resets, so a second signal ends it at once.
#pragma once

#include <atomic>
#include <csignal>

namespace axstream::tools {

// The signal (SIGINT, SIGTERM) that asked the tool to stop, 0 until one did. Global because a
// signal handler reaches nothing else.
inline std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "a signal handler may only store lock-free");

extern "C" inline void on_stop_signal(int signal) { g_stop_signal.store(signal); }

inline void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM}) {
    // An ignored signal stays ignored: a shell starts background jobs with SIGINT ignored, so
    // that a Ctrl-C meant for the foreground does not stop them.
    struct sigaction previous {};
    if (sigaction(signal, nullptr, &previous) == 0 && previous.sa_handler == SIG_IGN) continue;
    sigaction(signal, &action, nullptr);
  }
}

// Thrown out of the work once a signal was recorded; main reports it and exits 128 + signal.
struct Interrupted {
  int signal;
};

inline void stop_if_signalled() {
  if (int signal = g_stop_signal.load()) throw Interrupted{signal};
}

// "SIGINT (Ctrl-C)" or "SIGTERM", for the tool's "interrupted by ..." line.
inline const char *stop_signal_name(int signal) {
  return signal == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM";
}

}  // namespace axstream::tools

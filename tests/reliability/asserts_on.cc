// Fails when the sanitized build compiles assert() out: scripts/sanitize.sh configures build-asan
// with -Db_ndebug=false because Meson's default (b_ndebug=if-release) defines NDEBUG for buildtype
// plain, and the sanitized stage is where an assert should fire (docs/reliability.md, Sanitizers).
#include <cstdio>

int main() {
#ifdef NDEBUG
  std::fputs(
      "NDEBUG is defined in this sanitized build, so assert() is compiled out: configure it with "
      "-Db_ndebug=false (scripts/sanitize.sh), or `meson configure BUILD -Db_ndebug=false`\n",
      stderr);
  return 1;
#else
  std::puts("assert() is on (NDEBUG undefined)");
  return 0;
#endif
}

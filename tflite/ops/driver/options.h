// The driver's command-line options (main.cc parses them), read by every mode.
#pragma once

#include <cstdint>

namespace ccdrv {

struct Options {
  uint64_t seed = 1;
  long only = -1;
  const char* progress = nullptr;
  bool strict_nan = false;
  bool verbose = false;
  int reps = 20;
};
extern Options g_opt;

}  // namespace ccdrv

// SPDX-License-Identifier: MIT
// How the fuzzer reports a broken promise: a message naming the promise,
// then abort(), which libFuzzer and the corpus replay both count as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

// The message is a printf format; the arguments say which object failed.
#define FUZZ_CHECK(condition, ...)                                                           \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "context_fuzzer: broken promise at %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                                                     \
      std::fprintf(stderr, "\n");                                                            \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

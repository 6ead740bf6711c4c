// SPDX-License-Identifier: MIT
// The libFuzzer entry point: each input is one program run against a fresh
// context and checked against the reference model (context_driver.h). The
// same function is linked into the corpus replay of the normal test suite.
#include <cstddef>
#include <cstdint>

#include "context_driver.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  aioloop::fuzz::FuzzInput input(data, size);
  aioloop::fuzz::ContextDriver driver(input);
  driver.run();
  return 0;
}

// SPDX-License-Identifier: MIT
// The fuzzer's input as a stream of small decisions. Callbacks read from the
// same stream as the top level, so one input decides both what the program
// does and what each callback does when the loop runs it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aioloop::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool exhausted() const { return pos_ >= size_; }

  // The next byte; 0 once the input is used up, so decoding always ends
  // (every count read from an exhausted input is zero).
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }

  // A value in [0, n), n <= 256.
  unsigned below(unsigned n) { return byte() % n; }

  bool flag() { return (byte() & 1) != 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace aioloop::fuzz

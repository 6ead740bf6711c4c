// SPDX-License-Identifier: MIT
// Replays fuzzer inputs without libFuzzer: every file of the directories
// (or files) named on the command line goes through LLVMFuzzerTestOneInput
// once. A broken promise aborts, naming the input on stderr first; an input
// that hangs is stopped by an alarm. This is how the normal suite (plain and
// under the sanitizers) keeps the seed corpus and past crashes passing.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// Far above what any input takes (milliseconds), far below meson's timeout.
constexpr unsigned kSecondsPerInput = 20;

const char* current_input = "";

void on_alarm(int) {
  // Only async-signal-safe calls here.
  const char prefix[] = "fuzz_replay: input hung: ";
  (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
  (void)!write(STDERR_FILENO, current_input, strlen(current_input));
  (void)!write(STDERR_FILENO, "\n", 1);
  _exit(1);
}

std::vector<std::filesystem::path> inputs_in(const std::filesystem::path& where) {
  std::vector<std::filesystem::path> inputs;
  if (std::filesystem::is_regular_file(where)) {
    inputs.push_back(where);
  } else if (std::filesystem::is_directory(where)) {
    for (const auto& entry : std::filesystem::directory_iterator(where)) {
      // README files say what a directory is for; they are not inputs.
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with("README")) {
        continue;
      }
      inputs.push_back(entry.path());
    }
  }
  std::sort(inputs.begin(), inputs.end());
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::filesystem::exists(argv[i])) {
      std::fprintf(stderr, "fuzz_replay: %s does not exist\n", argv[i]);
      return 1;
    }
    for (const auto& path : inputs_in(argv[i])) {
      std::ifstream file(path, std::ios::binary);
      const std::vector<uint8_t> data{std::istreambuf_iterator<char>(file),
                                      std::istreambuf_iterator<char>()};
      const std::string name = path.string();
      current_input = name.c_str();
      std::fprintf(stderr, "fuzz_replay: %s (%zu bytes)\n", current_input, data.size());
      alarm(kSecondsPerInput);
      LLVMFuzzerTestOneInput(data.data(), data.size());
      alarm(0);
      ++replayed;
    }
  }
  std::printf("fuzz_replay: %zu inputs replayed, all promises kept\n", replayed);
  return 0;
}

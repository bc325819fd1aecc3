// libFuzzer target for the GGUF reader: any byte string either parses into a
// File whose tensors all lie inside the input, or throws pocket::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gguf/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = pocket::gguf::File::parse(data, size, "fuzz.gguf");
    for (const auto& kv : f.metadata()) (void)kv.value.to_string(4);
    for (const auto& t : f.tensors()) {
      if (t.data < data || t.data + t.n_bytes > data + size) std::abort();
      if (t.n_bytes) {
        volatile uint8_t sink = t.data[0] ^ t.data[t.n_bytes - 1];
        (void)sink;
      }
    }
  } catch (const pocket::Error&) {
  }
  return 0;
}

// `pocket quantize IN.gguf OUT.gguf TYPE [-t THREADS]`
// Rewrites a model with its tensors converted to a type mix (see type_mix.h):
// each tensor is dequantized to f32 row by row and quantized with the reference
// quantizers, streamed to disk. Metadata is copied, with general.file_type updated.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/type_mix.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "util/error.h"

namespace pocket::cli {

int cmd_quantize(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::printf(
        "usage: pocket quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
        "  TYPE: %s\n"
        "  Norms, conv kernels, ssm_a/dt/alpha/beta and routers stay F32; see make-model --help\n"
        "  for what the _m mixes keep in Q6_K.\n",
        type_mix_names().c_str());
    return 0;
  }
  int threads = int(args.int_or("-t", int(std::max(1u, std::thread::hardware_concurrency()))));
  auto pos = args.positionals();
  args.finish();
  if (pos.size() != 3) fail("expected IN.gguf OUT.gguf TYPE (see pocket quantize --help)");
  const TypeMix* mix = find_type_mix(pos[2]);
  if (!mix) fail("unknown type '", pos[2], "' (choose one of ", type_mix_names(), ")");
  if (pos[0] == pos[1]) fail("input and output must be different files");

  gguf::File in = gguf::File::open(pos[0]);
  const std::string arch = in.architecture();
  const uint32_t n_layer = in.get_u32_or(arch + ".block_count", 0);
  const bool tied = in.find_tensor("output.weight") == nullptr;

  gguf::Writer w;
  for (const auto& kv : in.metadata()) {
    if (kv.key == "general.file_type" || kv.key == "general.alignment") continue;
    w.add(kv.key, kv.value);
  }
  w.add("general.file_type", gguf::Value::u32(mix->file_type));
  if (in.alignment() != 32) w.set_alignment(in.alignment());

  uint64_t bytes_in = 0, bytes_out = 0;
  for (const auto& t : in.tensors()) {
    const std::vector<int64_t> ne(t.ne, t.ne + std::max<uint32_t>(t.n_dims, 1));
    // Only matrices are converted; vectors and unknown tensors keep their bytes.
    gguf::TensorType to = t.type;
    if (t.n_dims >= 2 && quant::can_dequantize(t.type)) {
      to = choose_tensor_type(*mix, t.name, t.ne[0], n_layer, tied);
      if (!quant::can_quantize(to)) to = t.type;
    }
    bytes_in += t.n_bytes;
    if (to == t.type) {
      bytes_out += t.n_bytes;
      w.add_tensor(t.name, t.type, ne, t.data);
      continue;
    }
    const int64_t rows = t.rows(), ne0 = t.ne[0];
    const uint64_t src_row = t.row_bytes(), dst_row = gguf::row_bytes(to, uint64_t(ne0));
    bytes_out += dst_row * uint64_t(rows);
    const uint8_t* src = t.data;
    w.add_tensor(t.name, to, ne, [=](const gguf::Writer::Sink& sink) {
      const int64_t chunk = std::max<int64_t>(1, int64_t((8u << 20) / std::max<uint64_t>(dst_row, 1)));
      std::vector<uint8_t> buf;
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t r1 = std::min(rows, r0 + chunk);
        buf.resize(uint64_t(r1 - r0) * dst_row);
        parallel_ranges(r1 - r0, threads, [&](int64_t a, int64_t b) {
          std::vector<float> row(static_cast<size_t>(ne0));
          for (int64_t r = a; r < b; r++) {
            quant::dequantize_row(t.type, src + uint64_t(r0 + r) * src_row, row.data(), ne0);
            quant::quantize_row(to, row.data(), buf.data() + uint64_t(r) * dst_row, ne0);
          }
        });
        sink(buf.data(), buf.size());
      }
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  w.write(pos[1]);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%s): %.1f MiB -> %.1f MiB of tensor data in %.1f s\n", pos[1].c_str(),
               mix->name, double(bytes_in) / (1 << 20), double(bytes_out) / (1 << 20), secs);
  return 0;
}

}  // namespace pocket::cli

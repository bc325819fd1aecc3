// `pocket info FILE.gguf [--json] [--ctx N] [--parallel N] [--kv-type f16|f32|q8_0]`
// Describes a GGUF file: metadata (long arrays summarised), the tensor table,
// parameter count, bytes by type, and the memory a run needs.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

using gguf::File;
using gguf::Value;
using gguf::ValueType;
using nlohmann::ordered_json;

constexpr size_t kArrayPreview = 8;

ordered_json value_json(const Value& v) {
  switch (v.type()) {
    case ValueType::STRING: return v.as_string();
    case ValueType::BOOL: return v.as_bool();
    case ValueType::FLOAT32:
    case ValueType::FLOAT64: return v.as_f64();
    case ValueType::ARRAY: {
      size_t n = v.size();
      ordered_json items = ordered_json::array();
      for (size_t i = 0; i < n && i < kArrayPreview; i++) items.push_back(value_json(v.item(i)));
      if (n <= kArrayPreview) return items;
      return {{"type", "array"},
              {"elem_type", std::string(gguf::value_type_name(v.elem_type()))},
              {"length", n},
              {"head", items}};
    }
    default:
      if (v.type() == ValueType::INT8 || v.type() == ValueType::INT16 || v.type() == ValueType::INT32 ||
          v.type() == ValueType::INT64)
        return v.as_i64();
      return v.as_u64();
  }
}

// Memory a run needs for a qwen35/qwen35moe file (spec/qwen35.md §4). Returns
// null JSON when the file lacks the hybrid-model keys.
ordered_json memory_estimate(const File& f, uint64_t ctx, uint64_t parallel, const std::string& kv_type) {
  const std::string a = f.architecture();
  if (a.empty() || !f.has(a + ".block_count") || !f.has(a + ".ssm.inner_size")) return nullptr;
  uint64_t n_layer = f.get_u32(a + ".block_count");
  uint64_t nextn = f.get_u32_or(a + ".nextn_predict_layers", 0);
  uint64_t interval = f.get_u32_or(a + ".full_attention_interval", 4);
  if (interval == 0) fail(f.path(), ": ", a, ".full_attention_interval is 0");
  uint64_t main_layers = n_layer - std::min(nextn, n_layer);
  uint64_t n_attn = main_layers / interval + nextn;  // the MTP layer is full attention
  uint64_t n_gdn = main_layers - main_layers / interval;
  uint64_t n_kv = f.get_u32(a + ".attention.head_count_kv");
  uint64_t key_len = f.get_u32(a + ".attention.key_length");
  uint64_t val_len = f.get_u32_or(a + ".attention.value_length", uint32_t(key_len));
  uint64_t conv_k = f.get_u32(a + ".ssm.conv_kernel");
  uint64_t d_k = f.get_u32(a + ".ssm.state_size");
  uint64_t n_k = f.get_u32(a + ".ssm.group_count");
  uint64_t n_v = f.get_u32(a + ".ssm.time_step_rank");
  uint64_t value_dim = f.get_u32(a + ".ssm.inner_size");
  if (n_v == 0) fail(f.path(), ": ", a, ".ssm.time_step_rank is 0");
  uint64_t d_v = value_dim / n_v;
  uint64_t conv_dim = 2 * n_k * d_k + value_dim;

  // Bytes per cached element for K and V.
  double kv_elem;
  if (kv_type == "f16") kv_elem = 2;
  else if (kv_type == "f32") kv_elem = 4;
  else if (kv_type == "q8_0") kv_elem = 34.0 / 32.0;
  else fail("--kv-type: expected f16, f32 or q8_0, got '", kv_type, "'");

  uint64_t weights = 0;
  for (const auto& t : f.tensors()) weights += t.n_bytes;
  uint64_t kv_per_token = uint64_t(double(n_attn * n_kv * (key_len + val_len)) * kv_elem);
  uint64_t kv = kv_per_token * ctx * parallel;
  uint64_t conv_state = (conv_k - 1) * conv_dim * 4;
  uint64_t ssm_state = n_v * d_k * d_v * 4;
  uint64_t recurrent_per_seq = n_gdn * (conv_state + ssm_state);
  uint64_t recurrent = recurrent_per_seq * parallel;
  return {{"ctx", ctx},
          {"parallel", parallel},
          {"kv_type", kv_type},
          {"attention_layers", n_attn},
          {"deltanet_layers", n_gdn},
          {"weights_bytes", weights},
          {"kv_bytes_per_token", kv_per_token},
          {"kv_cache_bytes", kv},
          {"recurrent_bytes_per_sequence", recurrent_per_seq},
          {"recurrent_state_bytes", recurrent},
          {"total_bytes", weights + kv + recurrent}};
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.2f K", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

void print_help() {
  std::printf(
      "usage: pocket info FILE.gguf [--json] [--ctx N] [--parallel N] [--kv-type f16|f32|q8_0]\n"
      "  Prints the architecture, every metadata key (long arrays summarised), the tensor\n"
      "  table, the parameter count, bytes by type, and the memory a run needs: weights +\n"
      "  KV cache of the attention layers (ctx x parallel tokens) + recurrent state of the\n"
      "  delta-net layers (per sequence). Defaults: --ctx 4096 --parallel 1 --kv-type f16.\n");
}

}  // namespace

int cmd_info(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    print_help();
    return 0;
  }
  bool json = args.flag("--json");
  long long ctx = args.int_or("--ctx", 4096);
  long long parallel = args.int_or("--parallel", 1);
  std::string kv_type = args.value_or("--kv-type", "f16");
  auto files = args.positionals();
  args.finish();
  if (files.size() != 1) fail("expected one GGUF file (see pocket info --help)");
  if (ctx <= 0 || parallel <= 0) fail("--ctx and --parallel must be positive");

  File f = File::open(files[0]);
  uint64_t n_params = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // name -> (count, bytes)
  for (const auto& t : f.tensors()) {
    n_params += t.n_elements;
    auto& e = by_type[std::string(gguf::type_name(t.type))];
    e.first++;
    e.second += t.n_bytes;
  }
  ordered_json mem = memory_estimate(f, uint64_t(ctx), uint64_t(parallel), kv_type);

  if (json) {
    ordered_json out;
    out["file"] = f.path();
    out["file_bytes"] = f.file_size();
    out["architecture"] = f.architecture();
    out["version"] = f.version();
    out["alignment"] = f.alignment();
    out["data_offset"] = f.data_offset();
    out["n_tensors"] = f.tensors().size();
    out["n_params"] = n_params;
    ordered_json md = ordered_json::object();
    for (const auto& kv : f.metadata()) md[kv.key] = value_json(kv.value);
    out["metadata"] = md;
    ordered_json tensors = ordered_json::array();
    for (const auto& t : f.tensors())
      tensors.push_back({{"name", t.name},
                         {"type", std::string(gguf::type_name(t.type))},
                         {"shape", std::vector<int64_t>(t.ne, t.ne + std::max<uint32_t>(t.n_dims, 1))},
                         {"bytes", t.n_bytes},
                         {"offset", f.data_offset() + t.offset}});
    out["tensors"] = tensors;
    ordered_json bt = ordered_json::object();
    for (const auto& [name, e] : by_type) bt[name] = {{"tensors", e.first}, {"bytes", e.second}};
    out["bytes_by_type"] = bt;
    out["memory"] = mem;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  std::printf("file:          %s (%s)\n", f.path().c_str(), human_bytes(double(f.file_size())).c_str());
  std::printf("architecture:  %s\n", f.architecture().empty() ? "(none)" : f.architecture().c_str());
  std::printf("gguf:          version %u, alignment %u, data at byte %llu\n", f.version(), f.alignment(),
              (unsigned long long)f.data_offset());
  std::printf("tensors:       %zu\n", f.tensors().size());
  std::printf("parameters:    %s (%llu)\n", human_count(double(n_params)).c_str(), (unsigned long long)n_params);
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  for (const auto& kv : f.metadata()) {
    std::string v = kv.value.to_string(kArrayPreview);
    if (kv.value.is_string() && v.size() > 120) v = v.substr(0, 117) + "...";
    std::printf("  %-50s %-8s %s\n", kv.key.c_str(),
                std::string(gguf::value_type_name(kv.value.type())).c_str(), v.c_str());
  }
  std::printf("\ntensors:\n");
  for (const auto& t : f.tensors())
    std::printf("  %-40s %-8s %-22s %12llu\n", t.name.c_str(), std::string(gguf::type_name(t.type)).c_str(),
                t.shape_string().c_str(), (unsigned long long)t.n_bytes);
  std::printf("\nbytes by type:\n");
  for (const auto& [name, e] : by_type)
    std::printf("  %-8s %5llu tensors  %s\n", name.c_str(), (unsigned long long)e.first,
                human_bytes(double(e.second)).c_str());
  if (!mem.is_null()) {
    std::printf("\nmemory for --ctx %lld --parallel %lld (KV cache %s):\n", ctx, parallel, kv_type.c_str());
    std::printf("  weights:          %s (memory-mapped)\n", human_bytes(mem["weights_bytes"].get<double>()).c_str());
    std::printf("  KV cache:         %s (%llu attention layers, %s per token)\n",
                human_bytes(mem["kv_cache_bytes"].get<double>()).c_str(),
                (unsigned long long)mem["attention_layers"].get<uint64_t>(),
                human_bytes(mem["kv_bytes_per_token"].get<double>()).c_str());
    std::printf("  recurrent state:  %s (%llu delta-net layers, %s per sequence)\n",
                human_bytes(mem["recurrent_state_bytes"].get<double>()).c_str(),
                (unsigned long long)mem["deltanet_layers"].get<uint64_t>(),
                human_bytes(mem["recurrent_bytes_per_sequence"].get<double>()).c_str());
    std::printf("  total:            %s\n", human_bytes(mem["total_bytes"].get<double>()).c_str());
  }
  return 0;
}

}  // namespace pocket::cli

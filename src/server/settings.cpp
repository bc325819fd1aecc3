#include "server/settings.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include <toml++/toml.h>

#include "kernels/ops.h"
#include "util/error.h"
#include "util/mmap.h"

namespace pocket::server {

namespace {

std::string where(const std::string& name, const toml::node& node) {
  return str(name, ":", node.source().begin.line);
}

template <typename T>
T get(const std::string& name, const std::string& key, const toml::node& node, const char* what) {
  if (auto v = node.value_exact<T>()) return *v;
  fail(where(name, node), ": key '", key, "' must be ", what);
}

int64_t get_int(const std::string& name, const std::string& key, const toml::node& node, int64_t lo, int64_t hi) {
  const int64_t v = get<int64_t>(name, key, node, "an integer");
  if (v < lo || v > hi) fail(where(name, node), ": key '", key, "' must be in [", lo, ", ", hi, "], got ", v);
  return v;
}

}  // namespace

void load_settings_toml(const std::string& text, const std::string& name, ServerSettings& s) {
  toml::table table;
  try {
    table = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    fail(name, ":", e.source().begin.line, ": ", e.description());
  }
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    if (key == "model") s.model = get<std::string>(name, key, node, "a string");
    else if (key == "model_alias") s.model_alias = get<std::string>(name, key, node, "a string");
    else if (key == "host") s.host = get<std::string>(name, key, node, "a string");
    else if (key == "port") s.port = int(get_int(name, key, node, 0, 65535));
    else if (key == "parallel") s.parallel = int(get_int(name, key, node, 1, 256));
    else if (key == "ctx") s.ctx = get_int(name, key, node, 16, int64_t(1) << 24);
    else if (key == "step_tokens") s.step_tokens = get_int(name, key, node, 2, 1 << 16);
    else if (key == "max_queue") s.max_queue = int(get_int(name, key, node, 0, 1 << 20));
    else if (key == "api_key") s.api_key = get<std::string>(name, key, node, "a string");
    else if (key == "api_key_file") s.api_key = read_api_key_file(get<std::string>(name, key, node, "a string"));
    else if (key == "think") s.think = get<bool>(name, key, node, "true or false");
    else if (key == "max_body_bytes") s.max_body_bytes = get_int(name, key, node, 1024, int64_t(1) << 32);
    else if (key == "default_max_tokens") s.default_max_tokens = get_int(name, key, node, 1, int64_t(1) << 24);
    else if (key == "threads") s.threads = int(get_int(name, key, node, 0, 1024));
    else if (key == "http_threads") s.http_threads = int(get_int(name, key, node, 0, 1024));
    else if (key == "kv_type") {
      s.kv_type = get<std::string>(name, key, node, "a string");
      kernels::KvType parsed;
      if (!kernels::kv_type_from_name(s.kv_type, parsed))
        fail(where(name, node), ": key 'kv_type' must be \"f16\", \"f32\" or \"q8_0\", got \"",
             s.kv_type, "\"");
    } else if (key == "weights") {
      s.weights = get<std::string>(name, key, node, "a string");
      FileBacking parsed;
      if (!file_backing_from_name(s.weights, parsed))
        fail(where(name, node), ": key 'weights' must be \"map\", \"copy\" or \"hugepages\", got \"",
             s.weights, "\"");
    } else {
      fail(where(name, node), ": unknown key '", key, "'");
    }
  }
}

void load_settings_file(const std::string& path, ServerSettings& settings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read config file ", path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  load_settings_toml(text, path, settings);
}

std::string read_api_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read API key file ", path);
  std::string line;
  std::getline(in, line);
  const size_t b = line.find_first_not_of(" \t\r\n"), e = line.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) fail("API key file ", path, " is empty");
  return line.substr(b, e - b + 1);
}

void validate_settings(const ServerSettings& s) {
  if (s.port < 0 || s.port > 65535) fail("port must be in [0, 65535], got ", s.port);
  if (s.parallel < 1) fail("parallel must be at least 1, got ", s.parallel);
  if (s.ctx < 16) fail("ctx must be at least 16, got ", s.ctx);
  if (s.max_queue < 0) fail("max_queue must be >= 0");
  kernels::KvType kv_type;
  if (!kernels::kv_type_from_name(s.kv_type, kv_type))
    fail("kv_type (--kv-type) must be f16, f32 or q8_0, got '", s.kv_type, "'");
  FileBacking backing;
  if (!file_backing_from_name(s.weights, backing))
    fail("weights (--weights) must be map, copy or hugepages, got '", s.weights, "'");
}

}  // namespace pocket::server

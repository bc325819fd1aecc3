// Settings of `pocket serve`, from the command line and/or a TOML file
// (--config pocket.toml; keys named like the long options, e.g.
//   model = "models/pocket-demo.gguf"
//   port = 8080
//   parallel = 8
//   think = false
// ). Errors name the key and the line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pocket::server {

struct ServerSettings {
  std::string model;        // GGUF path
  std::string model_alias;  // id served by /v1/models (default: the file's stem)
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;          // sequences decoded together
  int64_t ctx = 4096;        // context length per sequence
  int64_t step_tokens = 512; // tokens per forward call (decode + prefill chunks)
  int max_queue = 64;        // waiting requests before 503
  std::string api_key;       // empty: no authentication
  std::optional<bool> think; // default thinking when a request does not say
  int64_t max_body_bytes = 8 << 20;
  int64_t default_max_tokens = 2048;  // when a request gives no limit
  int threads = 0;           // 0: the thread pool's default
  std::string kv_type = "f16";
  std::string weights = "map";  // map | copy | hugepages (util/mmap.h)
  int http_threads = 0;      // 0: 2 * (parallel + max_queue) + 8
};

// Reads `path` into `settings` (keys not in the file keep their value).
void load_settings_file(const std::string& path, ServerSettings& settings);
// Same, from TOML text; `name` is used in messages.
void load_settings_toml(const std::string& text, const std::string& name, ServerSettings& settings);
// Reads an API key file (first line, surrounding whitespace dropped).
std::string read_api_key_file(const std::string& path);
// Range checks shared by both sources; throws pocket::Error.
void validate_settings(const ServerSettings& settings);

}  // namespace pocket::server

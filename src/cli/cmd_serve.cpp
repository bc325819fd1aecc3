// `pocket serve`: an OpenAI-compatible HTTP server with continuous batching
// (src/server, docs/server.md).
//
//   pocket serve -m model.gguf --port 8080 --parallel 8
//   pocket serve --config pocket.toml --api-key-file key.txt
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/default_model.h"
#include "server/http_server.h"
#include "server/settings.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

const char* kUsage = R"(usage: pocket serve [-m FILE] [options]

  -m, --model FILE        GGUF model (default: the built-in demo model)
  --alias NAME            model id served by /v1/models (default: the file name's stem)
  --host H                address to bind (default 127.0.0.1: loopback only)
  --port P                port (default 8080; 0 = any free port, printed on stderr)
  --parallel N            sequences decoded together (default 4)
  --ctx N                 context length per sequence (default 4096)
  --step-tokens N         tokens per forward call, decode + prefill (default 512)
  --max-queue N           waiting requests before 503 (default 64)
  --api-key K             require 'Authorization: Bearer K' on /v1 routes
  --api-key-file F        the same, key read from a file
  --think, --no-think     default thinking when a request does not say (default: template's)
  --max-body-bytes N      largest request body (default 8 MiB)
  --default-max-tokens N  generation limit when a request gives none (default 2048)
  --threads N             compute threads (default: physical cores)
  --kv-type f16|f32|q8_0  KV cache element type (default f16)
  --weights map|copy|hugepages
                          where the weights live: the file mapped (default), a private
                          copy, or a copy on 2 MiB pages (faster decode, docs/kernels.md)
  --config FILE           TOML file with the same settings (keys: model, host, port,
                          parallel, ctx, step_tokens, max_queue, api_key, api_key_file,
                          think, max_body_bytes, default_max_tokens, threads, kv_type,
                          weights, model_alias); command-line options win over it
)";

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  server::ServerSettings s;
  if (auto config = args.value("--config")) server::load_settings_file(*config, s);
  if (auto v = args.value("-m", "--model")) s.model = *v;
  if (auto v = args.value("--alias")) s.model_alias = *v;
  if (auto v = args.value("--host")) s.host = *v;
  s.port = int(args.int_or("--port", s.port));
  s.parallel = int(args.int_or("--parallel", s.parallel));
  s.ctx = args.int_or("--ctx", s.ctx);
  s.step_tokens = args.int_or("--step-tokens", s.step_tokens);
  s.max_queue = int(args.int_or("--max-queue", s.max_queue));
  if (auto v = args.value("--api-key")) s.api_key = *v;
  if (auto v = args.value("--api-key-file")) s.api_key = server::read_api_key_file(*v);
  const bool think = args.flag("--think"), no_think = args.flag("--no-think");
  if (think && no_think) fail("--think and --no-think together");
  if (think || no_think) s.think = think;
  s.max_body_bytes = args.int_or("--max-body-bytes", s.max_body_bytes);
  s.default_max_tokens = args.int_or("--default-max-tokens", s.default_max_tokens);
  s.threads = int(args.int_or("--threads", s.threads));
  s.kv_type = args.value_or("--kv-type", s.kv_type);
  s.weights = args.value_or("--weights", s.weights);
  args.finish();
  if (s.model.empty()) s.model = default_model_path();

  // A client that disconnects must not kill the server with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  server::HttpServer server(s);
  server.run();
  return 0;
}

}  // namespace pocket::cli

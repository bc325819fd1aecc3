// `pocket` — one binary, many subcommands.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "util/error.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"run", pocket::cli::cmd_run, "generate text from a model (-m FILE -p TEXT)"},
    {"serve", pocket::cli::cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"gateway", pocket::cli::cmd_gateway, "API gateway: keys, routing, limits, usage and costs (--config FILE)"},
    {"keys", pocket::cli::cmd_keys, "gateway API keys: create, list, update, revoke (--db FILE)"},
    {"usage", pocket::cli::cmd_usage, "gateway usage ledger and costs (--db FILE)"},
    {"bench", pocket::cli::cmd_bench, "prompt/generation speed, memory bandwidth, matmul kernels"},
    {"info", pocket::cli::cmd_info, "describe a GGUF file: metadata, tensors, memory needs"},
    {"make-model", pocket::cli::cmd_make_model, "write a random-weight Qwen3.5 model"},
    {"quantize", pocket::cli::cmd_quantize, "convert a GGUF model to another tensor type"},
    {"tokenize", pocket::cli::cmd_tokenize, "text -> token ids"},
    {"detokenize", pocket::cli::cmd_detokenize, "token ids -> text"},
    {"template", pocket::cli::cmd_template, "render a conversation with the chat template"},
};

void usage(FILE* f) {
  std::fprintf(f, "usage: pocket <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(f, "  %-12s %s\n", c.name, c.help);
  std::fprintf(f, "\n`pocket <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.fn(argc - 1, argv + 1);
    } catch (const pocket::Error& e) {
      std::fprintf(stderr, "pocket %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pocket %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "pocket: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 1;
}

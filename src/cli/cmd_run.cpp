// `pocket run`: generate text from a model.
//
//   pocket run -m model.gguf -p "Once upon a time" -n 64
//   pocket run -m model.gguf --chat -p "Hello" --no-think --temp 0.7 --seed 1
//   pocket run -m model.gguf --prompt-ids 1,2,3 --json -n 8
//
// Text goes to stdout as it is generated; timings go to stderr. With --json,
// stdout carries one JSON object per generated token,
//   {"id": 123, "text": "...", "logprob": -0.12, "top_logprobs": [{"id": 5, "logprob": -0.1}, ...]}
// (logprobs are the log-softmax of the raw logits, before any sampling
// transform; "text" pieces are well-formed UTF-8 and concatenate to the
// generated text; an end-of-generation token has empty text), then
//   {"done": true, "prompt_tokens": N, "generated_tokens": M, "prefill_ms": ..., "decode_ms": ...}
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/default_model.h"
#include "kernels/fast_ops.h"
#include "util/thread_pool.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/sequence.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

const char* kUsage =
    R"(usage: pocket run -m FILE (-p TEXT | --file F | --prompt-ids 1,2,3) [options]

prompt:
  -p, --prompt TEXT        prompt text
  --file F                 read the prompt text from a file
  --prompt-ids LIST        comma-separated token ids (no tokenization)
  --special                recognise control tokens (<|im_start|> ...) in the prompt text
  --chat                   render the prompt as a user message with the model's chat template
  --system TEXT            system message (with --chat)
  --think, --no-think      enable / disable thinking in the chat template (default: template's)
generation:
  -n, --n-predict N        tokens to generate (default 128)
  --temp T                 temperature; 0 = greedy (default 0)
  --top-k K                keep the K most likely tokens (default 0 = off)
  --top-p P                nucleus sampling (default 1 = off)
  --min-p P                drop tokens below P * p_max (default 0 = off)
  --repeat-penalty R       repetition penalty (default 1 = off)
  --repeat-last-n N        tokens the penalties look back at (default 64, -1 = all)
  --presence-penalty P     (default 0)
  --frequency-penalty P    (default 0)
  --seed S                 random seed (default 0)
  --ignore-eos             do not stop at end-of-generation tokens
runtime:
  --ctx N                  context length (default min(4096, the model's))
  --kv-type f32|f16|q8_0   KV cache element type (default f32; q8_0: head size % 32 == 0)
  --weights map|copy|hugepages
                           where the weights live: the file mapped (default), a private
                           copy, or a copy on 2 MiB pages (faster decode, docs/kernels.md)
  -t, --threads N          worker threads (default: physical cores)
  --reference              exact scalar f32 kernels instead of the fast SIMD ones
  --batch N                prompt tokens per forward call (default 512)
output:
  --json                   one JSON object per token, then a summary line
  --top-logprobs K         alternatives per token in --json output (default 5)
)";

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t start = item.find_first_not_of(" \t"), end = item.find_last_not_of(" \t");
    if (start == std::string::npos) fail("--prompt-ids: empty entry in '", list, "'");
    item = item.substr(start, end - start + 1);
    char* stop = nullptr;
    const long long v = std::strtoll(item.c_str(), &stop, 10);
    if (*stop || v < 0 || v > INT32_MAX) fail("--prompt-ids: '", item, "' is not a token id");
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) fail("--prompt-ids: no ids given");
  return ids;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read prompt file ", path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// End-of-generation ids: eos plus the usual Qwen end tokens present in the vocabulary.
std::vector<int32_t> stop_ids(const text::Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
  for (const char* s : {"<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"})
    if (auto id = tok.find_token(s); id && std::find(ids.begin(), ids.end(), *id) == ids.end())
      ids.push_back(*id);
  return ids;
}

// The prompt rendered with the model's chat template (as transformers'
// apply_chat_template does, with the vocabulary's special tokens).
std::string render_chat(const gguf::File& file, const text::Tokenizer& tok, const std::string& system,
                        const std::string& user, std::optional<bool> think) {
  const gguf::Value* tmpl = file.find("tokenizer.chat_template");
  if (!tmpl || !tmpl->is_string()) fail(file.path(), ": no tokenizer.chat_template for --chat");
  chat::SpecialTokens special;
  if (tok.bos_id() >= 0) special.bos = tok.token_text(tok.bos_id());
  if (tok.eos_id() >= 0) special.eos = tok.token_text(tok.eos_id());
  if (tok.pad_id() >= 0) special.pad = tok.token_text(tok.pad_id());
  const chat::ChatTemplate chat_template(tmpl->as_string(), special);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  chat::ChatKwargs kwargs;
  kwargs.add_generation_prompt = true;
  kwargs.enable_thinking = think;
  return chat_template.render(messages, nullptr, kwargs);
}

}  // namespace

int cmd_run(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::string path = args.value("-m", "--model").value_or("");
  auto prompt_text = args.value("-p", "--prompt");
  const auto prompt_file = args.value("--file");
  const auto prompt_ids_arg = args.value("--prompt-ids");
  const bool special = args.flag("--special");
  const bool chat = args.flag("--chat");
  const std::string system = args.value_or("--system", "");
  const bool think = args.flag("--think"), no_think = args.flag("--no-think");
  long long n_predict = 128;
  if (auto n = args.value("-n", "--n-predict")) {
    char* end = nullptr;
    n_predict = std::strtoll(n->c_str(), &end, 10);
    if (n->empty() || *end) fail("option -n: expected an integer, got '", *n, "'");
  }

  runtime::GenerateOptions gen;
  gen.max_tokens = n_predict;
  runtime::SamplingParams& sp = gen.sampling;
  sp.temperature = float(args.float_or("--temp", 0.0));
  sp.top_k = int32_t(args.int_or("--top-k", 0));
  sp.top_p = float(args.float_or("--top-p", 1.0));
  sp.min_p = float(args.float_or("--min-p", 0.0));
  sp.repeat_penalty = float(args.float_or("--repeat-penalty", 1.0));
  sp.penalty_last_n = int32_t(args.int_or("--repeat-last-n", 64));
  sp.presence_penalty = float(args.float_or("--presence-penalty", 0.0));
  sp.frequency_penalty = float(args.float_or("--frequency-penalty", 0.0));
  sp.seed = uint64_t(args.int_or("--seed", 0));
  const bool ignore_eos = args.flag("--ignore-eos");
  const long long ctx_arg = args.int_or("--ctx", 0);
  const std::string kv_type = args.value_or("--kv-type", "f32");
  const std::string weights = args.value_or("--weights", "map");
  gen.prefill_chunk = args.int_or("--batch", 512);
  const bool json = args.flag("--json");
  const bool reference_kernels = args.flag("--reference");
  const long long threads = args.int_or("--threads", args.int_or("-t", 0));
  gen.top_logprobs = int32_t(args.int_or("--top-logprobs", 5));
  gen.logprobs = json;
  args.finish();

  if (path.empty()) path = default_model_path();  // the built-in demo model
  if (threads < 0) fail("--threads must be >= 0");
  if (threads > 0) set_thread_count(int(threads));
  // The fast kernels quantize activations for quantized weights (spec/gguf.md §8);
  // --reference keeps the exact f32 scalar path (fidelity checks).
  if (reference_kernels) {
    set_thread_count(1);
    kernels::set_ops(kernels::reference_ops());
  } else {
    kernels::use_best_ops();
  }
  if (int(bool(prompt_text)) + int(bool(prompt_file)) + int(bool(prompt_ids_arg)) != 1)
    fail("give exactly one of -p TEXT, --file F, --prompt-ids LIST");
  if (chat && prompt_ids_arg) fail("--chat needs a text prompt, not --prompt-ids");
  if (think && no_think) fail("--think and --no-think together");
  if ((think || no_think || !system.empty()) && !chat) fail("--system, --think and --no-think need --chat");
  if (n_predict < 0) fail("-n must be >= 0");
  if (gen.top_logprobs < 0) fail("--top-logprobs must be >= 0");
  runtime::KvPoolOptions kv;
  if (!kernels::kv_type_from_name(kv_type, kv.kv_type))
    fail("--kv-type must be f32, f16 or q8_0, got '", kv_type, "'");

  FileBacking backing = FileBacking::kMap;
  if (!file_backing_from_name(weights, backing))
    fail("--weights must be map, copy or hugepages, got '", weights, "'");

  const auto t_load = std::chrono::steady_clock::now();
  std::unique_ptr<model::Model> model = model::Model::load(path, backing);
  const text::Tokenizer tokenizer = text::Tokenizer::from_gguf(model->file());
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();

  // The prompt as token ids.
  std::vector<int32_t> prompt;
  if (prompt_ids_arg) {
    prompt = parse_ids(*prompt_ids_arg);
    for (int32_t id : prompt)
      if (id >= model->config().n_vocab)
        fail("--prompt-ids: id ", id, " is outside the vocabulary (", model->config().n_vocab, ")");
  } else {
    std::string txt = prompt_file ? read_file(*prompt_file) : *prompt_text;
    text::EncodeOptions enc;
    enc.parse_special = special;
    if (chat) {
      std::optional<bool> thinking;
      if (think || no_think) thinking = think;
      txt = render_chat(model->file(), tokenizer, system, txt, thinking);
      enc.parse_special = true;  // the template's own markers
    }
    prompt = tokenizer.encode(txt, enc);
  }
  if (prompt.empty()) fail("the prompt is empty");
  if (!ignore_eos) gen.stop_ids = stop_ids(tokenizer);

  const int64_t n_ctx =
      ctx_arg > 0 ? ctx_arg : std::min<int64_t>(4096, model->config().n_ctx_train);
  runtime::KvPool pool(*model, kv);
  runtime::Sequence seq(*model, pool, n_ctx);
  if (int64_t(prompt.size()) > n_ctx)
    fail("the prompt has ", prompt.size(), " tokens, more than the context length ", n_ctx,
         " (--ctx)");

  text::StreamingDecoder decoder(tokenizer);
  const runtime::GenerateResult r =
      runtime::generate(*model, seq, prompt, gen, [&](const runtime::GeneratedToken& t) {
        std::string piece = t.end_of_generation ? std::string() : decoder.push(t.id);
        if (t.last) piece += decoder.finish();
        if (json) {
          nlohmann::ordered_json j;
          j["id"] = t.id;
          j["text"] = piece;
          j["logprob"] = t.logprob;
          j["top_logprobs"] = nlohmann::ordered_json::array();
          for (const auto& [id, lp] : t.top) j["top_logprobs"].push_back({{"id", id}, {"logprob", lp}});
          std::fputs((j.dump() + "\n").c_str(), stdout);
        } else {
          std::fputs(piece.c_str(), stdout);
        }
        std::fflush(stdout);
        return true;
      });

  if (json) {
    nlohmann::ordered_json done;
    done["done"] = true;
    done["prompt_tokens"] = r.prompt_tokens;
    done["generated_tokens"] = r.generated_tokens;
    done["prefill_ms"] = r.prefill_ms;
    done["decode_ms"] = r.decode_ms;
    std::fputs((done.dump() + "\n").c_str(), stdout);
  } else if (r.generated_tokens > 0) {
    std::fputs("\n", stdout);
  }
  std::fflush(stdout);

  const auto rate = [](int64_t n, double ms) { return ms > 0 ? double(n) * 1000.0 / ms : 0.0; };
  std::fprintf(stderr, "\n%s\nload: %.1f ms\n", model->config().summary().c_str(), load_ms);
  std::fprintf(stderr, "prompt: %lld tokens in %.1f ms (%.1f tokens/s)\n", (long long)r.prompt_tokens,
               r.prefill_ms, rate(r.prompt_tokens, r.prefill_ms));
  std::fprintf(stderr, "generated: %lld tokens in %.1f ms (%.1f tokens/s)%s\n",
               (long long)r.generated_tokens, r.decode_ms, rate(r.generated_tokens, r.decode_ms),
               r.stopped_by_eog       ? ", stopped at end of generation"
               : r.stopped_by_context ? ", stopped at the context length"
                                      : "");
  return 0;
}

}  // namespace pocket::cli

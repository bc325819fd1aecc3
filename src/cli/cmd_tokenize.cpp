// `pocket tokenize` and `pocket detokenize`: text <-> token ids with the
// vocabulary of a GGUF (model or vocab-only) or a Hugging Face tokenizer.json.
//
//   pocket tokenize -m FILE [--text T | --file F | stdin] [--special] [--json]
//                   [--jsonl] [--no-normalize] [--pre qwen2|qwen35] [--lenient]
//   pocket detokenize -m FILE [--text IDS | --file F | stdin] [--jsonl]
//                   [--skip-special] [--pre ...]
//   pocket tokenize -m FILE --bench CORPUS [--repeat N]     (throughput check)
#include <time.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

using nlohmann::json;
using text::Tokenizer;

constexpr const char* kTokenizeHelp =
    "usage: pocket tokenize -m FILE [--text T | --file F] [options]\n"
    "Prints the token ids of the text (default: stdin) as a JSON array.\n"
    "  -m, --model FILE   GGUF (model or vocab-only) or tokenizer.json\n"
    "  --text T           text to tokenize\n"
    "  --file F           read the text from a file\n"
    "  --special          recognise control tokens (<|im_start|> ...) in the text;\n"
    "                     user-defined tokens (<think> ...) are always recognised\n"
    "  --json             print {\"ids\": [...], \"tokens\": [...]} (tokens as spelled in the "
    "vocab)\n"
    "  --jsonl            read one JSON string per stdin line, print one result per line\n"
    "  --no-normalize     skip NFC normalization\n"
    "  --pre NAME         pre-tokenizer override: qwen2 or qwen35\n"
    "  --lenient          replace ill-formed UTF-8 with U+FFFD instead of failing\n"
    "  --bench CORPUS     measure encode/decode throughput on a file (--repeat N passes)\n";

constexpr const char* kDetokenizeHelp =
    "usage: pocket detokenize -m FILE [--text IDS | --file F] [options]\n"
    "Prints the text of a JSON array of token ids (default: stdin), byte for byte.\n"
    "  -m, --model FILE   GGUF (model or vocab-only) or tokenizer.json\n"
    "  --text IDS         ids as a JSON array, e.g. [9707, 0]\n"
    "  --file F           read the ids from a file\n"
    "  --jsonl            read one JSON array per stdin line, print one JSON string per line\n"
    "                     (ill-formed UTF-8 shown as U+FFFD)\n"
    "  --skip-special     leave out control tokens (user-defined ones are always printed)\n"
    "  --pre NAME         pre-tokenizer override (only needed to load some files)\n";

std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_path(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  return read_all(in);
}

// --text, --file or stdin.
std::string read_input(Args& args) {
  auto text = args.value("--text");
  auto file = args.value("--file");
  if (text && file) fail("give either --text or --file, not both");
  if (text) return *text;
  if (file) return read_path(*file);
  return read_all(std::cin);
}

Tokenizer load_tokenizer(Args& args) {
  auto model = args.value("-m", "--model");
  if (!model) fail("missing -m FILE (a GGUF or a tokenizer.json)");
  text::LoadOptions options;
  if (auto pre = args.value("--pre")) {
    options.pre_tokenizer = text::pre_tokenizer_from_name(*pre);
    if (!options.pre_tokenizer) fail("--pre: unknown pre-tokenizer '", *pre, "' (qwen2, qwen35)");
  }
  return Tokenizer::load(*model, options);
}

void write(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); i++) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

std::string result_json(const Tokenizer& tok, const std::vector<int32_t>& ids, bool detailed) {
  if (!detailed) return ids_json(ids);
  json tokens = json::array();
  for (int32_t id : ids) tokens.push_back(tok.token_text(id));
  return "{\"ids\":" + ids_json(ids) + ",\"tokens\":" + tokens.dump() + "}";
}

std::vector<int32_t> parse_ids(const std::string& s, const std::string& where) {
  json j;
  try {
    j = json::parse(s);
  } catch (const json::exception& e) {
    fail(where, ": expected a JSON array of token ids: ", e.what());
  }
  if (!j.is_array()) fail(where, ": expected a JSON array of token ids");
  std::vector<int32_t> ids;
  for (const json& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      fail(where, ": ", v.dump(), " is not a token id");
    }
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  return ids;
}

// Thread CPU time: steadier than wall time on a busy machine.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Throughput of encode and decode on a corpus, one thread. Prints MB/s by
// thread CPU time and, in brackets, by wall time.
int run_bench(const Tokenizer& tok, const std::string& corpus_path, long long repeat,
              const text::EncodeOptions& options) {
  const std::string corpus = read_path(corpus_path);
  const double mb = double(corpus.size()) / 1e6;
  using clock = std::chrono::steady_clock;
  struct Timer {
    clock::time_point wall = clock::now();
    double cpu = cpu_seconds();
    std::string report(double mb) const {
      const double c = cpu_seconds() - cpu;
      const double w = std::chrono::duration<double>(clock::now() - wall).count();
      char buf[128];
      std::snprintf(buf, sizeof buf, "%.3f s cpu, %.1f MB/s (wall %.3f s, %.1f MB/s)", c, mb / c, w,
                    mb / w);
      return buf;
    }
  };
  std::printf("corpus %s: %.2f MB, vocab %s (%zu tokens, pre %s)\n", corpus_path.c_str(), mb,
              tok.source().c_str(), tok.n_vocab(),
              std::string(text::pre_tokenizer_name(tok.pre_tokenizer())).c_str());
  // One-time setup (ICU data, the character class table) is not measured; the
  // first pass still starts with an empty word cache.
  tok.encode("warm up \xC3\xA9", options);
  std::vector<int32_t> ids;
  for (long long pass = 0; pass < repeat; pass++) {
    Timer t;
    ids = tok.encode(corpus, options);
    std::printf("encode pass %lld: %s, %zu tokens (%.2f bytes/token)%s\n", pass + 1,
                t.report(mb).c_str(), ids.size(), double(corpus.size()) / double(ids.size()),
                pass == 0 ? " [cold word cache]" : "");
  }
  Timer t;
  const std::string decoded = tok.decode(ids);
  std::printf("decode: %s\n", t.report(mb).c_str());
  text::StreamingDecoder stream(tok);
  size_t streamed = 0;
  t = Timer();
  for (int32_t id : ids) streamed += stream.push(id).size();
  streamed += stream.finish().size();
  std::printf("streaming decode: %s\n", t.report(mb).c_str());
  const std::string expected = options.normalize && tok.nfc() ? text::to_nfc(corpus) : corpus;
  const bool round_trip = decoded == expected && streamed == expected.size();
  std::printf("round trip decode(encode(x)) == %s: %s\n", options.normalize ? "NFC(x)" : "x",
              round_trip ? "yes" : "NO");
  return round_trip ? 0 : 1;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::fputs(kTokenizeHelp, stdout);
    return 0;
  }
  text::EncodeOptions options;
  options.parse_special = args.flag("--special");
  options.normalize = !args.flag("--no-normalize");
  options.lenient_utf8 = args.flag("--lenient");
  const bool detailed = args.flag("--json");
  const bool jsonl = args.flag("--jsonl");
  auto bench = args.value("--bench");
  const long long repeat = args.int_or("--repeat", 3);
  const Tokenizer tok = load_tokenizer(args);

  if (bench) {
    args.finish();
    if (repeat < 1) fail("--repeat must be >= 1");
    return run_bench(tok, *bench, repeat, options);
  }
  if (jsonl) {
    args.finish();
    std::string line;
    for (size_t line_no = 1; std::getline(std::cin, line); line_no++) {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {
        fail("stdin line ", line_no, ": expected a JSON string: ", e.what());
      }
      if (!j.is_string()) fail("stdin line ", line_no, ": expected a JSON string");
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(j.get<std::string>(), options);
      } catch (const Error& e) {
        fail("stdin line ", line_no, ": ", e.what());
      }
      write(result_json(tok, ids, detailed) + "\n");
    }
    return 0;
  }
  const std::string input = read_input(args);
  args.finish();
  write(result_json(tok, tok.encode(input, options), detailed) + "\n");
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::fputs(kDetokenizeHelp, stdout);
    return 0;
  }
  text::DecodeOptions options;
  options.render_special = !args.flag("--skip-special");
  const bool jsonl = args.flag("--jsonl");
  const Tokenizer tok = load_tokenizer(args);
  if (jsonl) {
    args.finish();
    std::string line;
    for (size_t line_no = 1; std::getline(std::cin, line); line_no++) {
      const std::string where = str("stdin line ", line_no);
      const std::vector<int32_t> ids = parse_ids(line, where);
      std::string text;
      try {
        text = tok.decode(ids, options);
      } catch (const Error& e) {
        fail(where, ": ", e.what());
      }
      write(json(text::replace_invalid_utf8(text)).dump() + "\n");
    }
    return 0;
  }
  const std::string input = read_input(args);
  args.finish();
  write(tok.decode(parse_ids(input, "ids"), options));
  return 0;
}

}  // namespace pocket::cli

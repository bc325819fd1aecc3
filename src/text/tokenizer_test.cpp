// Tokenizer unit tests on small hand-made vocabularies: UTF-8 handling, BPE
// priority, added tokens, decoding and streaming, load errors (GGUF and
// tokenizer.json), thread safety, and the tokenize/detokenize commands.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "gguf/gguf.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace pocket::text {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------
// UTF-8

std::u32string replaced_code_points(std::string_view bytes) {
  const std::string fixed = replace_invalid_utf8(bytes);
  std::u32string out;
  for (size_t i = 0; i < fixed.size();) {
    size_t len = 0;
    out.push_back(decode_valid_utf8(fixed.data() + i, fixed.size() - i, &len));
    i += len;
  }
  return out;
}

TEST(TokenizerUtf8, StepClassifiesSequences) {
  auto step = [](std::string_view s) { return utf8_step(s.data(), s.size()); };
  EXPECT_EQ(step("A").status, Utf8Status::kValid);
  EXPECT_EQ(step("\xC3\xA9").code_point, 0xE9u);
  EXPECT_EQ(step("\xF0\x9F\x98\x80").code_point, 0x1F600u);
  EXPECT_EQ(step("\xF4\x8F\xBF\xBF").code_point, 0x10FFFFu);
  // Ill-formed: maximal subparts.
  EXPECT_EQ(step("\x80").status, Utf8Status::kInvalid);
  EXPECT_EQ(step("\xC0\xAF").length, 1);          // overlong lead
  EXPECT_EQ(step("\xE0\x80\x80").length, 1);      // overlong 3-byte
  EXPECT_EQ(step("\xED\xA0\x80").length, 1);      // surrogate
  EXPECT_EQ(step("\xF4\x90\x80\x80").length, 1);  // above U+10FFFF
  EXPECT_EQ(step("\xF8\x88").length, 1);
  const Utf8Step broken = step(
      "\xE4\xBD"
      "A");
  EXPECT_EQ(broken.status, Utf8Status::kInvalid);
  EXPECT_EQ(broken.length, 2);
  const Utf8Step cut = step("\xF0\x9F\x98");
  EXPECT_EQ(cut.status, Utf8Status::kTruncated);
  EXPECT_EQ(cut.length, 3);
}

// Same replacement as Python's bytes.decode("utf-8", "replace").
TEST(TokenizerUtf8, ReplacementFollowsMaximalSubparts) {
  EXPECT_EQ(replaced_code_points("\xF0\x9F\x98"
                                 "A"),
            (std::u32string{0xFFFD, 'A'}));
  EXPECT_EQ(replaced_code_points("\xED\xA0\x80"), (std::u32string{0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_EQ(replaced_code_points("\xC0\xAF"), (std::u32string{0xFFFD, 0xFFFD}));
  EXPECT_EQ(replaced_code_points("a\xE4\xBD"
                                 "b"),
            (std::u32string{'a', 0xFFFD, 'b'}));
  EXPECT_EQ(replaced_code_points("x\xE4\xBD"), (std::u32string{'x', 0xFFFD}));
  EXPECT_EQ(replace_invalid_utf8("caf\xC3\xA9 ok"), "caf\xC3\xA9 ok");
  EXPECT_EQ(find_invalid_utf8("0123456789abcdef\xFF"), 16u);
  EXPECT_EQ(find_invalid_utf8("0123456789abcdef\xC3\xA9"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("\xC3"), 0u);
}

TEST(TokenizerUnicode, ByteLevelMapping) {
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_unicode('A'), char32_t('A'));
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);  // the last extra symbol
  for (int b = 0; b < 256; b++) EXPECT_EQ(unicode_to_byte(byte_to_unicode(uint8_t(b))), b);
  EXPECT_EQ(unicode_to_byte(0x144), -1);
  std::string bytes;
  EXPECT_TRUE(byte_level_to_bytes(bytes_to_byte_level(" hi\n\xFF"), bytes));
  EXPECT_EQ(bytes, " hi\n\xFF");
  EXPECT_FALSE(byte_level_to_bytes("a b", bytes));  // a raw space is not a symbol
}

TEST(TokenizerUnicode, Nfc) {
  EXPECT_EQ(to_nfc("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(to_nfc("plain ascii"), "plain ascii");
  std::string out;
  EXPECT_FALSE(nfc_normalize("caf\xC3\xA9", out));                            // already NFC
  EXPECT_EQ(to_nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // jamo -> 한
}

// ---------------------------------------------------------------------------
// A small vocabulary written as GGUF metadata.

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

// 256 byte symbols, a few merges, and added tokens of every kind.
Vocab small_vocab() {
  Vocab v;
  for (int b = 0; b < 256; b++) {
    std::string s;
    append_utf8(s, byte_to_unicode(uint8_t(b)));
    v.tokens.push_back(s);
    v.types.push_back(1);
  }
  auto merge = [&](const std::string& a, const std::string& b) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
    v.types.push_back(1);
  };
  merge("h", "e");         // 256
  merge("l", "l");         // 257
  merge("he", "ll");       // 258
  merge("hell", "o");      // 259
  merge("a", "a");         // 260
  merge("\xC4\xA0", "h");  // 261 "Ġh"
  merge("e", "l");         // 262: lower priority than "l l"
  auto added = [&](const std::string& s, int type) {
    v.tokens.push_back(s);
    v.types.push_back(type);
  };
  added("<|im_end|>", 3);  // 263 control
  added("<think>", 4);     // 264 user-defined
  added("<x>", 4);         // 265
  added("<x><y>", 4);      // 266 longer, same start
  added("[PAD267]", 5);    // 267 unused
  return v;
}

using Meta = std::vector<std::pair<std::string, gguf::Value>>;

Meta metadata(const Vocab& v) {
  return {
      {"general.architecture", gguf::Value::string("qwen35")},
      {"tokenizer.ggml.model", gguf::Value::string("gpt2")},
      {"tokenizer.ggml.pre", gguf::Value::string("qwen35")},
      {"tokenizer.ggml.tokens", gguf::Value::strings(v.tokens)},
      {"tokenizer.ggml.token_type", gguf::Value::i32s(v.types)},
      {"tokenizer.ggml.merges", gguf::Value::strings(v.merges)},
      {"tokenizer.ggml.eos_token_id", gguf::Value::u32(263)},
      {"tokenizer.ggml.bos_token_id", gguf::Value::u32(263)},
      {"tokenizer.ggml.add_bos_token", gguf::Value::boolean(false)},
  };
}

void set(Meta& m, const std::string& key, gguf::Value value) {
  for (auto& [k, v] : m) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  m.emplace_back(key, std::move(value));
}

void remove_key(Meta& m, const std::string& key) {
  std::erase_if(m, [&](const auto& kv) { return kv.first == key; });
}

Tokenizer from_meta(const Meta& m, const LoadOptions& options = {}) {
  gguf::Writer w;
  for (const auto& [k, v] : m) w.add(k, v);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const gguf::File file = gguf::File::parse(bytes.data(), bytes.size(), "small.gguf");
  return Tokenizer::from_gguf(file, options);
}

const Tokenizer& small() {
  static const Tokenizer t = from_meta(metadata(small_vocab()));
  return t;
}

int32_t byte_id(unsigned char b) {
  std::string s;
  append_utf8(s, byte_to_unicode(b));
  return *small().find_token(s);
}

std::vector<int32_t> enc(std::string_view s, bool parse_special = false) {
  EncodeOptions o;
  o.parse_special = parse_special;
  return small().encode(s, o);
}

using Ids = std::vector<int32_t>;

TEST(Tokenizer, BpeMergesByPriority) {
  EXPECT_EQ(enc("hello"), (Ids{259}));
  EXPECT_EQ(enc("hell"), (Ids{258}));
  // "e l" exists but "l l" has priority: h e l l -> he ll.
  EXPECT_EQ(enc("hel"), (Ids{256, byte_id('l')}));
  EXPECT_EQ(enc("elo"), (Ids{262, byte_id('o')}));
  // Equal ranks: leftmost first.
  EXPECT_EQ(enc("aaa"), (Ids{260, byte_id('a')}));
  EXPECT_EQ(enc("aaaa"), (Ids{260, 260}));
  // " he" is one piece: "h e" outranks "Ġ h"; " hx" has only "Ġ h".
  EXPECT_EQ(enc(" he"), (Ids{byte_id(' '), 256}));
  EXPECT_EQ(enc(" hx"), (Ids{261, byte_id('x')}));
  EXPECT_EQ(enc(""), Ids{});
}

TEST(Tokenizer, LongWordsAndRuns) {
  // Long pieces skip the cache and exercise the heap with many equal ranks.
  std::string a(100001, 'a');
  Ids want(50000, 260);
  want.push_back(byte_id('a'));
  EXPECT_EQ(enc(a), want);
  std::string mixed;
  for (int i = 0; i < 5000; i++) mixed += "hellohe";
  const Ids ids = enc(mixed);
  EXPECT_EQ(small().decode(ids), mixed);
}

TEST(Tokenizer, AddedTokens) {
  // Control tokens only with parse_special; user-defined always.
  EXPECT_EQ(enc("a<|im_end|>b", true), (Ids{byte_id('a'), 263, byte_id('b')}));
  EXPECT_NE(enc("a<|im_end|>b", false), (Ids{byte_id('a'), 263, byte_id('b')}));
  EXPECT_EQ(small().decode(enc("a<|im_end|>b", false)), "a<|im_end|>b");
  EXPECT_EQ(enc("<think>hello", false), (Ids{264, 259}));
  // Longest match at a position, leftmost position first.
  EXPECT_EQ(enc("<x><y>", false), (Ids{266}));
  EXPECT_EQ(enc("<x><x><y>", false), (Ids{265, 266}));
  EXPECT_EQ(enc("<<x>", false), (Ids{byte_id('<'), 265}));
  // Unused tokens are never matched.
  EXPECT_EQ(small().decode(enc("[PAD267]", true)), "[PAD267]");
  EXPECT_NE(enc("[PAD267]", true), (Ids{267}));
}

TEST(Tokenizer, AddBos) {
  EncodeOptions o;
  o.add_bos = true;
  EXPECT_EQ(small().encode("he", o), (Ids{263, 256}));
  o.add_bos = std::nullopt;  // the vocabulary says no
  EXPECT_EQ(small().encode("he", o), (Ids{256}));
}

TEST(Tokenizer, Normalization) {
  const std::string composed = "caf\xC3\xA9", decomposed = "cafe\xCC\x81";
  EncodeOptions o;
  EXPECT_EQ(small().encode(decomposed, o), small().encode(composed, o));
  o.normalize = false;
  EXPECT_NE(small().encode(decomposed, o), small().encode(composed, o));
  EXPECT_EQ(small().decode(small().encode(decomposed, o)), decomposed);
}

// Added tokens are matched on the raw text, then each segment is normalized
// (Hugging Face order): ">" + U+0338 would compose to U+226F under whole-text
// NFC and hide the token.
TEST(Tokenizer, AddedTokensAreMatchedBeforeNormalization) {
  EXPECT_EQ(enc("<think>\xCC\xB8"), (Ids{264, byte_id(0xCC), byte_id(0xB8)}));
  EXPECT_EQ(to_nfc("<think>\xCC\xB8"), "<think\xE2\x89\xAF");
}

TEST(Tokenizer, InvalidUtf8IsRejectedWithOffset) {
  try {
    small().encode("hello \xFF world");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 6"), std::string::npos) << e.what();
  }
  EXPECT_THROW(small().encode("\xE4\xBD"), Error);      // truncated
  EXPECT_THROW(small().encode("\xED\xA0\x80"), Error);  // surrogate
  EXPECT_THROW(small().encode("\xC0\x80"), Error);      // overlong NUL
}

TEST(Tokenizer, LenientUtf8ReplacesEveryBadSubpart) {
  EncodeOptions lenient;
  lenient.lenient_utf8 = true;
  const std::string bad =
      "ab\xFF\xE4\xBD"
      "c\xF0\x9F";
  const Ids ids = small().encode(bad, lenient);
  EXPECT_EQ(ids, small().encode(replace_invalid_utf8(bad)));
  EXPECT_EQ(small().decode(ids),
            "ab\xEF\xBF\xBD\xEF\xBF\xBD"
            "c\xEF\xBF\xBD");
  // NUL bytes are valid UTF-8 and survive.
  const std::string nul("a\0b", 3);
  EXPECT_EQ(small().decode(small().encode(nul)), nul);
}

TEST(Tokenizer, Decode) {
  const Ids ids = {264, 259, 263, 267, byte_id(0xE4)};
  EXPECT_EQ(small().decode(ids), "<think>hello<|im_end|>[PAD267]\xE4");
  DecodeOptions skip;
  skip.render_special = false;
  EXPECT_EQ(small().decode(ids, skip), "<think>hello\xE4");  // user-defined stays
  EXPECT_EQ(small().token_bytes(261), " h");
  EXPECT_EQ(small().token_text(261), "\xC4\xA0h");
  EXPECT_THROW(small().decode(Ids{268}), Error);
  EXPECT_THROW(small().decode(Ids{-1}), Error);
  EXPECT_THROW(small().token_text(99999), Error);
}

// ---------------------------------------------------------------------------
// Streaming decoder

TEST(TokenizerStreaming, HoldsBackSplitCharacters) {
  StreamingDecoder d(small());
  // 你 = E4 BD A0, one byte token at a time.
  EXPECT_EQ(d.push(byte_id(0xE4)), "");
  EXPECT_EQ(d.push(byte_id(0xBD)), "");
  EXPECT_EQ(d.pending_bytes(), 2u);
  EXPECT_EQ(d.push(byte_id(0xA0)), "\xE4\xBD\xA0");
  EXPECT_EQ(d.push(259), "hello");
  // 😀 = F0 9F 98 80 split 1 + 3 with text after.
  EXPECT_EQ(d.push(byte_id(0xF0)), "");
  EXPECT_EQ(d.push_bytes("\x9F\x98\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(d.finish(), "");
}

TEST(TokenizerStreaming, ReplacesWhatCanNeverBeValid) {
  StreamingDecoder d(small());
  EXPECT_EQ(d.push(byte_id(0xFF)), "\xEF\xBF\xBD");  // impossible byte: at once
  EXPECT_EQ(d.push(byte_id(0xE4)), "");
  EXPECT_EQ(d.push(byte_id('a')),
            "\xEF\xBF\xBD"
            "a");  // interrupted sequence
  EXPECT_EQ(d.push(byte_id(0xF0)), "");
  EXPECT_EQ(d.push(byte_id(0x9F)), "");
  EXPECT_EQ(d.finish(), "\xEF\xBF\xBD");  // incomplete tail: one U+FFFD
  EXPECT_EQ(d.pending_bytes(), 0u);
  EXPECT_EQ(d.push(259), "hello");  // reusable after finish
  DecodeOptions skip;
  skip.render_special = false;
  StreamingDecoder s(small(), skip);
  EXPECT_EQ(s.push(263), "");
  EXPECT_EQ(s.push(264), "<think>");
}

// Concatenated output == replace_invalid_utf8(decode(ids)), and every
// piece is well-formed, for random token sequences.
TEST(TokenizerStreaming, RandomSequencesMatchBatchDecode) {
  std::mt19937 rng(3);
  const Tokenizer& t = small();
  for (int iter = 0; iter < 3000; iter++) {
    Ids ids(rng() % 12);
    for (auto& id : ids) id = int32_t(rng() % t.n_vocab());
    StreamingDecoder d(t);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = d.push(id);
      ASSERT_FALSE(find_invalid_utf8(piece));
      streamed += piece;
    }
    streamed += d.finish();
    ASSERT_EQ(streamed, replace_invalid_utf8(t.decode(ids)));
  }
}

// ---------------------------------------------------------------------------
// Load errors: every message names the file and the field.

void expect_load_error(const Meta& m, const std::string& needle) {
  try {
    from_meta(m);
    ADD_FAILURE() << "loaded without error; expected: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("small.gguf"), std::string::npos) << "message: " << msg;
  }
}

TEST(TokenizerLoad, GgufErrors) {
  const Vocab v = small_vocab();
  const Meta good = metadata(v);
  {
    Meta m = good;
    set(m, "tokenizer.ggml.model", gguf::Value::string("llama"));
    expect_load_error(m, "tokenizer.ggml.model is 'llama'");
  }
  {
    Meta m = good;
    set(m, "tokenizer.ggml.pre", gguf::Value::string("gpt-4o"));
    expect_load_error(m, "tokenizer.ggml.pre 'gpt-4o' is not supported");
    // An explicit override loads it.
    EXPECT_EQ(from_meta(m, LoadOptions{PreTokenizer::kQwen2}).pre_tokenizer(),
              PreTokenizer::kQwen2);
    remove_key(m, "tokenizer.ggml.pre");
    expect_load_error(m, "tokenizer.ggml.pre");
  }
  {
    Meta m = good;
    remove_key(m, "tokenizer.ggml.tokens");
    expect_load_error(m, "tokenizer.ggml.tokens");
    set(m, "tokenizer.ggml.tokens", gguf::Value::i32s({1, 2, 3}));
    expect_load_error(m, "tokenizer.ggml.tokens must be an array of strings");
  }
  {
    Meta m = good;
    auto types = v.types;
    types.pop_back();
    set(m, "tokenizer.ggml.token_type", gguf::Value::i32s(types));
    expect_load_error(m, "tokenizer.ggml.token_type has 267 entries");
    types = v.types;
    types[10] = 6;
    set(m, "tokenizer.ggml.token_type", gguf::Value::i32s(types));
    expect_load_error(m, "tokenizer.ggml.token_type[10] = 6");
    remove_key(m, "tokenizer.ggml.token_type");
    expect_load_error(m, "tokenizer.ggml.token_type");
  }
  {
    Meta m = good;
    auto merges = v.merges;
    merges[2] = "hell";
    set(m, "tokenizer.ggml.merges", gguf::Value::strings(merges));
    expect_load_error(m, "tokenizer.ggml.merges[2] 'hell' is not of the form 'left right'");
    merges[2] = "he zz";
    set(m, "tokenizer.ggml.merges", gguf::Value::strings(merges));
    expect_load_error(m, "tokenizer.ggml.merges[2] ('he' 'zz'): right part is not a normal token");
    merges[2] = "ll he";  // both parts known, "llhe" is not a token
    set(m, "tokenizer.ggml.merges", gguf::Value::strings(merges));
    expect_load_error(m, "merged result is not a normal token");
    remove_key(m, "tokenizer.ggml.merges");
    expect_load_error(m, "tokenizer.ggml.merges is missing");
  }
  {
    Meta m = good;
    set(m, "tokenizer.ggml.eos_token_id", gguf::Value::u32(268));
    expect_load_error(m, "tokenizer.ggml.eos_token_id = 268 is out of range");
    set(m, "tokenizer.ggml.eos_token_id", gguf::Value::string("x"));
    expect_load_error(m, "tokenizer.ggml.eos_token_id must be an integer");
  }
  {
    Meta m = good;
    auto tokens = v.tokens;
    tokens[256] = "h e";  // a raw space is not byte-level
    set(m, "tokenizer.ggml.tokens", gguf::Value::strings(tokens));
    expect_load_error(m, "tokenizer.ggml.tokens[256] 'h e': a normal token must be spelled");
    tokens = v.tokens;
    tokens[65] = "zz";  // byte 'A' loses its symbol
    set(m, "tokenizer.ggml.tokens", gguf::Value::strings(tokens));
    expect_load_error(m, "lacks the byte-level symbol 'A'");
    tokens = v.tokens;
    tokens[256] = "ll";  // duplicate
    set(m, "tokenizer.ggml.tokens", gguf::Value::strings(tokens));
    expect_load_error(m, "duplicate of token");
    tokens = v.tokens;
    tokens[264] = "";
    set(m, "tokenizer.ggml.tokens", gguf::Value::strings(tokens));
    expect_load_error(m, "tokenizer.ggml.tokens[264] '': empty token");
    tokens = v.tokens;
    tokens[264] = "<|im_end|>";  // two added tokens with one text
    set(m, "tokenizer.ggml.tokens", gguf::Value::strings(tokens));
    expect_load_error(m, "are both '<|im_end|>'");
  }
  {
    Meta m = good;
    set(m, "tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
    remove_key(m, "tokenizer.ggml.bos_token_id");
    expect_load_error(m, "add_bos_token is set but there is no BOS token");
  }
}

// A small tokenizer.json equivalent to small_vocab().
json small_tokenizer_json() {
  const Vocab v = small_vocab();
  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < v.tokens.size(); i++) {
    if (v.types[i] == 1) {
      vocab[v.tokens[i]] = i;
    } else if (v.types[i] != 5) {
      added.push_back({{"id", i},
                       {"content", v.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", v.types[i] == 3}});
    }
  }
  json merges = json::array();
  for (size_t i = 0; i < v.merges.size(); i++) {
    const std::string& m = v.merges[i];
    const size_t sp = m.find(' ');
    // Mix both merge spellings.
    if (i % 2) {
      merges.push_back(m);
    } else {
      merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
    }
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", std::string(pre_tokenizer_regex(PreTokenizer::kQwen35))}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", false},
               {"use_regex", false}}}}}},
          {"post_processor", {{"type", "ByteLevel"}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

Tokenizer from_json(const json& j, const json& config = nullptr) {
  return Tokenizer::from_tokenizer_json(j.dump(), config.is_null() ? "" : config.dump(),
                                        "small.json");
}

TEST(TokenizerLoad, TokenizerJsonMatchesGguf) {
  const json config = {{"eos_token", "<|im_end|>"},
                       {"pad_token", {{"content", "<|im_end|>"}}},
                       {"bos_token", nullptr},
                       {"add_bos_token", false}};
  const Tokenizer t = from_json(small_tokenizer_json(), config);
  EXPECT_EQ(t.n_vocab(), 267u);  // no unused filler
  EXPECT_EQ(t.eos_id(), 263);
  EXPECT_EQ(t.pad_id(), 263);
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_EQ(t.pre_tokenizer(), PreTokenizer::kQwen35);
  for (const char* s : {"hello <think> hell<|im_end|>o aaa", "cafe\xCC\x81 <x><y>"}) {
    for (bool special : {false, true}) {
      EncodeOptions o;
      o.parse_special = special;
      EXPECT_EQ(t.encode(s, o), small().encode(s, o)) << s;
    }
  }
  // Without a normalizer, NFC is off by default.
  json j = small_tokenizer_json();
  j["normalizer"] = nullptr;
  EXPECT_FALSE(from_json(j).nfc());
}

void expect_json_error(const json& j, const std::string& needle) {
  try {
    from_json(j);
    ADD_FAILURE() << "loaded without error; expected: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("small.json"), std::string::npos) << "message: " << msg;
  }
}

TEST(TokenizerLoad, TokenizerJsonErrors) {
  const json good = small_tokenizer_json();
  EXPECT_THROW(Tokenizer::from_tokenizer_json("{not json", "", "small.json"), Error);
  {
    json j = good;
    j["model"]["type"] = "WordPiece";
    expect_json_error(j, "model.type: 'WordPiece' is not supported");
  }
  {
    json j = good;
    j["model"]["byte_fallback"] = true;
    expect_json_error(j, "model.byte_fallback");
  }
  {
    json j = good;
    j["model"]["vocab"]["zz"] = 5;
    expect_json_error(j, "id 5 is used twice");
  }
  {
    json j = good;
    j["model"]["vocab"]["zz"] = 400;  // leaves a hole
    expect_json_error(j, "no token has id");
  }
  {
    json j = good;
    j["model"]["vocab"]["zz"] = -3;
    expect_json_error(j, "token id -3 is out of range");
  }
  {
    json j = good;
    j["model"]["merges"][1] = "hell";
    expect_json_error(j, "model.merges[1]");
    j["model"]["merges"][1] = json::array({"he", "zz"});
    expect_json_error(j, "model.merges[1] ('he' 'zz'): right part is not a normal token");
    j["model"]["merges"][1] = 7;
    expect_json_error(j, "model.merges[1]: must be");
  }
  {
    json j = good;
    j["added_tokens"][0]["lstrip"] = true;
    expect_json_error(j, "added_tokens[0].lstrip");
    j = good;
    j["added_tokens"][0]["id"] = "x";
    expect_json_error(j, "added_tokens[0].id: must be an integer");
    j = good;
    j["added_tokens"][1]["id"] = j["added_tokens"][0]["id"];
    expect_json_error(j, "is used twice");
  }
  {
    json j = good;
    j["normalizer"] = {{"type", "NFKC"}};
    expect_json_error(j, "normalizer.type: 'NFKC' is not supported");
  }
  {
    json j = good;
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
    expect_json_error(j, "pre_tokenizer.pretokenizers[0].pattern.Regex: unknown regex");
    // An explicit choice loads it anyway.
    EXPECT_EQ(Tokenizer::from_tokenizer_json(j.dump(), "", "small.json",
                                             LoadOptions{PreTokenizer::kQwen2})
                  .pre_tokenizer(),
              PreTokenizer::kQwen2);
    j = good;
    j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
    expect_json_error(j, "use_regex");
  }
  {
    json j = good;
    j["post_processor"] = {{"type", "TemplateProcessing"}};
    expect_json_error(j, "post_processor");
  }
  try {
    from_json(good, json{{"eos_token", "<|nope|>"}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eos_token '<|nope|>' is not a token"), std::string::npos)
        << e.what();
  }
}

TEST(TokenizerLoad, FileErrors) {
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json"), Error);
  const auto dir =
      std::filesystem::temp_directory_path() / ("pocket_tok_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string junk = (dir / "junk.bin").string();
  std::ofstream(junk) << "\x01\x02 not a vocabulary";
  try {
    Tokenizer::load(junk);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(junk), std::string::npos) << e.what();
  }
  // A truncated GGUF is reported by the GGUF reader, naming the file.
  gguf::Writer w;
  for (const auto& [k, v] : metadata(small_vocab())) w.add(k, v);
  std::vector<uint8_t> bytes = w.to_bytes();
  const std::string cut = (dir / "cut.gguf").string();
  std::ofstream(cut, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), 300);
  try {
    Tokenizer::load(cut);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Concurrency: the word cache is shared; results must not depend on timing.

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  std::vector<std::string> texts;
  std::mt19937 rng(5);
  const char* words[] = {"hello", " he", "ll", "aaa", " <think>", "caf\xC3\xA9", "\n\n", "hel"};
  for (int i = 0; i < 200; i++) {
    std::string s;
    for (int k = 0; k < 40; k++) s += words[rng() % 8];
    texts.push_back(s);
  }
  std::vector<Ids> want;
  for (const auto& s : texts) want.push_back(small().encode(s));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < texts.size(); i++) {
          const size_t k = (i + t * 37) % texts.size();
          if (small().encode(texts[k]) != want[k]) mismatches++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// ---------------------------------------------------------------------------
// The commands.

class TokenizerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("POCKET_BIN");
    bin_ =
        env ? env
            : (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "pocket").string();
    if (!std::filesystem::exists(bin_)) GTEST_SKIP() << "pocket binary not found: " << bin_;
    vocab_ = std::string(POCKET_SHARED_DIR) + "/golden/vocab-qwen3-qwen35.gguf";
    if (!std::filesystem::exists(vocab_)) GTEST_SKIP() << "missing " << vocab_;
    dir_ = std::filesystem::temp_directory_path() / ("pocket_cli_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string file(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  // Runs a shell command line; returns stdout, sets status.
  std::string run(const std::string& args, int* status = nullptr) {
    const std::string cmd = "'" + bin_ + "' " + args + " 2>" + (dir_ / "stderr").string();
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    if (status) *status = WEXITSTATUS(rc);
    return out;
  }
  std::string stderr_text() {
    std::ifstream in(dir_ / "stderr");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string bin_, vocab_;
  std::filesystem::path dir_;
};

TEST_F(TokenizerCli, TokenizeAndDetokenize) {
  const std::string chat = "<|im_start|>user\nHello!<|im_end|>\n";
  const std::string in = file("chat.txt", chat);
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --special --file " + in),
            "[151644,872,198,9707,0,151645,198]\n");
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --text 'Hello world'"), "[9707,1879]\n");
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --json --text 'Hello world' "),
            "{\"ids\":[9707,1879],\"tokens\":[\"Hello\",\"\xC4\xA0world\"]}\n");
  EXPECT_EQ(run("tokenize -m " + vocab_ + " < " + in).substr(0, 7), "[27,91,");
  const std::string ids = file("ids.json", "[151644, 872, 198, 9707, 0, 151645, 198]\n");
  EXPECT_EQ(run("detokenize -m " + vocab_ + " --file " + ids), chat);
  EXPECT_EQ(run("detokenize -m " + vocab_ + " --skip-special --file " + ids), "user\nHello!\n");
  EXPECT_EQ(run("detokenize -m " + vocab_ + " --text '[9707,1879]'"), "Hello world");
}

TEST_F(TokenizerCli, Jsonl) {
  const std::string lines = file("in.jsonl", "\"Hello world\"\n\"caf\\u0065\\u0301\"\n\"\"\n");
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --jsonl < " + lines), "[9707,1879]\n[924,58858]\n[]\n");
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --no-normalize --jsonl < " + lines).find("[924,58858]"),
            std::string::npos);
  const std::string ids = file("ids.jsonl", "[9707,1879]\n[924,58858]\n[]\n[71,160]\n");
  EXPECT_EQ(run("detokenize -m " + vocab_ + " --jsonl < " + ids),
            "\"Hello world\"\n\"caf\xC3\xA9\"\n\"\"\n\"h\xEF\xBF\xBD\"\n");
}

TEST_F(TokenizerCli, Errors) {
  int status = 0;
  run("tokenize -m " + vocab_ + " --file " + file("bad.txt", "ok \xFF"), &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(stderr_text().find("byte offset 3"), std::string::npos) << stderr_text();
  EXPECT_EQ(run("tokenize -m " + vocab_ + " --lenient --file " + file("bad2.txt", "ok \xFF")),
            "[562,29333]\n");
  run("tokenize -m " + vocab_ + " --pre gpt2 --text x", &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(stderr_text().find("unknown pre-tokenizer"), std::string::npos) << stderr_text();
  run("detokenize -m " + vocab_ + " --text '[1, 999999]'", &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(stderr_text().find("999999 is out of range"), std::string::npos) << stderr_text();
  run("detokenize -m " + vocab_ + " --text 'hello'", &status);
  EXPECT_EQ(status, 1);
  run("tokenize --text x", &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(stderr_text().find("-m"), std::string::npos) << stderr_text();
}

}  // namespace
}  // namespace pocket::text

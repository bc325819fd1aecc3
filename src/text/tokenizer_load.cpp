// Loading a Tokenizer from GGUF metadata or a Hugging Face tokenizer.json, and
// the validation both share. Every error names the file and the field.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace pocket::text {

// Everything a loader reads, in file terms, before validation.
struct Tokenizer::RawVocab {
  std::string source;        // file name for messages
  std::string tokens_field;  // e.g. "tokenizer.ggml.tokens"
  std::string merges_field;  // e.g. "model.merges"
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::pair<std::string, std::string>> merges;
  PreTokenizer pre = PreTokenizer::kQwen35;
  bool nfc = true;
  bool ignore_merges = false;
  // Special ids with the field they came from ("" = absent).
  struct SpecialId {
    int64_t id = -1;
    std::string field;
  };
  SpecialId bos, eos, pad;
  bool add_bos = false;
};

namespace {

constexpr int64_t kMaxVocab = int64_t(1) << 24;  // far above any real vocabulary

// Printable form of a token for error messages.
std::string printable(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s.substr(0, 64)) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (s.size() > 64) out += "...";
  return out + "'";
}

// llama.cpp's converter rule: added tokens are control tokens when flagged
// special or spelled like <|...|> (also the full-width variant); the others
// (<think>, <tool_call>, ...) are user-defined.
bool looks_like_control(std::string_view s) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return s.size() >= open.size() + close.size() && s.substr(0, open.size()) == open &&
           s.substr(s.size() - close.size()) == close;
  };
  return wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, ": read error");
  return ss.str();
}

}  // namespace

Tokenizer Tokenizer::build(RawVocab raw) {
  const std::string& src = raw.source;
  const size_t n = raw.tokens.size();
  if (n == 0) fail(src, ": ", raw.tokens_field, " is empty");
  if (int64_t(n) > kMaxVocab) fail(src, ": ", raw.tokens_field, " has ", n, " tokens (too many)");
  if (raw.types.size() != n) fail(src, ": token types and tokens differ in count");

  Tokenizer t;
  t.source_ = src;
  t.pre_ = raw.pre;
  t.nfc_ = raw.nfc;
  t.ignore_merges_ = raw.ignore_merges;
  t.add_bos_ = raw.add_bos;
  t.bytes_.resize(n);
  t.token_ids_.reserve(n);

  for (size_t i = 0; i < n; i++) {
    const std::string& s = raw.tokens[i];
    auto where = [&] { return str(src, ": ", raw.tokens_field, "[", i, "] ", printable(s)); };
    if (s.empty()) fail(where(), ": empty token");
    if (raw.types[i] == TokenType::kNormal) {
      if (!byte_level_to_bytes(s, t.bytes_[i])) {
        fail(where(), ": a normal token must be spelled with the 256 byte-level (GPT-2) symbols");
      }
      if (!t.token_ids_.emplace(s, int32_t(i)).second) {
        fail(where(), ": duplicate of token ", t.token_ids_[s]);
      }
    } else {
      if (find_invalid_utf8(s)) fail(where(), ": not valid UTF-8");
      t.bytes_[i] = s;  // special tokens render as their text
    }
  }

  // Every byte must have its single-symbol token, or some text is unencodable.
  for (int b = 0; b < 256; b++) {
    std::string symbol;
    append_utf8(symbol, byte_to_unicode(uint8_t(b)));
    auto it = t.token_ids_.find(symbol);
    if (it == t.token_ids_.end()) {
      fail(src, ": ", raw.tokens_field, " lacks the byte-level symbol ", printable(symbol),
           " for byte 0x", "0123456789abcdef"[b >> 4], "0123456789abcdef"[b & 15]);
    }
    t.byte_token_[b] = it->second;
  }

  t.merges_ = std::make_unique<MergeTable>(raw.merges.size());
  t.n_merges_ = raw.merges.size();
  for (size_t i = 0; i < raw.merges.size(); i++) {
    const std::string& left = raw.merges[i].first;
    const std::string& right = raw.merges[i].second;
    auto where = [&] {
      return str(src, ": ", raw.merges_field, "[", i, "] (", printable(left), " ", printable(right),
                 ")");
    };
    auto id_of = [&](const std::string& s, const char* what) {
      auto it = t.token_ids_.find(s);
      if (it == t.token_ids_.end()) fail(where(), ": ", what, " is not a normal token");
      return it->second;
    };
    const int32_t l = id_of(left, "left part");
    const int32_t r = id_of(right, "right part");
    const int32_t result = id_of(left + right, "merged result");
    // A repeated pair keeps its first (highest-priority) rank.
    t.merges_->insert(l, r, Merge{uint32_t(i), result});
  }

  for (size_t i = 0; i < n; i++) {
    if (raw.types[i] == TokenType::kControl || raw.types[i] == TokenType::kUserDefined) {
      t.added_.push_back({raw.tokens[i], int32_t(i), raw.types[i] == TokenType::kControl});
    }
  }
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const AddedToken& a, const AddedToken& b) {
    const auto fa = static_cast<unsigned char>(a.text[0]),
               fb = static_cast<unsigned char>(b.text[0]);
    return fa != fb ? fa < fb : a.text.size() > b.text.size();
  });
  for (size_t i = 0; i + 1 < t.added_.size(); i++) {
    if (t.added_[i].text == t.added_[i + 1].text) {
      fail(src, ": tokens ", t.added_[i].id, " and ", t.added_[i + 1].id, " are both ",
           printable(t.added_[i].text));
    }
  }
  {
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
      while (k < t.added_.size() && static_cast<unsigned char>(t.added_[k].text[0]) < b) k++;
      t.added_begin_[b] = uint32_t(k);
    }
    t.added_begin_[256] = uint32_t(t.added_.size());
  }

  for (auto* special : {&raw.bos, &raw.eos, &raw.pad}) {
    if (special->field.empty()) continue;
    if (special->id < 0 || special->id >= int64_t(n)) {
      fail(src, ": ", special->field, " = ", special->id, " is out of range (", n, " tokens)");
    }
  }
  t.bos_id_ = int32_t(raw.bos.id);
  t.eos_id_ = int32_t(raw.eos.id);
  t.pad_id_ = int32_t(raw.pad.id);
  if (t.add_bos_ && t.bos_id_ < 0) fail(src, ": add_bos_token is set but there is no BOS token");

  t.tokens_ = std::move(raw.tokens);
  t.types_ = std::move(raw.types);
  return t;
}

// ---------------------------------------------------------------------------
// GGUF

Tokenizer Tokenizer::from_gguf(const gguf::File& file, const LoadOptions& options) {
  RawVocab raw;
  raw.source = file.path();
  const std::string& src = raw.source;

  const std::string& model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2") {
    fail(src, ": tokenizer.ggml.model is '", model, "'; only 'gpt2' (byte-level BPE) is supported");
  }

  if (options.pre_tokenizer) {
    raw.pre = *options.pre_tokenizer;
  } else {
    const std::string pre = file.get_string_or("tokenizer.ggml.pre", "");
    auto kind = pre_tokenizer_from_name(pre);
    if (!kind) {
      fail(src, ": tokenizer.ggml.pre '", pre,
           "' is not supported (known: qwen2, qwen35); choose one explicitly to load this file");
    }
    raw.pre = *kind;
  }
  raw.nfc = true;  // GGUF does not record the normalizer; Qwen's tokenizer.json declares NFC

  raw.tokens_field = "tokenizer.ggml.tokens";
  const gguf::Value& tokens = file.get_array("tokenizer.ggml.tokens");
  if (tokens.elem_type() != gguf::ValueType::STRING) {
    fail(src, ": tokenizer.ggml.tokens must be an array of strings, not of ",
         gguf::value_type_name(tokens.elem_type()));
  }
  raw.tokens = tokens.string_items();

  const gguf::Value& types = file.get_array("tokenizer.ggml.token_type");
  if (!types.is_array() || types.elem_type() == gguf::ValueType::STRING ||
      types.elem_type() == gguf::ValueType::ARRAY) {
    fail(src, ": tokenizer.ggml.token_type must be an array of integers");
  }
  std::vector<int64_t> type_values;
  try {
    type_values = types.as_ints();
  } catch (const Error& e) {
    fail(src, ": tokenizer.ggml.token_type: ", e.what());
  }
  if (type_values.size() != raw.tokens.size()) {
    fail(src, ": tokenizer.ggml.token_type has ", type_values.size(), " entries but ",
         "tokenizer.ggml.tokens has ", raw.tokens.size());
  }
  raw.types.reserve(type_values.size());
  for (size_t i = 0; i < type_values.size(); i++) {
    const int64_t v = type_values[i];
    if (v != 1 && v != 3 && v != 4 && v != 5) {
      fail(src, ": tokenizer.ggml.token_type[", i, "] = ", v,
           " is not supported for a gpt2 vocabulary (1 normal, 3 control, 4 user-defined, 5 "
           "unused)");
    }
    raw.types.push_back(TokenType(v));
  }

  raw.merges_field = "tokenizer.ggml.merges";
  if (const gguf::Value* merges = file.find("tokenizer.ggml.merges")) {
    if (!merges->is_array() || merges->elem_type() != gguf::ValueType::STRING) {
      fail(src, ": tokenizer.ggml.merges must be an array of strings");
    }
    const auto& items = merges->string_items();
    raw.merges.reserve(items.size());
    for (size_t i = 0; i < items.size(); i++) {
      const std::string& m = items[i];
      const size_t space = m.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
          m.find(' ', space + 1) != std::string::npos) {
        fail(src, ": tokenizer.ggml.merges[", i, "] ", printable(m),
             " is not of the form 'left right'");
      }
      raw.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
  } else {
    fail(src, ": tokenizer.ggml.merges is missing (a gpt2 vocabulary needs its merges)");
  }

  auto special = [&](const char* key, RawVocab::SpecialId& out) {
    if (const gguf::Value* v = file.find(key)) {
      if (!v->is_integer()) fail(src, ": ", key, " must be an integer");
      try {
        out.id = v->as_i64();
      } catch (const Error& e) {
        fail(src, ": ", key, ": ", e.what());
      }
      out.field = key;
    }
  };
  special("tokenizer.ggml.bos_token_id", raw.bos);
  special("tokenizer.ggml.eos_token_id", raw.eos);
  special("tokenizer.ggml.padding_token_id", raw.pad);
  raw.add_bos = file.get_bool_or("tokenizer.ggml.add_bos_token", false);
  return build(std::move(raw));
}

// ---------------------------------------------------------------------------
// Hugging Face tokenizer.json

namespace {

using json = nlohmann::json;

// Reads a JSON field with a clear error naming the file and the path.
class JsonReader {
 public:
  explicit JsonReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void error(const std::string& path, const std::string& what) const {
    fail(source_, ": ", path, ": ", what);
  }
  const json& object(const json& parent, const std::string& key, const std::string& path) const {
    auto it = parent.find(key);
    if (it == parent.end()) error(path, "missing");
    if (!it->is_object()) error(path, "must be an object");
    return *it;
  }
  const json* optional(const json& parent, const std::string& key) const {
    auto it = parent.find(key);
    return it == parent.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string(const json& parent, const std::string& key, const std::string& path) const {
    auto it = parent.find(key);
    if (it == parent.end()) error(path, "missing");
    if (!it->is_string()) error(path, "must be a string");
    return it->get<std::string>();
  }
  bool boolean_or(const json& parent, const std::string& key, bool dflt,
                  const std::string& path) const {
    const json* v = optional(parent, key);
    if (!v) return dflt;
    if (!v->is_boolean()) error(path, "must be true or false");
    return v->get<bool>();
  }
  int64_t id(const json& v, const std::string& path) const {
    if (!v.is_number_integer()) error(path, "must be an integer token id");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= kMaxVocab) error(path, str("token id ", id, " is out of range"));
    return id;
  }

 private:
  std::string source_;
};

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
}

// NFC presence: null, {"type": "NFC"}, or a Sequence of NFC normalizers.
bool read_normalizer(const JsonReader& r, const json* normalizer) {
  if (!normalizer) return false;
  if (!normalizer->is_object()) r.error("normalizer", "must be an object or null");
  const std::string type = r.string(*normalizer, "type", "normalizer.type");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    auto it = normalizer->find("normalizers");
    if (it == normalizer->end() || !it->is_array()) {
      r.error("normalizer.normalizers", "must be an array");
    }
    bool nfc = false;
    for (size_t i = 0; i < it->size(); i++) {
      const std::string path = str("normalizer.normalizers[", i, "]");
      if (!(*it)[i].is_object()) r.error(path, "must be an object");
      if (read_normalizer(r, &(*it)[i])) nfc = true;
    }
    return nfc;
  }
  r.error("normalizer.type", str("'", type, "' is not supported (only NFC)"));
}

// The pre_tokenizer must be Sequence[Split(qwen regex, Isolated), ByteLevel(no
// regex, no prefix space)] (or that Split alone followed by nothing).
PreTokenizer read_pre_tokenizer(const JsonReader& r, const json& root) {
  const json* pre = r.optional(root, "pre_tokenizer");
  if (!pre || !pre->is_object()) {
    r.error("pre_tokenizer", "missing; choose a pre-tokenizer explicitly to load this file");
  }
  std::vector<std::pair<const json*, std::string>> steps;
  const std::string type = r.string(*pre, "type", "pre_tokenizer.type");
  if (type == "Sequence") {
    auto it = pre->find("pretokenizers");
    if (it == pre->end() || !it->is_array())
      r.error("pre_tokenizer.pretokenizers", "must be an array");
    for (size_t i = 0; i < it->size(); i++) {
      if (!(*it)[i].is_object())
        r.error(str("pre_tokenizer.pretokenizers[", i, "]"), "must be an object");
      steps.emplace_back(&(*it)[i], str("pre_tokenizer.pretokenizers[", i, "]"));
    }
  } else {
    steps.emplace_back(pre, "pre_tokenizer");
  }
  std::optional<PreTokenizer> kind;
  for (const auto& [step, path] : steps) {
    const std::string step_type = r.string(*step, "type", path + ".type");
    if (step_type == "Split") {
      if (kind) r.error(path, "more than one Split is not supported");
      const json* pattern = r.optional(*step, "pattern");
      if (!pattern || !pattern->is_object() || !pattern->contains("Regex")) {
        r.error(path + ".pattern", "must be {\"Regex\": ...}");
      }
      const std::string regex = r.string(*pattern, "Regex", path + ".pattern.Regex");
      kind = pre_tokenizer_from_regex(regex);
      if (!kind) {
        r.error(path + ".pattern.Regex",
                "unknown regex (not the qwen2 or qwen35 one); choose a "
                "pre-tokenizer explicitly to load this file");
      }
      const std::string behavior = r.string(*step, "behavior", path + ".behavior");
      if (behavior != "Isolated") r.error(path + ".behavior", "must be Isolated, not " + behavior);
      if (r.boolean_or(*step, "invert", false, path + ".invert"))
        r.error(path + ".invert", "must be false");
    } else if (step_type == "ByteLevel") {
      if (r.boolean_or(*step, "add_prefix_space", false, path + ".add_prefix_space")) {
        r.error(path + ".add_prefix_space", "must be false");
      }
      if (r.boolean_or(*step, "use_regex", true, path + ".use_regex")) {
        r.error(path + ".use_regex", "the GPT-2 regex is not supported (must be false)");
      }
    } else {
      r.error(path + ".type", "'" + step_type + "' is not supported");
    }
  }
  if (!kind) r.error("pre_tokenizer", "no Split regex found; choose a pre-tokenizer explicitly");
  return *kind;
}

// A special token named in tokenizer_config.json: "text" or {"content": "text"}.
std::optional<std::string> config_token(const JsonReader& r, const json& config, const char* key) {
  const json* v = r.optional(config, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return r.string(*v, "content", str(key, ".content"));
  r.error(key, "must be a string, an object with content, or null");
}

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(std::string_view json_text, std::string_view config_json,
                                         const std::string& name, const LoadOptions& options) {
  const json root = parse_json(json_text, name);
  const JsonReader r(name);
  if (!root.is_object()) r.error("(root)", "must be an object");

  RawVocab raw;
  raw.source = name;
  raw.tokens_field = "model.vocab";
  raw.merges_field = "model.merges";

  const json& model = r.object(root, "model", "model");
  const std::string type = r.string(model, "type", "model.type");
  if (type != "BPE") r.error("model.type", "'" + type + "' is not supported (only BPE)");
  if (r.boolean_or(model, "byte_fallback", false, "model.byte_fallback")) {
    r.error("model.byte_fallback", "byte fallback is not supported (must be false)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = r.optional(model, key);
    if (v && (!v->is_string() || !v->get<std::string>().empty())) {
      r.error(str("model.", key), "must be empty");
    }
  }
  if (const json* dropout = r.optional(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      r.error("model.dropout", "BPE dropout is not supported (must be null)");
    }
  }
  raw.ignore_merges = r.boolean_or(model, "ignore_merges", false, "model.ignore_merges");

  // Vocabulary: byte-level spelling -> id, then added tokens on top.
  const json& vocab = r.object(model, "vocab", "model.vocab");
  std::vector<std::optional<std::pair<std::string, TokenType>>> slots;
  auto place = [&](int64_t id, std::string text, TokenType type, const std::string& path) {
    if (size_t(id) >= slots.size()) slots.resize(size_t(id) + 1);
    auto& slot = slots[size_t(id)];
    // An added token may take over a vocab id; anything else is a clash.
    if (slot && (type == TokenType::kNormal || slot->second != TokenType::kNormal)) {
      r.error(path, str("id ", id, " is used twice (also by ", printable(slot->first), ")"));
    }
    slot.emplace(std::move(text), type);
  };
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    place(r.id(it.value(), "model.vocab[" + printable(it.key()) + "]"), it.key(),
          TokenType::kNormal, "model.vocab[" + printable(it.key()) + "]");
  }

  if (const json* added = r.optional(root, "added_tokens")) {
    if (!added->is_array()) r.error("added_tokens", "must be an array");
    for (size_t i = 0; i < added->size(); i++) {
      const std::string path = str("added_tokens[", i, "]");
      const json& a = (*added)[i];
      if (!a.is_object()) r.error(path, "must be an object");
      auto id_it = a.find("id");
      if (id_it == a.end()) r.error(path + ".id", "missing");
      const int64_t id = r.id(*id_it, path + ".id");
      std::string content = r.string(a, "content", path + ".content");
      if (content.empty()) r.error(path + ".content", "is empty");
      for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
        if (r.boolean_or(a, flag, false, path + "." + flag)) {
          r.error(path + "." + flag, "is not supported (must be false)");
        }
      }
      const bool special = r.boolean_or(a, "special", false, path + ".special");
      const TokenType t =
          special || looks_like_control(content) ? TokenType::kControl : TokenType::kUserDefined;
      place(id, std::move(content), t, path);
    }
  }

  for (size_t i = 0; i < slots.size(); i++) {
    if (!slots[i]) r.error("model.vocab", str("no token has id ", i, " (ids must be contiguous)"));
    raw.tokens.push_back(std::move(slots[i]->first));
    raw.types.push_back(slots[i]->second);
  }

  // Merges: "left right" strings or ["left", "right"] pairs.
  {
    auto it = model.find("merges");
    if (it == model.end() || !it->is_array()) r.error("model.merges", "must be an array");
    raw.merges.reserve(it->size());
    for (size_t i = 0; i < it->size(); i++) {
      const json& m = (*it)[i];
      const std::string path = str("model.merges[", i, "]");
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
            s.find(' ', space + 1) != std::string::npos) {
          r.error(path, printable(s) + " is not of the form 'left right'");
        }
        raw.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        raw.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        r.error(path, "must be \"left right\" or [\"left\", \"right\"]");
      }
    }
  }

  raw.nfc = read_normalizer(r, r.optional(root, "normalizer"));
  raw.pre = options.pre_tokenizer ? *options.pre_tokenizer : read_pre_tokenizer(r, root);

  if (const json* decoder = r.optional(root, "decoder")) {
    if (!decoder->is_object() || r.string(*decoder, "type", "decoder.type") != "ByteLevel") {
      r.error("decoder", "only the ByteLevel decoder is supported");
    }
  }
  if (const json* post = r.optional(root, "post_processor")) {
    if (!post->is_object() || r.string(*post, "type", "post_processor.type") != "ByteLevel") {
      r.error("post_processor", "only ByteLevel (no added BOS/EOS) is supported");
    }
  }

  // bos/eos/pad and add_bos_token live in tokenizer_config.json.
  std::optional<std::string> bos, eos, pad;
  std::string config_name = name + " (tokenizer_config.json)";
  if (!config_json.empty()) {
    const json config = parse_json(config_json, config_name);
    const JsonReader cr(config_name);
    if (!config.is_object()) cr.error("(root)", "must be an object");
    bos = config_token(cr, config, "bos_token");
    eos = config_token(cr, config, "eos_token");
    pad = config_token(cr, config, "pad_token");
    raw.add_bos = cr.boolean_or(config, "add_bos_token", false, "add_bos_token");
  }
  auto resolve = [&](const std::optional<std::string>& text, const char* key,
                     RawVocab::SpecialId& out) {
    if (!text) return;
    for (size_t i = 0; i < raw.tokens.size(); i++) {
      if (raw.tokens[i] == *text) {
        out.id = int64_t(i);
        out.field = key;
        return;
      }
    }
    fail(config_name, ": ", key, " ", printable(*text), " is not a token of ", name);
  };
  resolve(bos, "bos_token", raw.bos);
  resolve(eos, "eos_token", raw.eos);
  resolve(pad, "pad_token", raw.pad);
  return build(std::move(raw));
}

Tokenizer Tokenizer::load(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  // A Hugging Face model folder: its tokenizer.json.
  if (std::filesystem::is_directory(path, ec)) {
    const auto json_path = std::filesystem::path(path) / "tokenizer.json";
    if (!std::filesystem::is_regular_file(json_path, ec)) {
      fail(path, ": a folder without tokenizer.json (expected a GGUF or a tokenizer.json)");
    }
    return load(json_path.string(), options);
  }
  char magic[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open");
    in.read(magic, 4);
  }
  if (std::string_view(magic, 4) == "GGUF") {
    return from_gguf(gguf::File::open(path), options);
  }
  const std::string text = read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    fail(path, ": neither a GGUF file nor a tokenizer.json");
  }
  std::string config;
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(config_path, ec)) config = read_file(config_path.string());
  return from_tokenizer_json(text, config, path, options);
}

}  // namespace pocket::text

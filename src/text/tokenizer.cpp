#include "text/tokenizer.h"

#include "text/tokenizer_impl.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <mutex>

#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace pocket::text {

Tokenizer::Tokenizer() : cache_(std::make_unique<WordCache>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::check_id(int32_t id) const {
  if (id < 0 || size_t(id) >= tokens_.size()) {
    fail("token id ", id, " is out of range (the vocabulary of ", source_, " has ", tokens_.size(),
         " tokens)");
  }
  return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  return tokens_[check_id(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
  return types_[check_id(id)];
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  if (auto it = token_ids_.find(std::string(text)); it != token_ids_.end()) return it->second;
  for (const AddedToken& t : added_) {
    if (t.text == text) return t.id;
  }
  for (size_t i = 0; i < tokens_.size(); i++) {
    if (types_[i] == TokenType::kUnused && tokens_[i] == text) return int32_t(i);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Encoding

void Tokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_token_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    if (auto it = token_ids_.find(bytes_to_byte_level(word)); it != token_ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  // Symbols form a linked list over the word's bytes; a merge folds the right
  // symbol into the left one. Candidate pairs wait in a min-heap ordered by
  // (rank, position) -- lowest rank first, leftmost on ties, as in the
  // reference implementations. Entries go stale when a neighbour merges; they
  // are recognised on pop because the ids no longer match.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Candidate {
    uint32_t rank;
    int32_t left;
    int32_t left_id, right_id;
  };
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  symbols.clear();
  heap.clear();

  const int32_t n = int32_t(word.size());
  for (int32_t i = 0; i < n; i++) {
    symbols.push_back(
        {byte_token_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1});
  }
  auto push_candidate = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    if (const Merge* m = merges_->find(symbols[left].id, symbols[right].id)) {
      heap.push_back({m->rank, left, symbols[left].id, symbols[right].id});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (int32_t i = 0; i + 1 < n; i++) push_candidate(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.left];
    if (left.id != c.left_id || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (right.id != c.right_id) continue;
    left.id = merges_->find(c.left_id, c.right_id)->result;
    right.id = -1;  // removed
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    push_candidate(left.prev);
    push_candidate(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

void Tokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > WordCache::kMaxWordBytes) {
    bpe(word, out);
    return;
  }
  const uint64_t hash = WordCache::hash(word);
  if (cache_->lookup(word, hash, out)) return;
  const size_t start = out.size();
  bpe(word, out);
  cache_->store(word, hash, out.data() + start, out.size() - start);
}

void Tokenizer::encode_text(std::string_view text, const EncodeOptions& options,
                            std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::string normalized;
  if (options.normalize && nfc_ && nfc_normalize(text, normalized)) text = normalized;
  pre_tokenize(text, pre_, [&](std::string_view piece) { encode_word(piece, out); });
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::string repaired;
  if (auto bad = find_invalid_utf8(text)) {
    if (!options.lenient_utf8) {
      fail("text is not valid UTF-8: ill-formed sequence at byte offset ", *bad, " (byte 0x",
           "0123456789abcdef"[static_cast<unsigned char>(text[*bad]) >> 4],
           "0123456789abcdef"[static_cast<unsigned char>(text[*bad]) & 15], ")");
    }
    repaired = replace_invalid_utf8(text);
    text = repaired;
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_bos.value_or(add_bos_)) {
    if (bos_id_ < 0) fail(source_, ": BOS requested but the vocabulary defines no BOS token");
    out.push_back(bos_id_);
  }

  // Added tokens are matched on the raw text, leftmost first and longest
  // first at one position; the text between them goes through BPE.
  size_t segment_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    const AddedToken* match = nullptr;
    for (uint32_t i = added_begin_[b]; i < added_begin_[b + 1]; i++) {  // longest first
      const AddedToken& t = added_[i];
      if (t.control && !options.parse_special) continue;
      if (text.compare(pos, t.text.size(), t.text) == 0) {
        match = &t;
        break;
      }
    }
    if (!match) {
      pos++;
      continue;
    }
    encode_text(text.substr(segment_start, pos - segment_start), options, out);
    out.push_back(match->id);
    pos += match->text.size();
    segment_start = pos;
  }
  encode_text(text.substr(segment_start), options, out);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

std::string_view Tokenizer::token_bytes(int32_t id, const DecodeOptions& options) const {
  check_id(id);
  const TokenType type = types_[id];
  if (!options.render_special && (type == TokenType::kControl || type == TokenType::kUnused)) {
    return {};
  }
  return bytes_[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, options);
  return out;
}

std::string StreamingDecoder::push(int32_t id) {
  return push_bytes(tokenizer_->token_bytes(id, options_));
}

std::string StreamingDecoder::push_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const Utf8Step s = utf8_step(pending_.data() + i, pending_.size() - i);
    if (s.status == Utf8Status::kTruncated) break;  // wait for the rest
    if (s.status == Utf8Status::kValid) {
      out.append(pending_, i, s.length);
    } else {
      out.append(kReplacementUtf8);
    }
    i += s.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDecoder::finish() {
  std::string out = replace_invalid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace pocket::text

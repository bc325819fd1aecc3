// Internal tables of the Tokenizer, shared by tokenizer.cpp and
// tokenizer_load.cpp. Not part of the public interface.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace pocket::text {

// (left id, right id) -> (rank, merged id), open addressing. The BPE inner
// loop does one lookup per candidate pair, so this is the hot table.
class Tokenizer::MergeTable {
 public:
  explicit MergeTable(size_t n_merges) {
    size_t capacity = 16;
    while (capacity < n_merges * 2) capacity *= 2;
    keys_.assign(capacity, kEmpty);
    values_.resize(capacity);
    mask_ = capacity - 1;
  }

  // Returns false if the pair is already present (the first rank is kept).
  bool insert(int32_t left, int32_t right, Merge merge) {
    const uint64_t key = make_key(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return false;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = merge;
        return true;
      }
    }
  }

  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = make_key(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t make_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0;
};

// Pre-token bytes -> BPE ids. Natural text repeats its words constantly, so
// this removes most of the BPE work. Each shard is a flat open-addressing
// table whose keys and ids live in one byte arena (no allocation per entry);
// a full shard is simply emptied. Sharding keeps concurrent encoders from
// waiting on each other.
class Tokenizer::WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 128;

  // A fast hash for short byte strings (8 bytes at a time, multiply-mix).
  static uint64_t hash(std::string_view s) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xFF51AFD7ED558CCDull;
      h ^= h >> 32;
    }
    if (i < s.size()) {
      uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    }
    return h ^ (h >> 29);
  }

  bool lookup(std::string_view word, uint64_t h, std::vector<int32_t>& out) {
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.entries.empty()) return false;
    for (size_t i = (h >> 8) & kSlotMask;; i = (i + 1) & kSlotMask) {
      const Entry& e = s.entries[i];
      if (e.n_ids == 0) return false;
      if (e.hash == h && e.word_len == word.size() &&
          std::memcmp(s.arena.data() + e.offset, word.data(), word.size()) == 0) {
        const char* ids = s.arena.data() + e.offset + e.word_len;
        const size_t start = out.size();
        out.resize(start + e.n_ids);
        std::memcpy(out.data() + start, ids, e.n_ids * sizeof(int32_t));
        return true;
      }
    }
  }

  void store(std::string_view word, uint64_t h, const int32_t* ids, size_t n) {
    if (n == 0 || n > kMaxWordBytes) return;
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.entries.empty() || s.used >= kMaxEntries || s.arena.size() > kMaxArenaBytes) {
      s.entries.assign(kSlots, Entry{});
      s.arena.clear();
      s.used = 0;
    }
    size_t i = (h >> 8) & kSlotMask;
    while (s.entries[i].n_ids != 0) {
      if (s.entries[i].hash == h && s.entries[i].word_len == word.size() &&
          std::memcmp(s.arena.data() + s.entries[i].offset, word.data(), word.size()) == 0) {
        return;  // stored meanwhile by another thread
      }
      i = (i + 1) & kSlotMask;
    }
    Entry& e = s.entries[i];
    e.hash = h;
    e.offset = uint32_t(s.arena.size());
    e.word_len = uint16_t(word.size());
    e.n_ids = uint16_t(n);
    s.arena.insert(s.arena.end(), word.begin(), word.end());
    const char* id_bytes = reinterpret_cast<const char*>(ids);
    s.arena.insert(s.arena.end(), id_bytes, id_bytes + n * sizeof(int32_t));
    s.used++;
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint32_t offset = 0;  // of the word in the arena; its ids follow it
    uint16_t word_len = 0;
    uint16_t n_ids = 0;  // 0 = empty slot
  };
  struct Shard {
    std::mutex mutex;
    std::vector<Entry> entries;  // allocated on first store
    std::vector<char> arena;
    size_t used = 0;
  };
  static constexpr size_t kShards = 16;
  static constexpr size_t kSlots = 1 << 13;  // per shard
  static constexpr size_t kSlotMask = kSlots - 1;
  static constexpr size_t kMaxEntries = kSlots / 2;
  static constexpr size_t kMaxArenaBytes = 1 << 20;
  std::array<Shard, kShards> shards_;
};

}  // namespace pocket::text

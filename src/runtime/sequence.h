// Per-sequence state (design/engine.md section 4):
//  - attention layers: a KV cache in fixed-size pages taken from a shared,
//    reference-counted KvPool, so forked sequences share their common prefix
//    and copy a page only when they write into a shared one;
//  - delta-net layers: the conv state and the recurrent state, fixed size per
//    sequence, f32.
//
//   runtime::KvPool pool(model, {.kv_type = KvType::F32});
//   runtime::Sequence seq(model, pool, /*n_ctx=*/4096);
//   model.forward({{{&seq, prompt}}}, ws);      // prefill
//   runtime::Sequence alt = seq.fork();          // share the prefix
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "model/batch.h"
#include "model/model.h"
#include "util/huge_page_allocator.h"

namespace pocket::runtime {

using kernels::KvType;

struct KvPoolOptions {
  KvType kv_type = KvType::F16;
  int64_t page_tokens = 32;  // positions per page
  uint64_t max_bytes = 0;    // limit on page memory; 0 = no limit
};

// Neither KvPool nor Sequence is thread-safe: one thread (the engine thread)
// owns a pool and its sequences.

// Pages of KV cache memory. One page holds page_tokens positions of K and V
// for every attention layer of the model. Pages are reference-counted: a page
// is returned to the free list when its last user lets go of it.
class KvPool {
 public:
  KvPool(const model::Model& model, const KvPoolOptions& options = {});
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  KvType kv_type() const { return options_.kv_type; }
  int64_t page_tokens() const { return options_.page_tokens; }
  uint64_t page_bytes() const { return page_bytes_; }
  // Byte offsets of attention layer `layer`'s K and V rows inside a page.
  uint64_t k_offset(int64_t layer) const { return uint64_t(layer) * 2 * block_bytes_; }
  uint64_t v_offset(int64_t layer) const { return k_offset(layer) + block_bytes_; }

  // A fresh page with one reference. Throws when the memory limit is reached.
  int32_t allocate();
  void retain(int32_t page);
  void release(int32_t page);
  int32_t ref_count(int32_t page) const { return refs_[size_t(page)]; }
  uint8_t* data(int32_t page) const { return pages_[size_t(page)].get(); }

  uint64_t bytes_allocated() const { return uint64_t(pages_.size()) * page_bytes_; }
  uint64_t bytes_in_use() const { return uint64_t(pages_.size() - free_.size()) * page_bytes_; }

 private:
  KvPoolOptions options_;
  uint64_t block_bytes_ = 0;  // one layer's K (or V) rows in a page
  uint64_t page_bytes_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> pages_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;
};

// The state of one sequence: what model::forward reads and writes.
// Prefilling many tokens at once and feeding them one by one give the same state.
class Sequence : public model::SequenceMemory {
 public:
  // n_ctx: the context length (positions this sequence may hold).
  Sequence(const model::Model& model, KvPool& pool, int64_t n_ctx);
  ~Sequence() override;
  Sequence(Sequence&&) noexcept;
  Sequence& operator=(Sequence&&) noexcept;
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // A copy of this sequence's state that continues independently: KV pages are
  // shared (copied on the first write), the recurrent state is copied.
  Sequence fork() const;
  // Back to empty (position 0), releasing the KV pages.
  void reset();

  int64_t n_ctx() const { return n_ctx_; }
  uint64_t kv_bytes() const;         // pages this sequence references (shared ones too)
  uint64_t recurrent_bytes() const;  // conv + recurrent state
  int64_t n_pages() const { return int64_t(page_ids_.size()); }

  // model::SequenceMemory
  int64_t n_tokens() const override { return n_tokens_; }
  void reserve(int64_t n) override;
  void commit(int64_t n) override;
  kernels::KvView kv(int64_t index) override;
  float* conv_state(int64_t index) override;
  float* recurrent_state(int64_t index) override;

 private:
  void release_pages();

  const model::Model* model_;
  KvPool* pool_;
  int64_t n_ctx_;
  int64_t n_tokens_ = 0;
  std::vector<int32_t> page_ids_;
  std::vector<uint8_t*> page_ptrs_;  // page_ids_ resolved, as KvView wants them
  std::vector<float> conv_;          // n_deltanet_layers x conv_state_floats
  // n_deltanet_layers x recurrent_state_floats, on huge pages where the system
  // has them (read and written once per token: fewer TLB misses).
  std::vector<float, HugePageAllocator<float>> recurrent_;
};

}  // namespace pocket::runtime

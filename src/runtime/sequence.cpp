#include "runtime/sequence.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace pocket::runtime {

// ---- KvPool -------------------------------------------------------------------

KvPool::KvPool(const model::Model& model, const KvPoolOptions& options) : options_(options) {
  if (options_.page_tokens <= 0) fail("KV cache: page size must be positive");
  if (options_.kv_type == KvType::Q8_0 && model.config().head_dim % 32 != 0)
    fail(
        "KV cache type q8_0 needs a head size that is a multiple of 32 (blocks of 32 values); "
        "this model's head size is ",
        model.config().head_dim, ": use --kv-type f16 or f32");
  block_bytes_ =
      uint64_t(options_.page_tokens) * kernels::kv_bytes(options_.kv_type, model.kv_row_elems());
  page_bytes_ = 2 * block_bytes_ * uint64_t(model.config().n_attention_layers());
}

int32_t KvPool::allocate() {
  if (!free_.empty()) {
    const int32_t page = free_.back();
    free_.pop_back();
    refs_[size_t(page)] = 1;
    return page;
  }
  if (options_.max_bytes > 0 && bytes_allocated() + page_bytes_ > options_.max_bytes)
    fail("KV cache memory limit reached: ", options_.max_bytes, " bytes (", pages_.size(),
         " pages of ", page_bytes_, " bytes in use)");
  // Zeroed, so that unused rows never hold garbage (f16 NaN patterns etc.).
  pages_.push_back(std::make_unique<uint8_t[]>(size_t(page_bytes_)));
  refs_.push_back(1);
  return int32_t(pages_.size() - 1);
}

void KvPool::retain(int32_t page) { refs_[size_t(page)]++; }

void KvPool::release(int32_t page) {
  if (--refs_[size_t(page)] == 0) free_.push_back(page);
}

// ---- Sequence -----------------------------------------------------------------

Sequence::Sequence(const model::Model& model, KvPool& pool, int64_t n_ctx)
    : model_(&model), pool_(&pool), n_ctx_(n_ctx) {
  if (n_ctx <= 0) fail("sequence: context length must be positive, got ", n_ctx);
  const model::Config& c = model.config();
  conv_.assign(size_t(c.n_deltanet_layers() * model.conv_state_floats()), 0.0f);
  recurrent_.assign(size_t(c.n_deltanet_layers() * model.recurrent_state_floats()), 0.0f);
}

Sequence::~Sequence() { release_pages(); }

Sequence::Sequence(Sequence&& o) noexcept
    : model_(o.model_),
      pool_(o.pool_),
      n_ctx_(o.n_ctx_),
      n_tokens_(std::exchange(o.n_tokens_, 0)),
      page_ids_(std::move(o.page_ids_)),
      page_ptrs_(std::move(o.page_ptrs_)),
      conv_(std::move(o.conv_)),
      recurrent_(std::move(o.recurrent_)) {
  o.page_ids_.clear();
  o.page_ptrs_.clear();
}

Sequence& Sequence::operator=(Sequence&& o) noexcept {
  if (this != &o) {
    release_pages();
    model_ = o.model_;
    pool_ = o.pool_;
    n_ctx_ = o.n_ctx_;
    n_tokens_ = std::exchange(o.n_tokens_, 0);
    page_ids_ = std::move(o.page_ids_);
    page_ptrs_ = std::move(o.page_ptrs_);
    conv_ = std::move(o.conv_);
    recurrent_ = std::move(o.recurrent_);
    o.page_ids_.clear();
    o.page_ptrs_.clear();
  }
  return *this;
}

void Sequence::release_pages() {
  for (int32_t page : page_ids_) pool_->release(page);
  page_ids_.clear();
  page_ptrs_.clear();
}

Sequence Sequence::fork() const {
  Sequence copy(*model_, *pool_, n_ctx_);
  copy.n_tokens_ = n_tokens_;
  copy.page_ids_ = page_ids_;
  copy.page_ptrs_ = page_ptrs_;
  for (int32_t page : page_ids_) pool_->retain(page);
  copy.conv_ = conv_;
  copy.recurrent_ = recurrent_;
  return copy;
}

void Sequence::reset() {
  release_pages();
  n_tokens_ = 0;
  std::fill(conv_.begin(), conv_.end(), 0.0f);
  std::fill(recurrent_.begin(), recurrent_.end(), 0.0f);
}

uint64_t Sequence::kv_bytes() const { return uint64_t(page_ids_.size()) * pool_->page_bytes(); }

uint64_t Sequence::recurrent_bytes() const {
  return uint64_t(conv_.size() + recurrent_.size()) * sizeof(float);
}

void Sequence::reserve(int64_t n) {
  if (n < 0) fail("sequence: cannot reserve ", n, " tokens");
  if (n_tokens_ + n > n_ctx_)
    fail("context length ", n_ctx_, " exceeded: the sequence holds ", n_tokens_,
         " tokens and ", n, " more were given");
  if (pool_->page_bytes() == 0) return;  // no attention layers
  const int64_t P = pool_->page_tokens();
  const int64_t end = n_tokens_ + n;
  // Unshare the pages the new positions will be written into (copy on write).
  for (int64_t i = n_tokens_ / P; i < std::min<int64_t>(int64_t(page_ids_.size()), (end + P - 1) / P);
       i++) {
    const int32_t old = page_ids_[size_t(i)];
    if (pool_->ref_count(old) == 1) continue;
    const int32_t fresh = pool_->allocate();
    std::memcpy(pool_->data(fresh), pool_->data(old), size_t(pool_->page_bytes()));
    pool_->release(old);
    page_ids_[size_t(i)] = fresh;
    page_ptrs_[size_t(i)] = pool_->data(fresh);
  }
  while (int64_t(page_ids_.size()) * P < end) {
    const int32_t page = pool_->allocate();
    page_ids_.push_back(page);
    page_ptrs_.push_back(pool_->data(page));
  }
}

void Sequence::commit(int64_t n) {
  if (n_tokens_ + n > n_ctx_) fail("sequence: commit past the context length");
  n_tokens_ += n;
}

kernels::KvView Sequence::kv(int64_t index) {
  kernels::KvView v;
  v.type = pool_->kv_type();
  v.row_elems = model_->kv_row_elems();
  v.page_tokens = pool_->page_tokens();
  v.pages = page_ptrs_.data();
  v.k_offset = pool_->k_offset(index);
  v.v_offset = pool_->v_offset(index);
  return v;
}

float* Sequence::conv_state(int64_t index) {
  return conv_.data() + index * model_->conv_state_floats();
}

float* Sequence::recurrent_state(int64_t index) {
  return recurrent_.data() + index * model_->recurrent_state_floats();
}

}  // namespace pocket::runtime

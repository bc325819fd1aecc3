// Sequence state: prefill in one call == chunked prefill == one token at a time;
// batches of several sequences == each alone; fork; reset; context length;
// memory accounting; KV page sizes and f16 storage.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/sequence.h"
#include "util/error.h"

namespace pocket::runtime {
namespace {

constexpr double kSamePath = 1e-4;  // prefill vs decode: must agree to f32 rounding

std::string model_path(const std::string& stem) {
  return std::string(POCKET_SHARED_DIR) + "/golden/" + stem + ".gguf";
}

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; i++) out.push_back(int32_t(gen() % uint32_t(n_vocab)));
  return out;
}

double max_diff(const float* a, const float* b, int64_t n) {
  double d = 0.0;
  for (int64_t i = 0; i < n; i++) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

// Feeds tokens in chunks of the given sizes (cycled); returns the logits of
// every position, in order.
std::vector<std::vector<float>> run_chunks(const model::Model& m, Sequence& seq,
                                           const std::vector<int32_t>& tokens,
                                           const std::vector<int64_t>& sizes) {
  model::Workspace ws;
  std::vector<std::vector<float>> out;
  size_t i = 0, c = 0;
  while (i < tokens.size()) {
    const size_t len = std::min(size_t(sizes[c++ % sizes.size()]), tokens.size() - i);
    model::Batch b;
    b.segments.push_back({&seq, std::span<const int32_t>(tokens).subspan(i, len), model::Logits::kAll});
    m.forward(b, ws);
    for (int64_t r = 0; r < ws.n_logits(); r++)
      out.emplace_back(ws.logits(r), ws.logits(r) + ws.n_vocab());
    i += len;
  }
  return out;
}

class SequenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { model_ = model::Model::load(model_path(GetParam())); }
  int64_t vocab() const { return model_->config().n_vocab; }
  std::unique_ptr<model::Model> model_;
};

TEST_P(SequenceTest, PrefillEqualsOneTokenAtATimeAndAwkwardChunks) {
  // 45 tokens: several attention and delta-net layers, conv history and KV pages
  // of 32 crossed at odd offsets.
  const std::vector<int32_t> prompt = random_tokens(45, vocab(), 7);
  KvPool pool(*model_, {.kv_type = KvType::F32});

  Sequence whole(*model_, pool, 128);
  const auto ref = run_chunks(*model_, whole, prompt, {int64_t(prompt.size())});
  ASSERT_EQ(ref.size(), prompt.size());

  const std::vector<std::vector<int64_t>> splits = {{1}, {2, 3}, {7, 1, 13}, {31, 14}, {3, 1, 4, 1, 5, 9, 2, 6}};
  for (const auto& sizes : splits) {
    Sequence seq(*model_, pool, 128);
    const auto got = run_chunks(*model_, seq, prompt, sizes);
    ASSERT_EQ(got.size(), ref.size());
    double worst = 0.0;
    for (size_t i = 0; i < ref.size(); i++) worst = std::max(worst, max_diff(ref[i].data(), got[i].data(), vocab()));
    EXPECT_LT(worst, kSamePath) << "chunk sizes starting " << sizes[0];
    EXPECT_EQ(seq.n_tokens(), int64_t(prompt.size()));
  }
}

TEST_P(SequenceTest, BatchOfSequencesEqualsEachAlone) {
  const std::vector<int64_t> lengths = {5, 17, 1, 40};
  KvPool pool(*model_, {.kv_type = KvType::F32, .page_tokens = 8});
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<std::vector<float>>> alone;
  for (size_t s = 0; s < lengths.size(); s++) {
    prompts.push_back(random_tokens(lengths[s], vocab(), 100 + uint32_t(s)));
    Sequence seq(*model_, pool, 64);
    alone.push_back(run_chunks(*model_, seq, prompts[s], {lengths[s]}));
  }

  // All four prompts in one batch, then a mixed batch: decode steps for some,
  // a continued prefill chunk for another.
  std::vector<Sequence> seqs;
  for (size_t s = 0; s < lengths.size(); s++) seqs.emplace_back(*model_, pool, 64);
  model::Workspace ws;
  model::Batch b;
  for (size_t s = 0; s < lengths.size(); s++)
    b.segments.push_back({&seqs[s], prompts[s], model::Logits::kAll});
  model_->forward(b, ws);
  int64_t row = 0;
  for (size_t s = 0; s < lengths.size(); s++)
    for (int64_t t = 0; t < lengths[s]; t++, row++) {
      ASSERT_EQ(ws.row(row).segment, int32_t(s));
      ASSERT_EQ(ws.row(row).token, int32_t(t));
      EXPECT_LT(max_diff(ws.logits(row), alone[s][size_t(t)].data(), vocab()), kSamePath);
    }

  const std::vector<int32_t> more = random_tokens(6, vocab(), 999);
  model::Batch mixed;
  mixed.segments.push_back({&seqs[0], std::span<const int32_t>(more).subspan(0, 1), model::Logits::kLast});
  mixed.segments.push_back({&seqs[2], std::span<const int32_t>(more).subspan(1, 5), model::Logits::kLast});
  mixed.segments.push_back({&seqs[3], std::span<const int32_t>(more).subspan(0, 1), model::Logits::kNone});
  model_->forward(mixed, ws);
  ASSERT_EQ(ws.n_logits(), 2);
  // References: each sequence alone with the same continuation.
  const auto check = [&](size_t s, std::span<const int32_t> extra, const float* got) {
    std::vector<int32_t> all = prompts[s];
    all.insert(all.end(), extra.begin(), extra.end());
    Sequence seq(*model_, pool, 64);
    const auto ref = run_chunks(*model_, seq, all, {int64_t(all.size())});
    EXPECT_LT(max_diff(got, ref.back().data(), vocab()), kSamePath) << "sequence " << s;
  };
  check(0, std::span<const int32_t>(more).subspan(0, 1), ws.logits(0));
  check(2, std::span<const int32_t>(more).subspan(1, 5), ws.logits(1));
  EXPECT_EQ(seqs[3].n_tokens(), lengths[3] + 1);
}

TEST_P(SequenceTest, ForkContinuesIdenticallyAndIndependently) {
  const std::vector<int32_t> prompt = random_tokens(21, vocab(), 3);
  KvPool pool(*model_, {.kv_type = KvType::F32, .page_tokens = 8});
  Sequence base(*model_, pool, 64);
  model::Workspace ws;
  prefill(*model_, base, prompt, 64, ws);
  const std::vector<float> base_logits(ws.logits(0), ws.logits(0) + vocab());

  // Greedy continuations of the original and of a fork are the same.
  Sequence fork = base.fork();
  EXPECT_EQ(fork.n_tokens(), base.n_tokens());
  EXPECT_EQ(fork.n_pages(), base.n_pages());
  const uint64_t in_use = pool.bytes_in_use();
  GenerateOptions opt;
  opt.max_tokens = 8;
  opt.sampling.temperature = 0.0f;
  std::vector<int32_t> a, b;
  Sequence base_copy = base.fork();
  // Generate from the fork first: copy-on-write must keep base untouched.
  {
    const int32_t t0 = argmax({base_logits.data(), size_t(vocab())});
    for (Sequence* s : {&fork, &base_copy}) {
      std::vector<int32_t>& out = s == &fork ? a : b;
      out.push_back(t0);
      for (int i = 0; i < 8; i++) {
        model::Batch step;
        step.segments.push_back({s, std::span<const int32_t>(&out.back(), 1), model::Logits::kLast});
        model_->forward(step, ws);
        out.push_back(argmax({ws.logits(0), size_t(vocab())}));
      }
    }
  }
  EXPECT_EQ(a, b);
  EXPECT_GT(pool.bytes_in_use(), in_use);  // the last shared page was copied

  // base still produces its own logits, and a different token on a fork does
  // not disturb it.
  Sequence other = base.fork();
  const int32_t x = 11, y = 12;
  model::Batch bx, by;
  bx.segments.push_back({&base, std::span<const int32_t>(&x, 1), model::Logits::kLast});
  by.segments.push_back({&other, std::span<const int32_t>(&y, 1), model::Logits::kLast});
  model_->forward(by, ws);
  model_->forward(bx, ws);
  std::vector<int32_t> with_x = prompt;
  with_x.push_back(x);
  Sequence fresh(*model_, pool, 64);
  const auto ref = run_chunks(*model_, fresh, with_x, {int64_t(with_x.size())});
  EXPECT_LT(max_diff(ws.logits(0), ref.back().data(), vocab()), kSamePath);
}

TEST_P(SequenceTest, ResetStartsOver) {
  const std::vector<int32_t> prompt = random_tokens(9, vocab(), 5);
  KvPool pool(*model_, {.kv_type = KvType::F32});
  Sequence seq(*model_, pool, 32);
  const auto first = run_chunks(*model_, seq, prompt, {9});
  seq.reset();
  EXPECT_EQ(seq.n_tokens(), 0);
  EXPECT_EQ(seq.kv_bytes(), 0u);
  const auto again = run_chunks(*model_, seq, prompt, {4});
  EXPECT_EQ(max_diff(first.back().data(), again.back().data(), vocab()), 0.0);
}

TEST_P(SequenceTest, PageSizeDoesNotChangeResultsAndF16IsClose) {
  const std::vector<int32_t> prompt = random_tokens(30, vocab(), 9);
  KvPool f32_32(*model_, {.kv_type = KvType::F32, .page_tokens = 32});
  KvPool f32_3(*model_, {.kv_type = KvType::F32, .page_tokens = 3});
  KvPool f16(*model_, {.kv_type = KvType::F16, .page_tokens = 16});
  Sequence a(*model_, f32_32, 64), b(*model_, f32_3, 64), c(*model_, f16, 64);
  const auto ra = run_chunks(*model_, a, prompt, {30});
  const auto rb = run_chunks(*model_, b, prompt, {4, 7});
  const auto rc = run_chunks(*model_, c, prompt, {30});
  EXPECT_LT(max_diff(ra.back().data(), rb.back().data(), vocab()), kSamePath);
  const double f16_err = max_diff(ra.back().data(), rc.back().data(), vocab());
  EXPECT_LT(f16_err, 5e-2);
  EXPECT_EQ(b.n_pages(), 10);
}

// Mean over rows of KL(p || q), p and q the softmax of each row's logits.
double mean_kl(const std::vector<std::vector<float>>& p, const std::vector<std::vector<float>>& q) {
  double total = 0.0;
  for (size_t r = 0; r < p.size(); r++) {
    auto log_softmax = [](const std::vector<float>& x) {
      const double mx = *std::max_element(x.begin(), x.end());
      double z = 0.0;
      for (float v : x) z += std::exp(double(v) - mx);
      std::vector<double> out;
      for (float v : x) out.push_back(double(v) - mx - std::log(z));
      return out;
    };
    const std::vector<double> lp = log_softmax(p[r]), lq = log_softmax(q[r]);
    for (size_t i = 0; i < lp.size(); i++) total += std::exp(lp[i]) * (lp[i] - lq[i]);
  }
  return total / double(p.size());
}

// A Q8_0 KV cache (GGUF blocks of 32, d = amax / 127) stays close to f16:
// greedy decoding after a 40-token prompt (pages of 16 crossed) picks the same
// tokens, and the mean KL per position is far below that of attending to a
// different prompt, which is what garbled K/V rows would look like.
TEST_P(SequenceTest, Q8_0CacheStaysCloseToF16) {
  const std::vector<int32_t> prompt = random_tokens(40, vocab(), 11);
  std::vector<int32_t> other = random_tokens(40, vocab(), 12);
  other.back() = prompt.back();
  KvPool f16(*model_, {.kv_type = KvType::F16, .page_tokens = 16});
  KvPool q8(*model_, {.kv_type = KvType::Q8_0, .page_tokens = 16});
  EXPECT_EQ(q8.page_bytes() * 32, f16.page_bytes() * 17);  // 34 bytes per 32 values vs 64
  Sequence a(*model_, f16, 128), b(*model_, q8, 128), c(*model_, f16, 128);
  // Teacher-forced along f16's greedy tokens, so every step sees the same input.
  std::vector<std::vector<float>> la = run_chunks(*model_, a, prompt, {40}),
                                  lb = run_chunks(*model_, b, prompt, {13}),
                                  lc = run_chunks(*model_, c, other, {40});
  int64_t same_argmax = 0, steps = 24;
  for (int64_t step = 0; step < steps; step++) {
    const auto argmax = [](const std::vector<float>& x) {
      return int32_t(std::max_element(x.begin(), x.end()) - x.begin());
    };
    const int32_t next = argmax(la.back());
    same_argmax += argmax(lb.back()) == next;
    for (auto [seq, logits] : {std::pair{&a, &la}, std::pair{&b, &lb}, std::pair{&c, &lc}}) {
      const auto r = run_chunks(*model_, *seq, {next}, {1});
      logits->push_back(r[0]);
    }
  }
  const double kl_q8 = mean_kl(la, lb), kl_other = mean_kl(std::vector(la.end() - steps, la.end()),
                                                           std::vector(lc.end() - steps, lc.end()));
  std::printf(
      "q8_0 vs f16 KV: mean KL %.3g over %zu positions, %lld of %lld greedy steps agree; "
      "another prompt: mean KL %.3g\n",
      kl_q8, la.size(), (long long)same_argmax, (long long)steps, kl_other);
  EXPECT_LT(kl_q8, 1e-3);
  EXPECT_GT(kl_other, 100 * 1e-3);  // the bound above would catch garbled attention
  EXPECT_GE(same_argmax, steps - 1);
}

TEST_P(SequenceTest, ContextLengthIsEnforced) {
  KvPool pool(*model_, {.kv_type = KvType::F32, .page_tokens = 4});
  Sequence seq(*model_, pool, 8);
  model::Workspace ws;
  const std::vector<int32_t> nine = random_tokens(9, vocab(), 1);
  model::Batch too_long;
  too_long.segments.push_back({&seq, nine, model::Logits::kLast});
  try {
    model_->forward(too_long, ws);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context length 8 exceeded"), std::string::npos) << e.what();
  }
  EXPECT_EQ(seq.n_tokens(), 0);

  model::Batch eight;
  eight.segments.push_back({&seq, std::span<const int32_t>(nine).subspan(0, 8), model::Logits::kLast});
  model_->forward(eight, ws);
  EXPECT_EQ(seq.n_tokens(), 8);
  model::Batch one;
  one.segments.push_back({&seq, std::span<const int32_t>(nine).subspan(8, 1), model::Logits::kLast});
  EXPECT_THROW(model_->forward(one, ws), Error);
  EXPECT_EQ(seq.n_tokens(), 8);
}

TEST_P(SequenceTest, BadBatchesAreRejected) {
  KvPool pool(*model_, {.kv_type = KvType::F32});
  Sequence seq(*model_, pool, 8);
  model::Workspace ws;
  const int32_t bad = int32_t(vocab());
  model::Batch b;
  b.segments.push_back({&seq, std::span<const int32_t>(&bad, 1), model::Logits::kLast});
  EXPECT_THROW(model_->forward(b, ws), Error);
  const int32_t good = 1;
  model::Batch twice;
  twice.segments.push_back({&seq, std::span<const int32_t>(&good, 1), model::Logits::kLast});
  twice.segments.push_back({&seq, std::span<const int32_t>(&good, 1), model::Logits::kLast});
  EXPECT_THROW(model_->forward(twice, ws), Error);
  EXPECT_EQ(seq.n_tokens(), 0);
}

TEST_P(SequenceTest, MemoryIsAccounted) {
  const model::Config& c = model_->config();
  KvPool pool(*model_, {.kv_type = KvType::F16, .page_tokens = 16});
  const uint64_t page = 2ull * 16 * uint64_t(c.n_head_kv * c.head_dim) * 2 * uint64_t(c.n_attention_layers());
  EXPECT_EQ(pool.page_bytes(), page);
  Sequence seq(*model_, pool, 100);
  const uint64_t conv = uint64_t(c.ssm_conv_kernel - 1) * uint64_t(c.ssm_conv_dim()) * 4;
  const uint64_t ssm = uint64_t(c.ssm_n_v * c.ssm_d_state * c.ssm_d_state) * 4;
  EXPECT_EQ(seq.recurrent_bytes(), uint64_t(c.n_deltanet_layers()) * (conv + ssm));
  model::Workspace ws;
  prefill(*model_, seq, random_tokens(40, vocab(), 2), 64, ws);
  EXPECT_EQ(seq.kv_bytes(), 3 * page);
  EXPECT_EQ(pool.bytes_in_use(), 3 * page);
  seq.reset();
  EXPECT_EQ(pool.bytes_in_use(), 0u);
  EXPECT_EQ(pool.bytes_allocated(), 3 * page);  // kept for reuse

  KvPool small(*model_, {.kv_type = KvType::F16, .page_tokens = 16, .max_bytes = 2 * page});
  Sequence s2(*model_, small, 100);
  model::Batch b;
  const std::vector<int32_t> toks = random_tokens(40, vocab(), 4);
  b.segments.push_back({&s2, toks, model::Logits::kLast});
  try {
    model_->forward(b, ws);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("memory limit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s2.n_tokens(), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, SequenceTest,
                         ::testing::Values("tiny-qwen35-dense-tied-f32", "tiny-qwen35-dense-untied-q8_0",
                                           "tiny-qwen35moe-f32"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace pocket::runtime

// Sampling: every transform is checked by drawing many tokens and comparing the
// counts with the expected (truncated, renormalised) softmax by a chi-square
// test, plus exact checks of greedy, penalties, bias and reproducibility.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace pocket::runtime {
namespace {

const std::vector<float> kLogits = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 1.7f, 0.0f, 2.4f};

std::vector<double> softmax(const std::vector<double>& l) {
  const double max = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double sum = 0.0;
  for (size_t i = 0; i < l.size(); i++) sum += (p[i] = std::exp(l[i] - max));
  for (double& x : p) x /= sum;
  return p;
}

// Keeps only the ids in `keep` and renormalises.
std::vector<double> restrict_to(std::vector<double> p, const std::vector<int>& keep) {
  std::vector<double> out(p.size(), 0.0);
  double sum = 0.0;
  for (int i : keep) sum += p[size_t(i)];
  for (int i : keep) out[size_t(i)] = p[size_t(i)] / sum;
  return out;
}

// Upper critical value of chi-square with df degrees of freedom at p = 1e-4
// (Wilson-Hilferty approximation; z = 3.719).
double chi_square_critical(int df) {
  const double z = 3.719, a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Draws n tokens and checks the counts against `expected` (zeros must never be drawn).
void expect_distribution(Sampler& s, const std::vector<float>& logits, const std::vector<double>& expected,
                         int n = 40000) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; i++) counts[size_t(s.sample(logits))]++;
  double chi2 = 0.0;
  int df = -1;
  for (size_t i = 0; i < logits.size(); i++) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " should never be drawn";
      continue;
    }
    const double e = expected[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    df++;
  }
  if (df > 0) {
    EXPECT_LT(chi2, chi_square_critical(df)) << "chi-square with " << df << " degrees of freedom";
  }

  // distribution() reports the same probabilities.
  std::vector<double> reported(logits.size(), 0.0);
  for (const auto& [id, p] : s.distribution(logits)) reported[size_t(id)] = p;
  for (size_t i = 0; i < logits.size(); i++) EXPECT_NEAR(reported[i], expected[i], 1e-6) << "token " << i;
}

std::vector<double> scaled(const std::vector<float>& l, double temperature) {
  std::vector<double> out;
  for (float x : l) out.push_back(double(x) / temperature);
  return out;
}

TEST(Sampler, TemperatureFollowsSoftmax) {
  for (double temp : {1.0, 0.7, 1.8}) {
    SamplingParams p;
    p.temperature = float(temp);
    p.seed = 1;
    Sampler s(p);
    expect_distribution(s, kLogits, softmax(scaled(kLogits, temp)));
  }
}

TEST(Sampler, TopKKeepsTheKLargest) {
  SamplingParams p;
  p.temperature = 1.3f;
  p.top_k = 3;
  p.seed = 2;
  Sampler s(p);
  expect_distribution(s, kLogits, restrict_to(softmax(scaled(kLogits, 1.3)), {1, 7, 3}));
}

TEST(Sampler, TopPKeepsTheSmallestSufficientPrefix) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;
  p.seed = 3;
  Sampler s(p);
  const std::vector<double> probs = softmax(scaled(kLogits, 1.0));
  // Sorted: 1 (2.5), 7 (2.4), 3 (2.0), 5 (1.7), ... keep until the mass reaches 0.7.
  std::vector<int> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return probs[size_t(a)] > probs[size_t(b)]; });
  std::vector<int> keep;
  double mass = 0.0;
  for (int id : order) {
    keep.push_back(id);
    mass += probs[size_t(id)];
    if (mass >= 0.7) break;
  }
  ASSERT_GE(keep.size(), 2u);
  ASSERT_LT(keep.size(), kLogits.size());
  expect_distribution(s, kLogits, restrict_to(probs, keep));
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.min_p = 0.3f;
  p.seed = 4;
  Sampler s(p);
  const std::vector<double> probs = softmax(scaled(kLogits, 0.9));
  const double pmax = *std::max_element(probs.begin(), probs.end());
  std::vector<int> keep;
  for (size_t i = 0; i < probs.size(); i++)
    if (probs[i] >= 0.3 * pmax) keep.push_back(int(i));
  ASSERT_GT(keep.size(), 1u);
  ASSERT_LT(keep.size(), kLogits.size());
  expect_distribution(s, kLogits, restrict_to(probs, keep));
}

TEST(Sampler, TransformsCombineInTheDocumentedOrder) {
  // bias -> penalties -> temperature -> top-k -> softmax -> top-p -> min-p.
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 6;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  p.repeat_penalty = 1.3f;
  p.presence_penalty = 0.2f;
  p.frequency_penalty = 0.1f;
  p.logit_bias = {{6, 3.0f}, {4, -100.0f}};
  p.seed = 5;
  Sampler s(p);
  s.accept(std::vector<int32_t>{1, 1, 2, 7});

  std::vector<double> l(kLogits.begin(), kLogits.end());
  l[6] += 3.0;
  l[4] -= 100.0;
  const auto penalise = [&](int id, int count) {
    l[size_t(id)] = l[size_t(id)] > 0 ? l[size_t(id)] / 1.3 : l[size_t(id)] * 1.3;
    l[size_t(id)] -= 0.2 + 0.1 * count;
  };
  penalise(1, 2);
  penalise(2, 1);
  penalise(7, 1);
  for (double& x : l) x /= 0.8;
  std::vector<int> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
  order.resize(6);
  std::vector<double> kept;
  for (int id : order) kept.push_back(l[size_t(id)]);
  const std::vector<double> pk = softmax(kept);  // in `order`
  std::vector<int> keep;
  double mass = 0.0;
  for (size_t i = 0; i < order.size(); i++) {
    keep.push_back(order[i]);
    mass += pk[i];
    if (mass >= 0.9) break;
  }
  std::vector<int> final_keep;
  for (size_t i = 0; i < keep.size(); i++)
    if (pk[i] >= 0.05 * pk[0]) final_keep.push_back(keep[i]);
  std::vector<double> full(l.size(), 0.0);
  for (size_t i = 0; i < order.size(); i++) full[size_t(order[i])] = pk[i];
  expect_distribution(s, kLogits, restrict_to(full, final_keep));
}

TEST(Sampler, GreedyTakesTheLargestAfterPenalties) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits), 1);
  SamplingParams q = p;
  q.repeat_penalty = 2.0f;
  Sampler r(q);
  r.accept(1);
  EXPECT_EQ(r.sample(kLogits), 7);  // 2.5 / 2 < 2.4
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 3.0f, 3.0f}), 1);  // ties: lowest id
  SamplingParams b = p;
  b.logit_bias = {{4, 10.0f}};
  EXPECT_EQ(Sampler(b).sample(kLogits), 4);
}

TEST(Sampler, PenaltyWindowOnlySeesRecentTokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 1.0f;
  p.penalty_last_n = 2;
  Sampler s(p);
  s.accept(std::vector<int32_t>{1, 3, 3});  // 1 is outside the window of 2
  EXPECT_EQ(s.sample(kLogits), 1);
  s.accept(1);  // now inside: 2.5 - 1 = 1.5 < 2.4
  EXPECT_EQ(s.sample(kLogits), 7);
}

TEST(Sampler, SameSeedSameStream) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 1234;
  Sampler a(p), b(p);
  p.seed = 1235;
  Sampler c(p);
  std::vector<int32_t> ra, rb, rc;
  for (int i = 0; i < 200; i++) {
    ra.push_back(a.sample(kLogits));
    rb.push_back(b.sample(kLogits));
    rc.push_back(c.sample(kLogits));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  a.reset(1234);
  for (int i = 0; i < 200; i++) EXPECT_EQ(a.sample(kLogits), ra[size_t(i)]);
}

TEST(Rng, PinnedOutputAndUniformBuckets) {
  // Pinned so that a change to the generator (which would change every seeded
  // stream users rely on) is noticed.
  Rng r(0);
  const uint64_t first = r.next();
  Rng again(0);
  EXPECT_EQ(again.next(), first);
  EXPECT_EQ(first, 0x99EC5F36CB75F2B4ull);

  Rng u(77);
  std::vector<int> buckets(20, 0);
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    const double x = u.uniform();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    buckets[size_t(x * 20)]++;
  }
  double chi2 = 0.0;
  for (int c : buckets) chi2 += (c - n / 20.0) * (c - n / 20.0) / (n / 20.0);
  EXPECT_LT(chi2, chi_square_critical(19));
}

TEST(Logprobs, LogSoftmaxOfRawLogits) {
  const TokenLogprobs lp = logprobs(kLogits, 3, 3);
  double z = 0.0;
  for (float l : kLogits) z += std::exp(double(l));
  EXPECT_NEAR(lp.logprob, 2.0 - std::log(z), 1e-12);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 7);
  EXPECT_EQ(lp.top[2].first, 3);
  EXPECT_NEAR(lp.top[0].second, 2.5 - std::log(z), 1e-12);
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.min_p = 2.0f;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.top_k = -1;
  EXPECT_THROW(Sampler{p}, Error);
}

}  // namespace
}  // namespace pocket::runtime

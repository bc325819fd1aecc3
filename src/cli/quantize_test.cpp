// `pocket quantize`: converts every matrix to the mix's type, keeps vectors and
// metadata, and the result decodes close to the source.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "cli/cli_test_util.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace pocket {
namespace {

using test::run_pocket;
const std::string kModel = std::string(POCKET_SHARED_DIR) + "/golden/tiny-qwen35-dense-tied-f32.gguf";

double rel_rms_error(const gguf::TensorInfo& a, const gguf::TensorInfo& b) {
  std::vector<float> ra(size_t(a.ne[0])), rb(size_t(a.ne[0]));
  double err = 0, ref = 0;
  for (int64_t r = 0; r < a.rows(); r++) {
    quant::dequantize_row(a.type, a.data + uint64_t(r) * a.row_bytes(), ra.data(), a.ne[0]);
    quant::dequantize_row(b.type, b.data + uint64_t(r) * b.row_bytes(), rb.data(), b.ne[0]);
    for (size_t i = 0; i < ra.size(); i++) {
      err += (double(ra[i]) - rb[i]) * (double(ra[i]) - rb[i]);
      ref += double(ra[i]) * ra[i];
    }
  }
  return std::sqrt(err / ref);
}

TEST(Quantize, GoldenModelToEachMix) {
  gguf::File src = gguf::File::open(kModel);
  for (auto [type, bound] : {std::pair{"q8_0", 0.01}, {"q4_k_m", 0.12}, {"q6_k", 0.03}, {"f16", 0.001}}) {
    std::string out = testing::TempDir() + "/quantized_" + type + ".gguf";
    auto r = run_pocket(std::string("quantize ") + kModel + " " + out + " " + type);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    gguf::File q = gguf::File::open(out);
    ASSERT_EQ(q.tensors().size(), src.tensors().size());
    EXPECT_EQ(q.get_string("tokenizer.chat_template"), src.get_string("tokenizer.chat_template"));
    EXPECT_EQ(q.metadata().size(), src.metadata().size());
    for (const auto& t : src.tensors()) {
      const auto& qt = q.tensor(t.name);
      if (t.n_dims == 1 || t.name.find("ssm_conv1d") != std::string::npos) {
        EXPECT_EQ(qt.type, gguf::TensorType::F32) << t.name;
        EXPECT_EQ(std::memcmp(qt.data, t.data, t.n_bytes), 0) << t.name;
        continue;
      }
      EXPECT_LT(rel_rms_error(t, qt), bound) << type << " " << t.name;
    }
    std::filesystem::remove(out);
  }
  EXPECT_EQ(run_pocket("quantize " + kModel + " /tmp/x.gguf q9_9").exit_code, 1);
  EXPECT_EQ(run_pocket("quantize " + kModel + " " + kModel + " q8_0").exit_code, 1);
}

}  // namespace
}  // namespace pocket

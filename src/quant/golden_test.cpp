// Golden checks against golden/quant/quant_<type>.gguf (golden/README.md §5):
// dequantization bit-exact, quantization byte-identical (the spec says a literal
// implementation reproduces every block) and within 1.05x the reference RMSE.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"

namespace pocket::quant {
namespace {

using gguf::TensorInfo;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class GoldenQuantTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenQuantTest, MatchesReference) {
  const std::string path =
      std::string(POCKET_SHARED_DIR) + "/golden/quant/quant_" + GetParam() + ".gguf";
  const gguf::File file = gguf::File::open(path);
  const auto file_type = gguf::parse_type_name(file.get_string("golden.type"));
  ASSERT_TRUE(file_type.has_value()) << file.get_string("golden.type");
  int n_checked = 0;
  for (const TensorInfo& t : file.tensors()) {
    if (ends_with(t.name, ".dequant") || ends_with(t.name, ".source")) continue;
    SCOPED_TRACE(path + " tensor " + t.name);
    EXPECT_EQ(t.type, *file_type);
    const TensorInfo& want = file.tensor(t.name + ".dequant");
    const TensorInfo& source = file.tensor(t.name + ".source");
    ASSERT_EQ(want.type, TensorType::F32);
    ASSERT_EQ(source.type, TensorType::F32);
    ASSERT_EQ(want.n_elements, t.n_elements);
    ASSERT_EQ(source.n_elements, t.n_elements);
    ASSERT_TRUE(can_dequantize(t.type));
    ASSERT_TRUE(can_quantize(t.type));

    const int64_t n = t.ne[0];
    const int64_t rows = t.rows();
    const uint64_t row_bytes = t.row_bytes();
    const auto traits = *gguf::type_traits(t.type);
    std::vector<float> deq(static_cast<size_t>(n));
    std::vector<uint8_t> quant(row_bytes);
    std::vector<float> requant(static_cast<size_t>(n));
    int64_t bits_equal = 0, blocks = 0, blocks_equal = 0;
    double sq_err = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      // Dequantization: bit for bit.
      dequantize_row(t.type, t.data + r * row_bytes, deq.data(), n);
      const auto* want_row = reinterpret_cast<const float*>(want.data) + r * n;
      for (int64_t i = 0; i < n; ++i) bits_equal += std::memcmp(&deq[i], &want_row[i], 4) == 0;

      // Quantization: block bytes and RMS error.
      std::vector<float> src(static_cast<size_t>(n));
      std::memcpy(src.data(), source.data + r * n * 4, size_t(n) * 4);
      quantize_row(t.type, src.data(), quant.data(), n);
      const uint8_t* ref = t.data + r * row_bytes;
      for (uint64_t off = 0; off < row_bytes; off += traits.type_size) {
        ++blocks;
        blocks_equal += std::memcmp(quant.data() + off, ref + off, traits.type_size) == 0;
      }
      dequantize_row(t.type, quant.data(), requant.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double e = double(requant[i]) - double(src[i]);
        sq_err += e * e;
      }
    }
    EXPECT_EQ(bits_equal, int64_t(t.n_elements)) << "dequantized values differing from .dequant";
    const double rmse = std::sqrt(sq_err / double(t.n_elements));
    const double ref_rmse = file.get_f32("golden.rmse." + t.name);
    EXPECT_LE(rmse, 1.05 * ref_rmse);
    EXPECT_EQ(blocks_equal, blocks) << "quantized blocks differing from the reference";
    std::cout << "[golden] " << GetParam() << " " << t.name << ": blocks identical " << blocks_equal
              << "/" << blocks << ", rmse " << rmse << " vs reference " << ref_rmse << " (ratio "
              << (ref_rmse > 0 ? rmse / ref_rmse : 1.0) << ")\n";
    ++n_checked;
  }
  EXPECT_EQ(n_checked, 3);
}

const char* const kGoldenTypes[] = {"bf16", "f16",  "q8_0", "q4_0", "q4_1", "q5_0",   "q5_1",
                                    "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"};

// The parameter list above covers every file of the golden folder.
TEST(GoldenQuantFiles, AllFilesCovered) {
  std::set<std::string> on_disk, listed;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(POCKET_SHARED_DIR) + "/golden/quant"))
    if (entry.path().extension() == ".gguf") on_disk.insert(entry.path().filename().string());
  for (const char* t : kGoldenTypes) listed.insert(std::string("quant_") + t + ".gguf");
  EXPECT_EQ(on_disk, listed);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GoldenQuantTest, ::testing::ValuesIn(kGoldenTypes),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace pocket::quant

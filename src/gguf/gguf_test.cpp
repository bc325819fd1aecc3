#include "gguf/gguf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "util/error.h"

namespace pocket::gguf {
namespace {

const std::string kGolden = std::string(POCKET_SHARED_DIR) + "/golden";

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Parses bytes and returns the error message, or "" when the parse succeeds.
std::string parse_error(const std::vector<uint8_t>& bytes, const std::string& name = "mem.gguf") {
  try {
    File::parse(bytes.data(), bytes.size(), name);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

Writer sample_writer(std::vector<float>& data_a, std::vector<uint8_t>& data_b) {
  Writer w;
  w.add("general.architecture", Value::string("qwen35"));
  w.add("a.u8", Value::u8(200));
  w.add("a.i8", Value::i8(-5));
  w.add("a.u16", Value::u16(60000));
  w.add("a.i16", Value::i16(-30000));
  w.add("a.u32", Value::u32(4000000000u));
  w.add("a.i32", Value::i32(-2000000000));
  w.add("a.u64", Value::u64(1ull << 60));
  w.add("a.i64", Value::i64(-(1ll << 60)));
  w.add("a.f32", Value::f32(1.5f));
  w.add("a.f64", Value::f64(-2.25));
  w.add("a.bool", Value::boolean(true));
  w.add("a.empty", Value::string(""));
  w.add("a.strs", Value::strings({"x", "", "z z", std::string("\0nul", 4)}));
  w.add("a.i32s", Value::i32s({1, -2, 3}));
  w.add("a.nested", Value::arrays({Value::strings({"p", "q"}), Value::f32s({0.5f}),
                                   Value::arrays({Value::i32s({7})})}));
  data_a.resize(64 * 3);
  for (size_t i = 0; i < data_a.size(); i++) data_a[i] = float(i) * 0.25f;
  w.add_tensor("t.a", TensorType::F32, {64, 3}, data_a.data());
  data_b.assign(34 * 2 * 5, 0);
  for (size_t i = 0; i < data_b.size(); i++) data_b[i] = uint8_t(i * 7);
  w.add_tensor("t.b", TensorType::Q8_0, {64, 5}, data_b.data());
  w.add_tensor("t.empty", TensorType::F32, {0}, nullptr);
  return w;
}

TEST(Gguf, RoundTripEveryValueType) {
  std::vector<float> a;
  std::vector<uint8_t> b;
  Writer w = sample_writer(a, b);
  std::vector<uint8_t> bytes = w.to_bytes();
  File f = File::parse(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.architecture(), "qwen35");
  EXPECT_EQ(f.get_u32("a.u8"), 200u);
  EXPECT_EQ(f.get_i64("a.i8"), -5);
  EXPECT_EQ(f.get_u32("a.u16"), 60000u);
  EXPECT_EQ(f.get_i64("a.i16"), -30000);
  EXPECT_EQ(f.get_u32("a.u32"), 4000000000u);
  EXPECT_EQ(f.get_i64("a.i32"), -2000000000);
  EXPECT_EQ(f.get_u64("a.u64"), 1ull << 60);
  EXPECT_EQ(f.get_i64("a.i64"), -(1ll << 60));
  EXPECT_EQ(f.get_f32("a.f32"), 1.5f);
  EXPECT_EQ(f.get_f64("a.f64"), -2.25);
  EXPECT_TRUE(f.get_bool("a.bool"));
  EXPECT_EQ(f.get_string("a.empty"), "");
  const Value& strs = f.get_array("a.strs");
  ASSERT_EQ(strs.size(), 4u);
  EXPECT_EQ(strs.string_items()[3], std::string("\0nul", 4));
  EXPECT_EQ(f.get_array("a.i32s").as_ints(), (std::vector<int64_t>{1, -2, 3}));
  const Value& nested = f.get_array("a.nested");
  ASSERT_EQ(nested.elem_type(), ValueType::ARRAY);
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested.array_items()[0].string_items()[1], "q");
  EXPECT_EQ(nested.array_items()[2].array_items()[0].as_ints()[0], 7);
  // Typed getters name the key and the problem.
  try {
    f.get_u32("a.i32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.i32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_string("a.u8"), Error);
  EXPECT_THROW(f.get_u32("missing.key"), Error);
  EXPECT_EQ(f.get_u32_or("missing.key", 9), 9u);

  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo& ta = f.tensor("t.a");
  EXPECT_EQ(ta.ne[0], 64);
  EXPECT_EQ(ta.ne[1], 3);
  EXPECT_EQ(ta.n_bytes, 64u * 3 * 4);
  EXPECT_EQ(std::memcmp(ta.data, a.data(), ta.n_bytes), 0);
  EXPECT_EQ((ta.data - f.bytes()) % 32, 0);
  const TensorInfo& tb = f.tensor("t.b");
  EXPECT_EQ(tb.type, TensorType::Q8_0);
  EXPECT_EQ(tb.n_bytes, b.size());
  EXPECT_EQ(std::memcmp(tb.data, b.data(), b.size()), 0);
  EXPECT_EQ(f.tensor("t.empty").n_bytes, 0u);

  // Re-writing everything read gives the same bytes.
  Writer w2;
  for (const auto& kv : f.metadata()) w2.add(kv.key, kv.value);
  for (const auto& t : f.tensors())
    w2.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + std::max<uint32_t>(t.n_dims, 1)), t.data);
  EXPECT_EQ(w2.to_bytes(), bytes);
}

TEST(Gguf, WorkedExampleFromSpec) {
  // spec/gguf.md §3.7: one u32 alignment key and a Q8_0 tensor [64, 2].
  std::vector<uint8_t> data(136);
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i);
  Writer w;
  w.set_alignment(32);
  w.add_tensor("x.weight", TensorType::Q8_0, {64, 2}, data.data());
  std::vector<uint8_t> bytes = w.to_bytes();
  ASSERT_EQ(bytes.size(), 288u);
  const uint8_t head[] = {0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17};
  EXPECT_EQ(std::memcmp(bytes.data(), head, sizeof head), 0);
  EXPECT_EQ(std::string(bytes.begin() + 32, bytes.begin() + 49), "general.alignment");
  EXPECT_EQ(bytes[49], 4);
  EXPECT_EQ(bytes[53], 0x20);
  EXPECT_EQ(std::string(bytes.begin() + 65, bytes.begin() + 73), "x.weight");
  EXPECT_EQ(bytes[73], 2);
  EXPECT_EQ(bytes[77], 0x40);
  EXPECT_EQ(bytes[85], 2);
  EXPECT_EQ(bytes[93], 8);
  for (size_t i = 105; i < 128; i++) EXPECT_EQ(bytes[i], 0) << i;
  EXPECT_EQ(std::memcmp(bytes.data() + 128, data.data(), 136), 0);
  File f = File::parse(bytes.data(), bytes.size(), "example");
  EXPECT_EQ(f.data_offset(), 128u);
}

TEST(Gguf, HonoursAlignmentKey) {
  std::vector<float> v(8, 1.0f);
  Writer w;
  w.set_alignment(64);
  w.add_tensor("a", TensorType::F32, {8}, v.data());
  w.add_tensor("b", TensorType::F32, {8}, v.data());
  auto bytes = w.to_bytes();
  File f = File::parse(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
}

TEST(Gguf, WriterStreamsToDiskAndChecksSizes) {
  std::string path = testing::TempDir() + "/pocket_writer_test.gguf";
  Writer w;
  w.add("k", Value::u32(1));
  w.add_tensor("big", TensorType::F32, {256, 1000}, [](const Writer::Sink& sink) {
    std::vector<float> row(256);
    for (int r = 0; r < 1000; r++) {
      for (int i = 0; i < 256; i++) row[i] = float(r * 256 + i);
      sink(row.data(), row.size() * 4);
    }
  });
  w.write(path);
  File f = File::open(path);
  const TensorInfo& t = f.tensor("big");
  const float* p = reinterpret_cast<const float*>(t.data);
  EXPECT_EQ(p[256 * 999 + 255], float(256 * 999 + 255));
  std::filesystem::remove(path);

  Writer bad;
  bad.add_tensor("short", TensorType::F32, {4}, [](const Writer::Sink& sink) {
    float x = 0;
    sink(&x, 4);
  });
  EXPECT_THROW(bad.to_bytes(), Error);
  EXPECT_THROW(bad.add_tensor("short", TensorType::F32, {4}, nullptr), Error);
  EXPECT_THROW(Writer().add_tensor("odd", TensorType::Q8_0, {33}, nullptr), Error);
}

// An independent walk over the layout that records where each section ends, so
// that the corruption tests can cut and patch at every boundary.
struct Layout {
  std::vector<size_t> boundaries;  // offsets where a field or section ends
  size_t n_tensors_at = 8, n_kv_at = 16;
  std::vector<size_t> string_len_at;   // u64 string lengths
  std::vector<size_t> array_len_at;    // u64 array counts
  std::vector<size_t> vtype_at;        // u32 value types
  std::vector<size_t> ndims_at, dim0_at, ttype_at, offset_at;
};

Layout walk(const std::vector<uint8_t>& b) {
  Layout L;
  size_t p = 24;
  auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, &b[at], 4); return v; };
  auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, &b[at], 8); return v; };
  L.boundaries = {4, 8, 16, 24};
  uint64_t n_t = u64(8), n_kv = u64(16);
  std::function<void(uint32_t)> skip = [&](uint32_t t) {
    if (t == 8) {
      L.string_len_at.push_back(p);
      p += 8 + u64(p);
    } else if (t == 9) {
      uint32_t et = u32(p);
      L.array_len_at.push_back(p + 4);
      uint64_t n = u64(p + 4);
      p += 12;
      for (uint64_t i = 0; i < n; i++) skip(et);
    } else {
      p += value_type_size(ValueType(t));
    }
  };
  for (uint64_t i = 0; i < n_kv; i++) {
    L.string_len_at.push_back(p);
    p += 8 + u64(p);
    L.vtype_at.push_back(p);
    uint32_t t = u32(p);
    p += 4;
    skip(t);
    L.boundaries.push_back(p);
  }
  for (uint64_t i = 0; i < n_t; i++) {
    L.string_len_at.push_back(p);
    p += 8 + u64(p);
    L.ndims_at.push_back(p);
    uint32_t nd = u32(p);
    p += 4;
    L.dim0_at.push_back(p);
    p += 8 * nd;
    L.ttype_at.push_back(p);
    p += 4;
    L.offset_at.push_back(p);
    p += 8;
    L.boundaries.push_back(p);
  }
  L.boundaries.push_back((p + 31) / 32 * 32);
  return L;
}

std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  for (const char* f : {"tiny-qwen35-dense-tied-f32.gguf", "tiny-qwen35-dense-untied-q8_0.gguf",
                        "tiny-qwen35moe-f32.gguf", "vocab-qwen3-qwen35.gguf", "quant/quant_q4_k.gguf",
                        "quant/quant_iq4_xs.gguf", "quant/quant_bf16.gguf"})
    out.push_back(kGolden + "/" + f);
  return out;
}

TEST(Gguf, OpensGoldenFiles) {
  for (const auto& path : golden_files()) {
    File f = File::open(path);
    EXPECT_EQ(f.version(), 3u) << path;
    EXPECT_FALSE(f.metadata().empty()) << path;
    for (const auto& t : f.tensors()) {
      EXPECT_GE(t.data, f.bytes());
      EXPECT_LE(t.data + t.n_bytes, f.bytes() + f.file_size());
    }
  }
  File m = File::open(kGolden + "/tiny-qwen35-dense-tied-f32.gguf");
  EXPECT_EQ(m.architecture(), "qwen35");
  EXPECT_EQ(m.get_u32("qwen35.block_count"), 8u);
  EXPECT_EQ(m.tensor("token_embd.weight").ne[1], 2007);
  EXPECT_EQ(m.get_array("tokenizer.ggml.tokens").size(), 2007u);
}

// A private copy (plain or on huge pages) holds the same bytes as the mapping,
// in memory of its own; the huge-page copy starts on a 2 MiB boundary.
TEST(Gguf, CopiedBackingsHoldTheSameBytes) {
  const std::string path = kGolden + "/tiny-qwen35-dense-tied-f32.gguf";
  const File mapped = File::open(path);
  for (FileBacking b : {FileBacking::kCopy, FileBacking::kHugePages}) {
    const File copy = File::open(path, b);
    ASSERT_EQ(copy.file_size(), mapped.file_size()) << file_backing_name(b);
    EXPECT_NE(copy.bytes(), mapped.bytes());
    EXPECT_EQ(0, std::memcmp(copy.bytes(), mapped.bytes(), mapped.file_size()));
    if (b == FileBacking::kHugePages) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(copy.bytes()) % (uintptr_t(2) << 20), 0u);
    }
    ASSERT_EQ(copy.tensors().size(), mapped.tensors().size());
    for (size_t i = 0; i < copy.tensors().size(); i++)
      EXPECT_EQ(copy.tensors()[i].data - copy.bytes(), mapped.tensors()[i].data - mapped.bytes());
  }
  for (FileBacking b : {FileBacking::kMap, FileBacking::kCopy, FileBacking::kHugePages}) {
    FileBacking parsed = FileBacking::kMap;
    ASSERT_TRUE(file_backing_from_name(file_backing_name(b), parsed));
    EXPECT_EQ(parsed, b);
  }
  FileBacking unused;
  EXPECT_FALSE(file_backing_from_name("huge", unused));
  try {
    File::open("/nonexistent/file.gguf", FileBacking::kHugePages);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.gguf"), std::string::npos);
  }
}

// Every cut at a section boundary, and every byte of the header region, gives an
// error that names the file; never a crash (this suite also runs under ASan).
TEST(GgufCorrupt, TruncatedAtEveryBoundary) {
  for (const auto& path : golden_files()) {
    std::vector<uint8_t> bytes = read_all(path);
    ASSERT_FALSE(bytes.empty()) << path;
    Layout L = walk(bytes);
    std::vector<size_t> cuts = L.boundaries;
    for (size_t c : L.boundaries) {
      if (c > 0) cuts.push_back(c - 1);
      cuts.push_back(c + 1);
    }
    size_t header_end = L.boundaries.back();
    bool small = bytes.size() < (1 << 20);
    if (small)
      for (size_t c = 0; c < std::min<size_t>(header_end, 20000); c += 29) cuts.push_back(c);
    cuts.push_back(bytes.size() - 1);
    cuts.push_back(bytes.size() / 2);
    for (size_t c : cuts) {
      if (c >= bytes.size()) continue;
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + c);
      std::string err = parse_error(cut, "cut.gguf");
      // A cut inside the trailing padding after the last tensor may still parse
      // (the spec says not to require it); anything before must fail.
      if (c < header_end || c <= bytes.size() - 32) {
        EXPECT_NE(err, "") << path << " cut at " << c;
      }
      if (!err.empty()) {
        EXPECT_EQ(err.rfind("cut.gguf: ", 0), 0u) << err;
      }
    }
  }
}

TEST(GgufCorrupt, PatchedFieldsGiveClearErrors) {
  std::vector<uint8_t> bytes = read_all(kGolden + "/tiny-qwen35-dense-untied-q8_0.gguf");
  Layout L = walk(bytes);
  auto patch64 = [&](size_t at, uint64_t v) {
    auto b = bytes;
    std::memcpy(&b[at], &v, 8);
    return parse_error(b, "bad.gguf");
  };
  auto patch32 = [&](size_t at, uint32_t v) {
    auto b = bytes;
    std::memcpy(&b[at], &v, 4);
    return parse_error(b, "bad.gguf");
  };
  auto expect_err = [](const std::string& err, const std::string& needle) {
    EXPECT_NE(err.find(needle), std::string::npos) << "error was: " << err;
  };
  expect_err(patch32(0, 0x12345678), "bad magic");
  expect_err(patch32(4, 1), "version 1");
  expect_err(patch32(4, 4), "version 4");
  expect_err(patch32(4, 0x03000000), "big-endian");
  expect_err(patch64(L.n_tensors_at, 1ull << 40), "tensor count");
  expect_err(patch64(L.n_tensors_at, ~0ull), "tensor count");
  expect_err(patch64(L.n_kv_at, 1ull << 40), "metadata count");
  // Every length field of the first strings (keys, names) and a sample of the vocabulary's.
  for (size_t i = 0; i < L.string_len_at.size(); i += (i < 64 ? 1 : 97)) {
    EXPECT_NE(patch64(L.string_len_at[i], 1ull << 50), "");
    EXPECT_NE(patch64(L.string_len_at[i], ~0ull), "");
  }
  for (size_t at : L.array_len_at) expect_err(patch64(at, 1ull << 29), "array");
  for (size_t at : L.array_len_at) expect_err(patch64(at, ~0ull), "array length");
  for (size_t at : L.vtype_at) expect_err(patch32(at, 13), "invalid value type 13");
  for (size_t i = 0; i < L.ndims_at.size(); i++) {
    expect_err(patch32(L.ndims_at[i], 5), "dimensions");
    expect_err(patch64(L.dim0_at[i], 1ull << 62), "");
    EXPECT_NE(patch64(L.dim0_at[i], 1ull << 62), "");
    expect_err(patch64(L.dim0_at[i], uint64_t(-32)), "negative dimension");
    expect_err(patch32(L.ttype_at[i], 4), "invalid tensor type id 4");
    expect_err(patch32(L.ttype_at[i], 99), "invalid tensor type id 99");
    expect_err(patch64(L.offset_at[i], 3), "not a multiple of the alignment");
    expect_err(patch64(L.offset_at[i], 1ull << 40), "past the end");
    expect_err(patch64(L.offset_at[i], ~0ull & ~31ull), "past the end");
  }
  // Two tensors at the same offset overlap.
  {
    auto b = bytes;
    std::memcpy(&b[L.offset_at[1]], &b[L.offset_at[0]], 8);
    expect_err(parse_error(b, "bad.gguf"), "overlap");
  }
  // Huge element counts in a dimension that overflow 64 bits with the others.
  {
    auto b = bytes;
    uint64_t big = 1ull << 40;
    std::memcpy(&b[L.dim0_at[0]], &big, 8);
    std::memcpy(&b[L.dim0_at[0] + 8], &big, 8);
    EXPECT_NE(parse_error(b, "bad.gguf"), "");
  }
}

TEST(GgufCorrupt, BadAlignmentKey) {
  Writer w;
  w.add("general.alignment", Value::u32(48));
  auto b = w.to_bytes();
  EXPECT_NE(parse_error(b).find("power of two"), std::string::npos);
  Writer w2;
  w2.add("general.alignment", Value::u64(32));
  b = w2.to_bytes();
  EXPECT_NE(parse_error(b).find("must be uint32"), std::string::npos);
  Writer w3;
  w3.add("k", Value::u32(1));
  b = w3.to_bytes();
  // Duplicate key: append a second copy of the KV and bump the count.
  std::vector<uint8_t> kv(b.begin() + 24, b.begin() + 24 + 8 + 1 + 4 + 4);
  b.insert(b.begin() + 24 + kv.size(), kv.begin(), kv.end());
  b[16] = 2;
  EXPECT_NE(parse_error(b).find("duplicate metadata key 'k'"), std::string::npos);
}

TEST(GgufCorrupt, RandomByteFlipsNeverCrash) {
  std::vector<uint8_t> bytes = read_all(kGolden + "/tiny-qwen35-dense-untied-q8_0.gguf");
  Layout L = walk(bytes);
  size_t header_end = L.boundaries.back();
  std::mt19937 rng(42);
  int errors = 0;
  for (int it = 0; it < 400; it++) {
    auto b = bytes;
    int flips = 1 + it % 4;
    for (int k = 0; k < flips; k++) b[rng() % header_end] ^= uint8_t(1u << (rng() % 8));
    if (!parse_error(b).empty()) errors++;
  }
  EXPECT_GT(errors, 0);
}

TEST(GgufCorrupt, EmptyAndMissingFiles) {
  EXPECT_NE(parse_error({}), "");
  try {
    File::open("/nonexistent/file.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.gguf"), std::string::npos);
  }
  // A tensor-less file may end right after its metadata, before the padding.
  Writer w;
  w.add("general.architecture", Value::string("x"));
  auto b = w.to_bytes();
  size_t unpadded = 24 + 8 + 20 + 4 + 8 + 1;
  b.resize(unpadded);
  EXPECT_EQ(parse_error(b), "");
}

}  // namespace
}  // namespace pocket::gguf

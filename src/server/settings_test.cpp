#include "server/settings.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace pocket::server {
namespace {

std::string error_of(const std::string& toml) {
  ServerSettings s;
  try {
    load_settings_toml(toml, "pocket.toml", s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ServerSettings, ReadsTomlKeys) {
  ServerSettings s;
  load_settings_toml("model = \"m.gguf\"\nport = 9000\nparallel = 8\nthink = false\nkv_type = \"f32\"\n", "t", s);
  EXPECT_EQ(s.model, "m.gguf");
  EXPECT_EQ(s.port, 9000);
  EXPECT_EQ(s.parallel, 8);
  ASSERT_TRUE(s.think.has_value());
  EXPECT_FALSE(*s.think);
  EXPECT_EQ(s.kv_type, "f32");
  EXPECT_EQ(s.host, "127.0.0.1");  // untouched keys keep their default
}

TEST(ServerSettings, ErrorsNameKeyAndLine) {
  EXPECT_EQ(error_of("port = 80\nparalel = 3\n"), "pocket.toml:2: unknown key 'paralel'");
  EXPECT_EQ(error_of("\n\nport = \"x\"\n"), "pocket.toml:3: key 'port' must be an integer");
  EXPECT_EQ(error_of("parallel = 0\n"), "pocket.toml:1: key 'parallel' must be in [1, 256], got 0");
  EXPECT_EQ(error_of("think = 1\n"), "pocket.toml:1: key 'think' must be true or false");
  EXPECT_NE(error_of("port = = 3\n").find("pocket.toml:1: "), std::string::npos);
}

TEST(ServerSettings, KvTypeIsF16F32OrQ8_0) {
  ServerSettings s;
  load_settings_toml("kv_type = \"q8_0\"\n", "t", s);
  EXPECT_EQ(s.kv_type, "q8_0");
  EXPECT_NO_THROW(validate_settings(s));
  EXPECT_EQ(error_of("kv_type = \"q8\"\n"),
            "pocket.toml:1: key 'kv_type' must be \"f16\", \"f32\" or \"q8_0\", got \"q8\"");
  s.kv_type = "Q8_0";  // from --kv-type: names are lower case
  try {
    validate_settings(s);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "kv_type (--kv-type) must be f16, f32 or q8_0, got 'Q8_0'");
  }
}

TEST(ServerSettings, WeightsIsMapCopyOrHugepages) {
  ServerSettings s;
  EXPECT_EQ(s.weights, "map");
  load_settings_toml("weights = \"hugepages\"\n", "t", s);
  EXPECT_EQ(s.weights, "hugepages");
  EXPECT_NO_THROW(validate_settings(s));
  EXPECT_EQ(error_of("weights = \"huge\"\n"),
            "pocket.toml:1: key 'weights' must be \"map\", \"copy\" or \"hugepages\", got \"huge\"");
  s.weights = "mmap";  // from --weights
  try {
    validate_settings(s);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "weights (--weights) must be map, copy or hugepages, got 'mmap'");
  }
}

}  // namespace
}  // namespace pocket::server

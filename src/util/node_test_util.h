// Test-only: runs one Node test file of tests/node (real servers on 127.0.0.1
// driven by the official OpenAI Node SDK) under ctest, with the pocket binary
// and the shared golden folder passed through the environment.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace pocket::test {

// Skips (not fails) when node or the npm packages are missing; fails with the
// whole Node output when any Node test fails.
inline void run_node_test_file(const std::string& file, const std::string& node_flags = "") {
  const std::string source = POCKET_SOURCE_DIR;
  if (!std::filesystem::exists(source + "/tests/node/node_modules/openai"))
    GTEST_SKIP() << "tests/node/node_modules/openai missing: run scripts/setup.sh (npm install)";
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  const char* bin = std::getenv("POCKET_BIN");
  const std::string cmd = "cd '" + source + "/tests/node' && POCKET_BIN='" +
                          std::string(bin ? bin : POCKET_BIN_PATH) + "' POCKET_SHARED_DIR='" +
                          POCKET_SHARED_DIR + "' timeout 300 node --test " + node_flags +
                          " --test-reporter=spec " + file + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << output;
}

}  // namespace pocket::test

// Runs the end-to-end tests of `pocket gateway` (tests/node/gateway.test.mjs: two
// real `pocket serve` backends, a real redis-server, the OpenAI Node SDK) under ctest.
#include <cstdlib>

#include "util/node_test_util.h"

namespace {

TEST(GatewayNode, OpenAiSdkEndToEnd) {
  if (std::system("command -v redis-server > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "redis-server is not installed";
  pocket::test::run_node_test_file("gateway.test.mjs", "--test-concurrency=1");
}

}  // namespace

// Runs the end-to-end tests of `pocket serve` (tests/node/serve.test.mjs: a
// real server on 127.0.0.1 driven by the official OpenAI Node SDK) under ctest.
#include "util/node_test_util.h"

namespace {

TEST(ServeNode, OpenAiSdkEndToEnd) {
  pocket::test::run_node_test_file("serve.test.mjs");
}

}  // namespace

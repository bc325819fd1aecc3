// Helpers for tests that run the real `pocket` binary (path in $POCKET_BIN, set by ctest).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace pocket::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string pocket_bin() {
  const char* p = std::getenv("POCKET_BIN");
#ifdef POCKET_BIN_PATH
  return p ? p : POCKET_BIN_PATH;
#else
  return p ? p : "pocket";
#endif
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `pocket ARGS` (ARGS already shell-quoted as needed) and captures both streams.
inline CommandResult run_pocket(const std::string& args, const std::string& stdin_file = "") {
  static int counter = 0;
  std::string err_path = "/tmp/pocket_test_err_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  std::string cmd = shell_quote(pocket_bin()) + " " + args + " 2>" + err_path;
  if (!stdin_file.empty()) cmd += " <" + shell_quote(stdin_file);
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (FILE* e = fopen(err_path.c_str(), "rb")) {
    while ((n = fread(buf, 1, sizeof buf, e)) > 0) r.err.append(buf, n);
    fclose(e);
  }
  std::remove(err_path.c_str());
  return r;
}

}  // namespace pocket::test

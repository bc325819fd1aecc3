// A tiny command-line parser shared by the subcommands:
//   Args args(argc, argv);              // argv[0] is the subcommand name
//   std::string m = args.value("-m", "--model");
//   bool json = args.flag("--json");
//   args.finish();                      // errors on anything not consumed
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pocket::cli {

class Args {
 public:
  Args(int argc, char** argv);
  // True if any of the names is present (consumes it).
  bool flag(const std::string& name, const std::string& alt = "");
  // The value after the option (`-m X`, `--model X` or `--model=X`), consumed.
  std::optional<std::string> value(const std::string& name, const std::string& alt = "");
  std::string value_or(const std::string& name, const std::string& dflt);
  long long int_or(const std::string& name, long long dflt);
  double float_or(const std::string& name, double dflt);
  // Remaining positional arguments (those not starting with '-'), consumed.
  std::vector<std::string> positionals();
  // Throws pocket::Error for any argument that was not consumed.
  void finish() const;
  const std::string& command() const { return command_; }

 private:
  std::string command_;
  std::vector<std::string> items_;
  std::vector<bool> used_;
};

}  // namespace pocket::cli

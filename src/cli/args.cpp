#include "cli/args.h"

#include <cstdlib>

#include "util/error.h"

namespace pocket::cli {

Args::Args(int argc, char** argv) {
  command_ = argc > 0 ? argv[0] : "";
  for (int i = 1; i < argc; i++) items_.push_back(argv[i]);
  used_.assign(items_.size(), false);
}

bool Args::flag(const std::string& name, const std::string& alt) {
  bool found = false;
  for (size_t i = 0; i < items_.size(); i++) {
    if (used_[i]) continue;
    if (items_[i] == name || (!alt.empty() && items_[i] == alt)) {
      used_[i] = true;
      found = true;
    }
  }
  return found;
}

std::optional<std::string> Args::value(const std::string& name, const std::string& alt) {
  std::optional<std::string> out;
  for (size_t i = 0; i < items_.size(); i++) {
    if (used_[i]) continue;
    const std::string& a = items_[i];
    for (const std::string& n : {name, alt}) {
      if (n.empty()) continue;
      if (a == n) {
        if (i + 1 >= items_.size()) fail("option ", n, " needs a value");
        used_[i] = used_[i + 1] = true;
        out = items_[i + 1];
        break;
      }
      if (n.size() > 2 && n[1] == '-' && a.rfind(n + "=", 0) == 0) {
        used_[i] = true;
        out = a.substr(n.size() + 1);
        break;
      }
    }
  }
  return out;
}

std::string Args::value_or(const std::string& name, const std::string& dflt) {
  auto v = value(name);
  return v ? *v : dflt;
}

long long Args::int_or(const std::string& name, long long dflt) {
  auto v = value(name);
  if (!v) return dflt;
  char* end = nullptr;
  long long r = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end) fail("option ", name, ": expected an integer, got '", *v, "'");
  return r;
}

double Args::float_or(const std::string& name, double dflt) {
  auto v = value(name);
  if (!v) return dflt;
  char* end = nullptr;
  double r = std::strtod(v->c_str(), &end);
  if (v->empty() || *end) fail("option ", name, ": expected a number, got '", *v, "'");
  return r;
}

std::vector<std::string> Args::positionals() {
  std::vector<std::string> out;
  for (size_t i = 0; i < items_.size(); i++) {
    if (used_[i]) continue;
    if (items_[i].size() > 1 && items_[i][0] == '-') continue;
    used_[i] = true;
    out.push_back(items_[i]);
  }
  return out;
}

void Args::finish() const {
  for (size_t i = 0; i < items_.size(); i++)
    if (!used_[i]) fail(command_, ": unknown argument '", items_[i], "' (see pocket ", command_, " --help)");
}

}  // namespace pocket::cli

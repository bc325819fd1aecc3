#include "cli/default_model.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "util/error.h"

namespace pocket::cli {

namespace fs = std::filesystem;

std::vector<std::string> default_model_candidates() {
  std::vector<std::string> out;
#ifdef POCKET_SOURCE_DIR
  out.push_back((fs::path(POCKET_SOURCE_DIR) / "models" / kDemoModelName).string());
#endif
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    fs::path dir = exe.parent_path();
    out.push_back((dir / kDemoModelName).string());
    out.push_back((dir / "models" / kDemoModelName).string());
    out.push_back((dir.parent_path() / "models" / kDemoModelName).string());
    out.push_back((dir.parent_path() / "share" / "pocket" / kDemoModelName).string());
  }
  if (const char* home = std::getenv("POCKET_HOME"); home && *home) {
    out.push_back((fs::path(home) / kDemoModelName).string());
    out.push_back((fs::path(home) / "models" / kDemoModelName).string());
  }
  return out;
}

std::string default_model_path() {
  const auto candidates = default_model_candidates();
  std::string looked;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
    looked += "\n  " + c;
  }
  fail("no model given (-m FILE) and the built-in demo model ", kDemoModelName,
       " was not found; looked in:", looked,
       "\nPass -m FILE, or set POCKET_HOME to a folder that holds ", kDemoModelName, ".");
}

}  // namespace pocket::cli

// The built-in demo model (models/pocket-demo.gguf, see models/README.md): what `pocket run`
// and `pocket serve` load when no -m is given.
#pragma once

#include <string>
#include <vector>

namespace pocket::cli {

// File name of the built-in demo model.
inline constexpr const char* kDemoModelName = "pocket-demo.gguf";

// Candidate paths, in search order:
//   1. <POCKET_SOURCE_DIR>/models/pocket-demo.gguf (the source tree the binary was built from)
//   2. <dir of the executable>/pocket-demo.gguf, <dir>/models/..., <dir>/../models/...,
//      <dir>/../share/pocket/... (next to an installed or copied binary)
//   3. $POCKET_HOME/pocket-demo.gguf, $POCKET_HOME/models/pocket-demo.gguf
std::vector<std::string> default_model_candidates();

// First existing candidate; throws pocket::Error listing every place it looked (and how to fix
// it: pass -m FILE or set POCKET_HOME) when none exists.
std::string default_model_path();

}  // namespace pocket::cli

// Placeholder until the owning issue lands; replaced by the real command.
#include "cli/commands.h"
#include "util/error.h"

namespace pocket::cli {
int cmd_tokenize(int, char**) { fail("not implemented yet"); }
int cmd_detokenize(int, char**) { fail("not implemented yet"); }
}  // namespace pocket::cli

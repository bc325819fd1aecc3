// Placeholder until the owning issue lands; replaced by the real command.
#include "cli/commands.h"
#include "util/error.h"

namespace pocket::cli {
int cmd_run(int, char**) { fail("not implemented yet"); }

}  // namespace pocket::cli

// pocket usage --db FILE [--by key|model|day|backend] [--key N] [--since-ms T] [--json]:
// the gateway's usage ledger with local (energy + hardware) and cloud-equivalent costs.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "gateway/db.h"
#include "util/error.h"

namespace pocket::cli {

int cmd_usage(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("-h", "--help")) {
    std::printf(
        "usage: pocket usage --db FILE [--by key|model|day|backend] [--key N] [--since-ms T] "
        "[--json]\n");
    return 0;
  }
  const auto db_path = args.value("--db");
  if (!db_path) fail("pocket usage: --db FILE is required");
  const std::string by = args.value_or("--by", "key");
  const long long key = args.int_or("--key", -1);
  const long long since = args.int_or("--since-ms", 0);
  const bool as_json = args.flag("--json");
  args.finish();
  gateway::Db db(*db_path);
  const nlohmann::json rows = db.report(by, key, since);
  if (as_json) {
    std::printf("%s\n", rows.dump(2).c_str());
    return 0;
  }
  std::printf("%-12s %9s %12s %10s %12s %12s %12s %11s %11s\n", by.c_str(), "requests", "prompt",
              "cached", "completion", "local $", "cloud $", "local $/1M", "cloud $/1M");
  for (const auto& r : rows) {
    const std::string name = r[by].is_string() ? r[by].get<std::string>() : r[by].dump();
    std::printf("%-12s %9lld %12lld %10lld %12lld %12.6f %12.6f %11.4f %11.4f\n", name.c_str(),
                r["requests"].get<long long>(), r["prompt_tokens"].get<long long>(),
                r["cached_tokens"].get<long long>(), r["completion_tokens"].get<long long>(),
                r["cost_local"].get<double>(), r["cost_cloud"].get<double>(),
                r["local_per_1m_tokens"].get<double>(), r["cloud_per_1m_tokens"].get<double>());
  }
  return 0;
}

}  // namespace pocket::cli

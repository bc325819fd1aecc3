// pocket keys create|list|update|revoke --db FILE ...: API keys of the gateway,
// straight in its SQLite database (a running gateway picks changes up within ~2 s).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "gateway/db.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

const char* kUsage = R"(usage: pocket keys COMMAND --db FILE [options]

  create  --name NAME [limits] [--models a,b] [--expires UNIX_SECONDS]
          prints the key once; only its SHA-256 is stored
  list    [--json]
  update  --id N [--name NAME] [limits] [--models a,b|''] [--expires T] [--enable|--disable]
  revoke  --id N

  limits (0 = unlimited): --rpm N --tpm N --concurrent N --tokens-per-day N
          --tokens-per-month N --dollars-per-day X --dollars-per-month X
)";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size() && !s.empty()) {
    const size_t comma = s.find(',', start);
    const std::string part =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void read_options(Args& args, gateway::KeyInfo& k) {
  if (auto v = args.value("--name")) k.name = *v;
  if (auto v = args.value("--models")) k.models = split(*v);
  if (auto v = args.value("--expires")) k.expires_at = std::stoll(*v);
  auto& l = k.limits;
  l.requests_per_minute = args.int_or("--rpm", l.requests_per_minute);
  l.tokens_per_minute = args.int_or("--tpm", l.tokens_per_minute);
  l.concurrent = args.int_or("--concurrent", l.concurrent);
  l.tokens_per_day = args.int_or("--tokens-per-day", l.tokens_per_day);
  l.tokens_per_month = args.int_or("--tokens-per-month", l.tokens_per_month);
  l.dollars_per_day = args.float_or("--dollars-per-day", l.dollars_per_day);
  l.dollars_per_month = args.float_or("--dollars-per-month", l.dollars_per_month);
}

}  // namespace

int cmd_keys(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string sub = argv[1];
  Args args(argc - 1, argv + 1);
  const auto db_path = args.value("--db");
  if (!db_path) fail("pocket keys ", sub, ": --db FILE is required");
  if (sub == "create") {
    gateway::KeyInfo k;
    read_options(args, k);
    if (args.flag("--disable")) k.enabled = false;
    args.finish();
    if (k.name.empty()) fail("pocket keys create: --name is required");
    gateway::Db db(*db_path);
    auto [rec, secret] = db.create_key(k);
    nlohmann::json j = gateway::key_json(rec);
    j["key"] = secret;
    std::printf("%s\n", j.dump().c_str());
    std::fprintf(stderr, "key %lld created; it is shown only now: %s\n", (long long)rec.id,
                 secret.c_str());
    return 0;
  }
  if (sub == "list") {
    const bool as_json = args.flag("--json");
    args.finish();
    gateway::Db db(*db_path);
    const auto keys = db.list_keys();
    if (as_json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& k : keys) arr.push_back(gateway::key_json(k));
      std::printf("%s\n", arr.dump(2).c_str());
      return 0;
    }
    std::printf("%-5s %-20s %-12s %-8s %-8s %-10s %s\n", "ID", "NAME", "PREFIX", "STATE", "RPM",
                "TPM", "MODELS");
    for (const auto& k : keys) {
      std::string models;
      for (const auto& m : k.models) models += (models.empty() ? "" : ",") + m;
      std::printf("%-5lld %-20s %-12s %-8s %-8lld %-10lld %s\n", (long long)k.id, k.name.c_str(),
                  k.prefix.c_str(),
                  k.revoked   ? "revoked"
                  : k.enabled ? "enabled"
                              : "disabled",
                  (long long)k.limits.requests_per_minute, (long long)k.limits.tokens_per_minute,
                  models.empty() ? "*" : models.c_str());
    }
    return 0;
  }
  if (sub == "update" || sub == "revoke") {
    const long long id = args.int_or("--id", -1);
    if (id < 0) fail("pocket keys ", sub, ": --id N is required");
    gateway::Db db(*db_path);
    auto k = db.get_key(id);
    if (!k) fail("pocket keys ", sub, ": no key with id ", id);
    if (sub == "revoke") {
      args.finish();
      db.revoke_key(id);
      std::printf("key %lld revoked\n", id);
      return 0;
    }
    if (k->revoked) fail("pocket keys update: key ", id, " is revoked");
    read_options(args, *k);
    if (args.flag("--enable")) k->enabled = true;
    if (args.flag("--disable")) k->enabled = false;
    args.finish();
    db.update_key(*k);
    std::printf("%s\n", gateway::key_json(*k).dump().c_str());
    return 0;
  }
  fail("pocket keys: unknown command '", sub, "' (create, list, update, revoke)");
}

}  // namespace pocket::cli

// pocket gateway --config gateway.toml [--listen HOST:PORT] [--db FILE] [--redis URL]
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "util/error.h"

namespace pocket::cli {

int cmd_gateway(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("-h", "--help")) {
    std::printf(
        "usage: pocket gateway --config gateway.toml [--listen HOST:PORT] [--db FILE] [--redis "
        "URL]\n"
        "  OpenAI-compatible gateway in front of `pocket serve` backends: API keys, routing,\n"
        "  limits, usage ledger and costs. See docs/gateway.md for the config file.\n");
    return 0;
  }
  const auto path = args.value("-c", "--config");
  if (!path) fail("pocket gateway: --config FILE is required");
  gateway::GatewayConfig cfg = gateway::load_config(*path);
  if (auto v = args.value("--listen")) gateway::parse_listen(*v, cfg.host, cfg.port);
  if (auto v = args.value("--db")) cfg.db_path = *v;
  if (auto v = args.value("--redis")) cfg.redis_url = *v;
  args.finish();

  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT/SIGTERM stop the server cleanly (the usage ledger is flushed): a thread
  // waits for them, the others never see them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  gateway::Gateway gw(std::move(cfg));
  std::thread waiter([&gw, set] {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGUSR2) gw.stop();
  });
  try {
    gw.run();
  } catch (...) {
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    throw;
  }
  // run() returned: stopped by a signal, or the listener failed.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}

}  // namespace pocket::cli

// Every `pocket` subcommand: int cmd_NAME(int argc, char** argv), argv[0] = the
// subcommand name. Each returns the process exit code; errors are thrown as
// pocket::Error and printed by main.
#pragma once

namespace pocket::cli {

int cmd_info(int argc, char** argv);
int cmd_make_model(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_gateway(int argc, char** argv);
int cmd_keys(int argc, char** argv);
int cmd_usage(int argc, char** argv);

}  // namespace pocket::cli

// sweepq: the command-line client. Everything but wiring the process's
// streams, environment and terminal into a CliContext lives in
// sweepq::client (client/commands.h).
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/config.h"
#include "grpc/support/log.h"

namespace {

// gRPC's own log lines ("Handshake failed ...") would repeat, less clearly,
// what the CLI says about a failed call. SWEEPQ_DEBUG=1 keeps them.
void DropGrpcLog(gpr_log_func_args* /*args*/) {}

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe (`sweepq runs | head`) ends the output, not the process
  // with a signal.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  sweepq::client::ProcessEnvironment env;
  if (!env.Get("SWEEPQ_DEBUG").has_value()) gpr_set_log_function(DropGrpcLog);
  sweepq::client::CliContext context;
  context.out = &std::cout;
  context.err = &std::cerr;
  context.in = &std::cin;
  context.env = &env;
  context.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  context.stderr_is_tty = isatty(STDERR_FILENO) == 1;
  struct winsize size {};
  if (context.stdout_is_tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0) {
    context.terminal_columns = size.ws_col;
  }
  int code = sweepq::client::RunCli(args, context);
  std::cout.flush();
  return code;
}

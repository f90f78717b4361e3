// The `sweepq` commands. RunCli() parses the words after the program name,
// dispatches to one command and turns its status into an exit code and a
// message on stderr (client/errors.h lists the codes).
//
// Every command reads its environment through CliContext, so tests can run
// the whole CLI in-process with their own streams, variables and clock.
// Not thread-safe: one RunCli() per CliContext at a time.
#ifndef SWEEPQ_CLIENT_COMMANDS_H_
#define SWEEPQ_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/args.h"
#include "client/config.h"
#include "client/connection.h"
#include "client/json.h"
#include "client/table.h"
#include "client/views.h"

namespace sweepq::client {

// What the CLI runs against. main() fills it from the process; tests from
// their fakes. Pointers are not owned and must outlive RunCli().
struct CliContext {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Where `login --token -` reads the token from.
  std::istream* in = nullptr;
  const Environment* env = nullptr;
  bool stdout_is_tty = false;
  bool stderr_is_tty = false;
  // Columns of the terminal when stdout is one; 0 = unknown.
  size_t terminal_columns = 0;
  // Milliseconds since the Unix epoch.
  std::function<int64_t()> now_ms;
  // Opens the connection to the coordinator (Connection::Open by default).
  std::function<absl::StatusOr<std::unique_ptr<Connection>>(
      const ConnectionOptions&)>
      connect;
  // Sleeps between polls and reconnects (absl::SleepFor by default).
  std::function<void(absl::Duration)> sleep;
};

// Runs `sweepq ARGS...` and returns the exit code. Output goes to
// context.out, errors (prefixed "sweepq: ") to context.err.
int RunCli(const std::vector<std::string>& args, CliContext& context);

// Fills the defaults of `context` that are unset (now_ms, connect, sleep).
void FillContextDefaults(CliContext& context);

// ---- Shared by the command implementations (commands.cc, submit.cc,
// watch.cc, jobs.cc) ----

// Options every command accepts.
struct CommonOptions {
  double timeout_s = 10;
  bool no_color = false;
};

// Adds --timeout and --no-color, which every command takes.
void AddCommonFlags(ArgParser* parser, CommonOptions* options);

// State of one command invocation: streams, colour and width decisions and
// a lazily opened connection.
class Session {
 public:
  Session(CliContext& context, CommonOptions options)
      : context_(context), options_(options) {}

  std::ostream& out() { return *context_.out; }
  std::ostream& err() { return *context_.err; }
  const Environment& env() const { return *context_.env; }
  CliContext& context() { return context_; }
  int64_t NowMs() const { return context_.now_ms(); }
  void Sleep(absl::Duration d) { context_.sleep(d); }

  // Colour on stdout: only on a TTY, never with NO_COLOR (any non-empty
  // value), TERM=dumb or --no-color.
  bool color() const;
  // Same rules for stderr.
  bool err_color() const;
  // Table options: at most 100 columns, fewer on a narrower terminal.
  TableOptions table_options() const;

  // Loads the effective config and opens the connection once.
  absl::StatusOr<Connection*> connection();

 private:
  bool ColorAllowed(bool tty) const;

  CliContext& context_;
  CommonOptions options_;
  std::unique_ptr<Connection> connection_;
};

// Parses `args` into `positionals` (between `min` and `max` of them); on
// --help prints the help to context.out and sets *help. Usage errors as
// ArgParser::Parse.
absl::Status ParseOrHelp(ArgParser& parser,
                         const std::vector<std::string>& args,
                         std::vector<std::string>* positionals, size_t min,
                         size_t max, CliContext& context, bool* help);

// Parses a positive id; otherwise a usage error "WHAT must be a WHAT id (a
// positive number, as listed by LISTER), got 'TEXT'".
absl::StatusOr<int64_t> ParseId(const ArgParser& parser, absl::string_view what,
                                absl::string_view text,
                                absl::string_view lister);

// Writes `value` to session.out() as indented JSON and a newline.
void PrintJson(Session& session, const JsonValue& value);

// The file a download goes to: `output` (a directory gets the artifact's
// base name appended) or the artifact's base name in the current directory.
std::string DownloadPath(const std::string& output, const std::string& name);

// Downloads artifact `name` of `run_id` (newest attempt when `attempt` is
// 0) into `path` through a temporary file that is checked against the size
// and SHA-256 the coordinator recorded before it is renamed into place.
// Returns the artifact's header. Fails (exit 1) without calling the
// coordinator when `path` exists and `force` is false; NOT_FOUND for an
// unknown run or artifact, DATA_LOSS for a corrupt download.
absl::StatusOr<sweepq::v1::Artifact> DownloadArtifactTo(
    Connection* connection, int64_t run_id, const std::string& name,
    uint32_t attempt, const std::string& path, bool force, double timeout_s);

// DownloadArtifactTo, then "saved NAME of run N (attempt, size, sha256
// verified) to PATH" on session.out().
absl::Status Download(Session& session, Connection* connection, int64_t run_id,
                      const std::string& name, uint32_t attempt,
                      const std::string& path, bool force, double timeout_s);

// `sweepq submit`.
absl::Status RunSubmit(const std::vector<std::string>& args,
                       CliContext& context);
// `sweepq watch`.
absl::Status RunWatch(const std::vector<std::string>& args,
                      CliContext& context);
// `sweepq plot` (client/plot.cc).
absl::Status RunPlot(const std::vector<std::string>& args,
                     CliContext& context);
// `sweepq predict`, `submission`, `promote` and `gradcam`: jobs over
// finished runs (client/jobs.cc).
absl::Status RunPredict(const std::vector<std::string>& args,
                        CliContext& context);
absl::Status RunSubmission(const std::vector<std::string>& args,
                           CliContext& context);
absl::Status RunPromote(const std::vector<std::string>& args,
                        CliContext& context);
absl::Status RunGradCam(const std::vector<std::string>& args,
                        CliContext& context);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_COMMANDS_H_

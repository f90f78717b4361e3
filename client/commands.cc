#include "client/commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/args.h"
#include "client/errors.h"
#include "client/example_sweep.h"
#include "client/format.h"
#include "client/json.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

// ---- Shared helpers (also used by submit.cc and watch.cc via commands.h)

bool Session::ColorAllowed(bool tty) const {
  if (!tty || options_.no_color) return false;
  auto no_color = context_.env->Get("NO_COLOR");
  if (no_color.has_value() && !no_color->empty()) return false;
  auto term = context_.env->Get("TERM");
  if (term.has_value() && *term == "dumb") return false;
  return true;
}

bool Session::color() const { return ColorAllowed(context_.stdout_is_tty); }

bool Session::err_color() const { return ColorAllowed(context_.stderr_is_tty); }

TableOptions Session::table_options() const {
  TableOptions options;
  options.color = color();
  options.max_width = 100;
  if (context_.stdout_is_tty && context_.terminal_columns > 0) {
    options.max_width = std::min<size_t>(100, context_.terminal_columns);
  }
  return options;
}

absl::StatusOr<Connection*> Session::connection() {
  if (connection_ != nullptr) return connection_.get();
  ASSIGN_OR_RETURN(EffectiveConfig effective,
                   LoadEffectiveConfig(*context_.env));
  if (effective.file_found && IsReadableByOthers(effective.path)) {
    err() << "sweepq: warning: " << effective.path
          << " holds your token and can be read by others; run chmod 600 "
          << effective.path << "\n";
  }
  ConnectionOptions options;
  options.server = effective.config.server;
  options.token = effective.config.token;
  options.tls_ca_file = effective.config.tls_ca;
  options.timeout = absl::Seconds(options_.timeout_s);
  ASSIGN_OR_RETURN(connection_, context_.connect(options));
  return connection_.get();
}

void AddCommonFlags(ArgParser* parser, CommonOptions* options) {
  parser->AddSeconds("timeout", &options->timeout_s,
                     "deadline of each call to the coordinator (default 10)");
  parser->AddBool("no-color", &options->no_color,
                  "never colour the output (also: NO_COLOR=1)");
}

absl::Status ParseOrHelp(ArgParser& parser,
                         const std::vector<std::string>& args,
                         std::vector<std::string>* positionals, size_t min,
                         size_t max, CliContext& context, bool* help) {
  RETURN_IF_ERROR(parser.Parse(args, positionals, min, max));
  *help = parser.help_requested();
  if (*help) *context.out << parser.HelpText();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseId(const ArgParser& parser, absl::string_view what,
                                absl::string_view text,
                                absl::string_view lister) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(text, &id) || id <= 0) {
    return parser.Error(absl::StrCat(what, " must be a ", what,
                                     " id (a positive number, as listed by ",
                                     lister, "), got '", text, "'"));
  }
  return id;
}

void PrintJson(Session& session, const JsonValue& value) {
  session.out() << value.Dump(2) << "\n";
}

namespace {

void PrintTable(Session& session, const Table& table, OutputFormat format) {
  if (format == OutputFormat::kCsv) {
    session.out() << table.RenderCsv();
  } else {
    session.out() << table.Render(session.table_options());
  }
}

// ---- login / config ----

constexpr char kLoginUsage[] =
    "sweepq login --server HOST:PORT --team NAME --token TOKEN "
    "[--tls-ca FILE] [--no-verify]";

absl::Status RunLogin(const std::vector<std::string>& args,
                      CliContext& context) {
  ArgParser parser(
      "sweepq login",
      {kLoginUsage,
       "Checks the token against the coordinator and saves the address, team "
       "and\ntoken to $XDG_CONFIG_HOME/sweepq/config.yaml (default "
       "~/.config/sweepq/config.yaml)\nwith mode 0600. SWEEPQ_SERVER, "
       "SWEEPQ_TEAM, SWEEPQ_TOKEN and SWEEPQ_TLS_CA override\nthe file. "
       "`--token -` reads the token from stdin (keeps it out of shell "
       "history).",
       "  # the member token printed by `sweepq-server team create vision`\n"
       "  sweepq login --server gpu-coord:50051 --team vision --token "
       "\"$SWEEPQ_MEMBER_TOKEN\"\n"});
  CommonOptions common;
  std::string server, team, token, tls_ca;
  bool no_verify = false;
  parser.AddString("server", &server, "HOST:PORT", "the coordinator");
  parser.AddString("team", &team, "NAME",
                   "your team (as created on the "
                   "server)");
  parser.AddString("token", &token, "TOKEN",
                   "the team's member token; - reads it from stdin");
  parser.AddString("tls-ca", &tls_ca, "FILE",
                   "PEM CA certificate of a TLS server");
  parser.AddBool("no-verify", &no_verify,
                 "save without checking the token with the coordinator");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 0, context, &help));
  if (help) return absl::OkStatus();
  if (server.empty()) return parser.Error("--server HOST:PORT is required");
  if (token == "-") {
    if (context.in == nullptr || !std::getline(*context.in, token)) {
      return parser.Error("--token -: no token on stdin");
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) {
      token.pop_back();
    }
  }
  if (token.empty()) return parser.Error("--token TOKEN is required");
  if (server.find(':') == std::string::npos) {
    return parser.Error(
        absl::StrCat("--server must be HOST:PORT, got '", server, "'"));
  }
  if (!tls_ca.empty()) {
    char resolved[PATH_MAX];
    if (realpath(tls_ca.c_str(), resolved) == nullptr) {
      return WithExitCode(
          absl::NotFoundError(absl::StrCat("cannot read --tls-ca ", tls_ca,
                                           ": ", std::strerror(errno))),
          kExitNotFound);
    }
    tls_ca = resolved;
  }
  ASSIGN_OR_RETURN(std::string path, ConfigFilePath(*context.env));
  Session session(context, common);
  if (!no_verify) {
    ConnectionOptions options;
    options.server = server;
    options.token = token;
    options.tls_ca_file = tls_ca;
    options.timeout = absl::Seconds(common.timeout_s);
    ASSIGN_OR_RETURN(auto connection, context.connect(options));
    auto workers =
        connection->Call(&v1::TeamService::StubInterface::ListWorkers,
                         v1::ListWorkersRequest(), "");
    if (!workers.ok()) {
      std::string hint =
          absl::IsUnavailable(workers.status()) ||
                  absl::IsDeadlineExceeded(workers.status())
              ? "\n  nothing saved; pass --no-verify to save anyway"
              : "\n  nothing saved";
      return absl::Status(workers.status().code(),
                          absl::StrCat(workers.status().message(), hint));
    }
  }
  ClientConfig config{server, team, token, tls_ca};
  RETURN_IF_ERROR(WriteConfigFile(path, config));
  session.out() << "logged in to " << server
                << (team.empty() ? "" : absl::StrCat(" as team ", team))
                << (no_verify ? " (token not checked)" : "") << "\n"
                << "saved " << path << " (mode 0600)\n";
  for (const char* var :
       {"SWEEPQ_SERVER", "SWEEPQ_TEAM", "SWEEPQ_TOKEN", "SWEEPQ_TLS_CA"}) {
    auto v = context.env->Get(var);
    if (v.has_value() && !v->empty()) {
      session.err() << "sweepq: note: " << var
                    << " is set and overrides the saved value\n";
    }
  }
  return absl::OkStatus();
}

absl::Status RunConfigCommand(const std::vector<std::string>& args,
                              CliContext& context) {
  ArgParser parser(
      "sweepq config",
      {"sweepq config [--format table|json]",
       "Shows the configuration in effect, where each value comes from (the "
       "file or\nan environment variable) and the file's path. The token is "
       "masked.",
       "  SWEEPQ_SERVER=127.0.0.1:50051 sweepq config\n"});
  CommonOptions common;
  std::string format_text = "table";
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 0, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  ASSIGN_OR_RETURN(EffectiveConfig effective,
                   LoadEffectiveConfig(*context.env));
  Session session(context, common);
  const ClientConfig& c = effective.config;
  std::string masked =
      c.token.empty() ? "" : absl::StrCat(c.token.substr(0, 4), "\u2026");
  if (format == OutputFormat::kJson) {
    JsonValue out = JsonValue::Object();
    out.Set("path", JsonValue::String(effective.path))
        .Set("file_found", JsonValue::Bool(effective.file_found))
        .Set("server", JsonValue::String(c.server))
        .Set("server_source", JsonValue::String(effective.sources.server))
        .Set("team", JsonValue::String(c.team))
        .Set("team_source", JsonValue::String(effective.sources.team))
        .Set("token_set", JsonValue::Bool(!c.token.empty()))
        .Set("token_source", JsonValue::String(effective.sources.token))
        .Set("tls_ca", JsonValue::String(c.tls_ca))
        .Set("tls_ca_source", JsonValue::String(effective.sources.tls_ca));
    PrintJson(session, out);
    return absl::OkStatus();
  }
  Table table({Column{"key"}, Column{"value"}, Column{"from"}});
  table.AddRow(
      {"server", c.server.empty() ? "-" : c.server, effective.sources.server});
  table.AddRow({"team", c.team.empty() ? "-" : c.team, effective.sources.team});
  table.AddRow(
      {"token", masked.empty() ? "-" : masked, effective.sources.token});
  table.AddRow({"tls_ca", c.tls_ca.empty() ? "- (plaintext)" : c.tls_ca,
                effective.sources.tls_ca});
  session.out() << table.Render(session.table_options());
  session.out() << "file: " << effective.path
                << (effective.file_found ? "" : " (not written yet)") << "\n";
  return absl::OkStatus();
}

// ---- runs / show ----

absl::Status RunRuns(const std::vector<std::string>& args,
                     CliContext& context) {
  ArgParser parser(
      "sweepq runs",
      {"sweepq runs [--sweep S] [--state STATE] [--limit N] "
       "[--format table|json|csv]",
       "Lists runs, newest first, with their state, best metric and the "
       "parameters\nthat differ between the listed runs. STATE is queued, "
       "leased, running,\nsucceeded, failed, cancelled or pruned.",
       "  sweepq runs --sweep 3 --state failed\n"});
  CommonOptions common;
  int64_t sweep_id = 0, limit = 100;
  std::string state_text, format_text = "table";
  parser.AddInt("sweep", &sweep_id, "S", "only runs of sweep S", 1, INT64_MAX);
  parser.AddString("state", &state_text, "STATE", "only runs in this state");
  parser.AddInt("limit", &limit, "N", "at most N runs (default 100)", 1, 10000);
  parser.AddString("format", &format_text, "FORMAT", "table, json or csv");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 0, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, true));
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  request.set_limit(static_cast<uint32_t>(limit));
  if (!state_text.empty()) {
    auto state = ParseStateName(state_text);
    if (!state.has_value()) {
      return parser.Error(absl::StrCat(
          "--state must be queued, leased, running, succeeded, failed, "
          "cancelled or pruned, not '",
          state_text, "'"));
    }
    request.set_state(*state);
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(
      v1::ListRunsResponse response,
      connection->Call(&v1::TeamService::StubInterface::ListRuns, request,
                       "sweepq runs (without --sweep) for the sweeps"));
  std::vector<v1::Run> runs(response.runs().begin(), response.runs().end());
  if (format == OutputFormat::kJson) {
    PrintJson(session, RunsJson(runs, session.NowMs()));
    return absl::OkStatus();
  }
  if (runs.empty() && format == OutputFormat::kTable) {
    session.out() << (sweep_id > 0 || !state_text.empty()
                          ? "no runs match\n"
                          : "no runs yet \u2014 submit a sweep with sweepq "
                            "submit FILE\n");
    return absl::OkStatus();
  }
  PrintTable(session, RunsTable(runs, session.NowMs()), format);
  return absl::OkStatus();
}

absl::Status RunShow(const std::vector<std::string>& args,
                     CliContext& context) {
  ArgParser parser(
      "sweepq show",
      {"sweepq show RUN [--format table|json]",
       "Shows one run: state, attempts with their workers and outcomes, best "
       "epoch and\nthe metrics there, error text, artifacts, swept "
       "parameters and the resolved\nconfig.",
       "  sweepq show 42\n  sweepq show 42 --format json | jq .config\n"});
  CommonOptions common;
  std::string format_text = "table";
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 1, 1, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  ASSIGN_OR_RETURN(int64_t run_id,
                   ParseId(parser, "RUN", positionals[0], "sweepq runs"));
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  v1::GetRunRequest get;
  get.set_run_id(run_id);
  RunDetails details;
  ASSIGN_OR_RETURN(details.run,
                   connection->Call(&v1::TeamService::StubInterface::GetRun,
                                    get, "sweepq runs"));
  v1::ListArtifactsRequest list;
  list.set_run_id(run_id);
  ASSIGN_OR_RETURN(
      v1::ListArtifactsResponse artifacts,
      connection->Call(&v1::TeamService::StubInterface::ListArtifacts, list,
                       "sweepq runs"));
  details.artifacts.assign(artifacts.artifacts().begin(),
                           artifacts.artifacts().end());
  if (details.run.has_best()) {
    // The metrics at the best step come with the run's leaderboard entry.
    v1::LeaderboardRequest board;
    board.set_sweep_id(details.run.sweep_id());
    board.set_metric(details.run.metric());
    board.set_top(1000);
    auto entries = connection->Call(
        &v1::TeamService::StubInterface::Leaderboard, board, "sweepq runs");
    if (entries.ok()) {
      for (const auto& e : entries->entries()) {
        if (e.run().run_id() != run_id) continue;
        details.metrics_at_best.insert(e.metrics_at_best().begin(),
                                       e.metrics_at_best().end());
      }
    }
  }
  if (format == OutputFormat::kJson) {
    PrintJson(session, ShowJson(details, session.NowMs()));
  } else {
    session.out() << ShowText(details, session.NowMs(),
                              session.table_options());
  }
  return absl::OkStatus();
}

// ---- board ----

absl::Status RunBoard(const std::vector<std::string>& args,
                      CliContext& context) {
  ArgParser parser(
      "sweepq board",
      {"sweepq board [--sweep S] [--metric M] [--top N] "
       "[--format table|json|csv]",
       "The team leaderboard: rank, run, best value of the metric, val_acc, "
       "best epoch,\nthe parameters that differ between the listed runs, "
       "state, duration, worker.\nWithout --sweep it ranks every run of the "
       "team whose sweep optimises --metric\n(default val_f1); with --sweep, "
       "the sweep's own metric. Only runs that reported\nthe metric appear.",
       "  sweepq board --top 10\n"
       "  sweepq board --sweep 3 --format csv > sweep3.csv\n"});
  CommonOptions common;
  int64_t sweep_id = 0, top = 20;
  std::string metric, format_text = "table";
  parser.AddInt("sweep", &sweep_id, "S", "only runs of sweep S", 1, INT64_MAX);
  parser.AddString("metric", &metric, "M",
                   "rank runs whose sweep optimises M (default val_f1; with "
                   "--sweep, its metric)");
  parser.AddInt("top", &top, "N", "show the best N runs (default 20)", 1, 1000);
  parser.AddString("format", &format_text, "FORMAT", "table, json or csv");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 0, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, true));
  if (metric.empty() && sweep_id == 0) metric = "val_f1";
  v1::LeaderboardRequest request;
  request.set_sweep_id(sweep_id);
  request.set_metric(metric);
  request.set_top(static_cast<uint32_t>(top));
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(
      v1::LeaderboardResponse response,
      connection->Call(&v1::TeamService::StubInterface::Leaderboard, request,
                       "sweepq runs for the sweeps"));
  std::vector<v1::LeaderboardEntry> entries(response.entries().begin(),
                                            response.entries().end());
  if (format == OutputFormat::kJson) {
    PrintJson(session, BoardJson(entries, session.NowMs()));
    return absl::OkStatus();
  }
  if (format == OutputFormat::kCsv) {
    PrintTable(session, BoardTable(entries, session.NowMs()), format);
    return absl::OkStatus();
  }
  v1::Goal goal = v1::GOAL_MAXIMIZE;
  if (!entries.empty()) {
    if (metric.empty()) metric = entries[0].run().metric();
    goal = entries[0].run().goal();
  }
  if (entries.empty()) {
    session.out() << "no runs have reported "
                  << (metric.empty() ? "their metric" : metric)
                  << (sweep_id > 0 ? absl::StrCat(" in sweep ", sweep_id)
                                   : std::string())
                  << " yet \u2014 runs appear once a worker reports it (see "
                     "sweepq runs)\n";
    return absl::OkStatus();
  }
  session.out() << Stylize(BoardCaption(sweep_id, metric, goal, entries.size(),
                                        static_cast<uint32_t>(top)),
                           Style::kDim, session.color())
                << "\n";
  PrintTable(session, BoardTable(entries, session.NowMs()), format);
  return absl::OkStatus();
}

// ---- cancel / retry ----

absl::Status RunCancel(const std::vector<std::string>& args,
                       CliContext& context) {
  ArgParser parser(
      "sweepq cancel",
      {"sweepq cancel RUN | --sweep S",
       "Cancels a run, or every unfinished run of a sweep. Queued runs are "
       "cancelled at\nonce; a running run is stopped by its worker at the "
       "next heartbeat.",
       "  sweepq cancel 42\n  sweepq cancel --sweep 3\n"});
  CommonOptions common;
  int64_t sweep_id = 0;
  parser.AddInt("sweep", &sweep_id, "S", "cancel every run of sweep S", 1,
                INT64_MAX);
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 1, context, &help));
  if (help) return absl::OkStatus();
  if ((sweep_id > 0) == !positionals.empty()) {
    return parser.Error("give either RUN or --sweep S");
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  if (sweep_id > 0) {
    v1::CancelSweepRequest request;
    request.set_sweep_id(sweep_id);
    ASSIGN_OR_RETURN(
        v1::CancelSweepResponse response,
        connection->Call(&v1::TeamService::StubInterface::CancelSweep, request,
                         "sweepq runs for the sweeps"));
    session.out() << "sweep " << sweep_id << ": " << response.cancelled()
                  << " queued run" << (response.cancelled() == 1 ? "" : "s")
                  << " cancelled, " << response.cancel_requested()
                  << " running run"
                  << (response.cancel_requested() == 1 ? "" : "s")
                  << " told to stop\n";
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(int64_t run_id,
                   ParseId(parser, "RUN", positionals[0], "sweepq runs"));
  v1::CancelRunRequest request;
  request.set_run_id(run_id);
  ASSIGN_OR_RETURN(v1::CancelRunResponse response,
                   connection->Call(&v1::TeamService::StubInterface::CancelRun,
                                    request, "sweepq runs"));
  if (response.state() == v1::RUN_STATE_CANCELLED) {
    session.out() << "run " << run_id << " cancelled\n";
  } else if (IsFinalState(response.state())) {
    session.out() << "run " << run_id << " had already ended ("
                  << StateName(response.state()) << "); nothing to cancel\n";
  } else {
    session.out() << "run " << run_id << ": cancel requested \u2014 its "
                  << "worker stops it at the next heartbeat (now "
                  << StateName(response.state()) << ")\n";
  }
  return absl::OkStatus();
}

absl::Status RunRetry(const std::vector<std::string>& args,
                      CliContext& context) {
  ArgParser parser(
      "sweepq retry",
      {"sweepq retry RUN | --sweep S --failed",
       "Queues a failed, cancelled or pruned run again with a fresh attempt "
       "budget, or\n(--sweep S --failed) every failed run of a sweep.",
       "  sweepq retry 42\n  sweepq retry --sweep 3 --failed\n"});
  CommonOptions common;
  int64_t sweep_id = 0;
  bool failed = false;
  parser.AddInt("sweep", &sweep_id, "S",
                "retry runs of sweep S (with "
                "--failed)",
                1, INT64_MAX);
  parser.AddBool("failed", &failed, "with --sweep: retry every failed run");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 1, context, &help));
  if (help) return absl::OkStatus();
  if ((sweep_id > 0) == !positionals.empty()) {
    return parser.Error("give either RUN or --sweep S --failed");
  }
  if (sweep_id > 0 && !failed) {
    return parser.Error("--sweep S needs --failed (retry every failed run)");
  }
  if (sweep_id == 0 && failed) {
    return parser.Error("--failed goes with --sweep S");
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  std::vector<int64_t> run_ids;
  if (sweep_id > 0) {
    v1::ListRunsRequest list;
    list.set_sweep_id(sweep_id);
    list.set_state(v1::RUN_STATE_FAILED);
    list.set_limit(10000);
    ASSIGN_OR_RETURN(v1::ListRunsResponse runs,
                     connection->Call(&v1::TeamService::StubInterface::ListRuns,
                                      list, "sweepq runs for the sweeps"));
    for (const auto& r : runs.runs()) run_ids.push_back(r.run_id());
    std::sort(run_ids.begin(), run_ids.end());
    if (run_ids.empty()) {
      session.out() << "sweep " << sweep_id << " has no failed runs\n";
      return absl::OkStatus();
    }
  } else {
    ASSIGN_OR_RETURN(int64_t run_id,
                     ParseId(parser, "RUN", positionals[0], "sweepq runs"));
    run_ids.push_back(run_id);
  }
  absl::Status last_error;
  size_t failures = 0;
  for (int64_t run_id : run_ids) {
    v1::RetryRunRequest request;
    request.set_run_id(run_id);
    // Not retried on UNAVAILABLE: a lost reply would make the second try
    // fail with "already queued".
    auto response = connection->Call(&v1::TeamService::StubInterface::RetryRun,
                                     request, "sweepq runs", Retry::kNo);
    if (!response.ok()) {
      ++failures;
      last_error = response.status();
      if (run_ids.size() > 1) {
        session.err() << "sweepq: run " << run_id << ": "
                      << response.status().message() << "\n";
      }
      continue;
    }
    session.out() << "run " << run_id << " queued again (attempts used "
                  << response->run().attempt() << ", allowed up to "
                  << response->run().max_attempts() << ")\n";
  }
  if (failures == 0) return absl::OkStatus();
  if (run_ids.size() == 1) return last_error;
  return absl::Status(last_error.code(),
                      absl::StrCat(failures, " of ", run_ids.size(),
                                   " retries failed (see above)"));
}

// ---- workers ----

absl::Status RunWorkers(const std::vector<std::string>& args,
                        CliContext& context) {
  ArgParser parser(
      "sweepq workers",
      {"sweepq workers [--format table|json|csv] | sweepq workers drain ID | "
       "sweepq workers clear ID",
       "Lists the team's workers. `drain ID` makes a worker finish its "
       "current runs and\nlease no more; `clear ID` takes a quarantined "
       "worker (too many failed runs in a\nrow) back into service.",
       "  sweepq workers\n  sweepq workers drain gpu-node-3\n"});
  CommonOptions common;
  std::string format_text = "table";
  parser.AddString("format", &format_text, "FORMAT", "table, json or csv");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 2, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, true));
  if (!positionals.empty()) {
    const std::string& verb = positionals[0];
    if (verb != "drain" && verb != "clear") {
      return parser.Error(absl::StrCat("unknown workers command '", verb,
                                       "' (expected drain or clear)"));
    }
    if (positionals.size() != 2) {
      return parser.Error(absl::StrCat("usage: sweepq workers ", verb, " ID"));
    }
    Session session(context, common);
    ASSIGN_OR_RETURN(Connection * connection, session.connection());
    v1::Worker worker;
    if (verb == "drain") {
      v1::DrainWorkerRequest request;
      request.set_worker_id(positionals[1]);
      ASSIGN_OR_RETURN(
          v1::DrainWorkerResponse response,
          connection->Call(&v1::TeamService::StubInterface::DrainWorker,
                           request, "sweepq workers"));
      worker = response.worker();
      session.out() << "worker " << worker.worker_id()
                    << " is draining: it finishes its current runs and "
                       "leases no more\n";
    } else {
      v1::ClearWorkerRequest request;
      request.set_worker_id(positionals[1]);
      ASSIGN_OR_RETURN(
          v1::ClearWorkerResponse response,
          connection->Call(&v1::TeamService::StubInterface::ClearWorker,
                           request, "sweepq workers"));
      worker = response.worker();
      session.out() << "worker " << worker.worker_id() << " cleared: now "
                    << WorkerStateName(worker.state()) << "\n";
    }
    if (format == OutputFormat::kJson) PrintJson(session, WorkerJson(worker));
    return absl::OkStatus();
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(
      v1::ListWorkersResponse response,
      connection->Call(&v1::TeamService::StubInterface::ListWorkers,
                       v1::ListWorkersRequest(), ""));
  std::vector<v1::Worker> workers(response.workers().begin(),
                                  response.workers().end());
  if (format == OutputFormat::kJson) {
    PrintJson(session, WorkersJson(workers));
    return absl::OkStatus();
  }
  if (workers.empty() && format == OutputFormat::kTable) {
    session.out() << "no workers have registered yet \u2014 start "
                     "sweepq-worker on a GPU node with the team's worker "
                     "token\n";
    return absl::OkStatus();
  }
  PrintTable(session, WorkersTable(workers, session.NowMs()), format);
  return absl::OkStatus();
}

}  // namespace

// ---- artifacts ----

std::string DownloadPath(const std::string& output, const std::string& name) {
  std::string base = name.substr(name.rfind('/') + 1);
  if (base.empty() || base == "." || base == "..") base = "artifact";
  if (output.empty()) return base;
  struct stat st;
  if (stat(output.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::StrCat(output, absl::EndsWith(output, "/") ? "" : "/", base);
  }
  return output;
}

absl::StatusOr<v1::Artifact> DownloadArtifactTo(
    Connection* connection, int64_t run_id, const std::string& name,
    uint32_t attempt, const std::string& path, bool force, double timeout_s) {
  struct stat st;
  if (!force && stat(path.c_str(), &st) == 0) {
    return WithExitCode(
        absl::AlreadyExistsError(absl::StrCat(
            path, " exists \u2014 pass --force to replace it, or -o PATH")),
        kExitFailed);
  }
  std::string dir = ".";
  size_t slash = path.rfind('/');
  if (slash != std::string::npos)
    dir = slash == 0 ? "/" : path.substr(0, slash);
  std::string temp = absl::StrCat(path, ".sweepq-part-XXXXXX");
  int fd = mkstemp(temp.data());
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create a file in ", dir, ": ", std::strerror(errno)));
  }
  // Whatever happens below, the temporary file does not survive a failure.
  bool keep = false;
  auto cleanup = [&]() {
    if (fd >= 0) close(fd);
    fd = -1;
    if (!keep) unlink(temp.c_str());
  };
  // Artifacts are not secrets: the usual mode, not mkstemp's 0600.
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);

  v1::DownloadArtifactRequest request;
  request.set_run_id(run_id);
  request.set_name(name);
  request.set_attempt(attempt);
  // Large checkpoints take longer than a unary call's deadline.
  absl::Duration deadline = absl::Seconds(std::max(timeout_s, 3600.0));
  auto call_context = connection->NewContext(deadline);
  auto reader =
      connection->stub()->DownloadArtifact(call_context.get(), request);
  v1::ArtifactChunk chunk;
  v1::Artifact header;
  bool have_header = false;
  Sha256 hash;
  int64_t received = 0;
  absl::Status write_error;
  while (reader->Read(&chunk)) {
    if (!have_header) {
      header = chunk.header();
      have_header = true;
    }
    const std::string& data = chunk.data();
    hash.Update(data);
    received += static_cast<int64_t>(data.size());
    size_t written = 0;
    while (written < data.size() && write_error.ok()) {
      ssize_t n = write(fd, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        write_error = absl::ResourceExhaustedError(
            absl::StrCat("cannot write ", temp, ": ", std::strerror(errno)));
        break;
      }
      written += static_cast<size_t>(n);
    }
    if (!write_error.ok()) {
      call_context->TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (!write_error.ok()) {
    cleanup();
    return write_error;
  }
  if (!status.ok()) {
    cleanup();
    return connection->Convert(
        status, absl::StrCat("sweepq artifacts ls ", run_id), deadline);
  }
  std::string digest = hash.FinishHex();
  if (!have_header || received != header.size() || digest != header.sha256()) {
    cleanup();
    return absl::DataLossError(absl::StrCat(
        "the download of ", name, " is corrupt: got ", received,
        " bytes with sha256 ", digest, ", expected ", header.size(),
        " bytes with sha256 ", header.sha256(), " \u2014 try again"));
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    fd = -1;
    cleanup();
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot write ", temp, ": ", std::strerror(errno)));
  }
  fd = -1;
  if (rename(temp.c_str(), path.c_str()) != 0) {
    cleanup();
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot move the download to ", path, ": ", std::strerror(errno)));
  }
  keep = true;
  cleanup();
  return header;
}

absl::Status Download(Session& session, Connection* connection, int64_t run_id,
                      const std::string& name, uint32_t attempt,
                      const std::string& path, bool force, double timeout_s) {
  ASSIGN_OR_RETURN(v1::Artifact header,
                   DownloadArtifactTo(connection, run_id, name, attempt, path,
                                      force, timeout_s));
  session.out() << "saved " << name << " of run " << run_id << " (attempt "
                << header.attempt() << ", " << FormatBytes(header.size())
                << ", sha256 " << header.sha256().substr(0, 12)
                << "\u2026 verified) to " << path << "\n";
  return absl::OkStatus();
}

namespace {

absl::Status RunArtifacts(const std::vector<std::string>& args,
                          CliContext& context) {
  ArgParser parser(
      "sweepq artifacts",
      {"sweepq artifacts ls RUN [--format table|json|csv] | sweepq artifacts "
       "get RUN NAME [-o PATH] [--attempt N] [--force]",
       "Lists a run's artifacts (checkpoints, confusion matrices, Grad-CAM "
       "sheets,\nsubmission CSVs), or downloads one. A download goes to a "
       "temporary file, is\nchecked against the SHA-256 and size the "
       "coordinator recorded, and only then\nrenamed into place.",
       "  sweepq artifacts ls 42\n"
       "  sweepq artifacts get 42 best.ckpt -o checkpoints/\n"});
  CommonOptions common;
  std::string format_text = "table", output;
  int64_t attempt = 0;
  bool force = false;
  parser.AddString("format", &format_text, "FORMAT", "ls: table, json or csv");
  parser.AddString("output", &output, "PATH",
                   "get: file or directory to save to (default: ./NAME)", "-o");
  parser.AddInt("attempt", &attempt, "N",
                "get: from attempt N (default: the newest that has it)", 0,
                UINT32_MAX);
  parser.AddBool("force", &force, "get: replace PATH if it exists");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 1, 3, context, &help));
  if (help) return absl::OkStatus();
  const std::string& verb = positionals[0];
  if (verb != "ls" && verb != "get") {
    return parser.Error(absl::StrCat("unknown artifacts command '", verb,
                                     "' (expected ls or get)"));
  }
  if (verb == "ls" && positionals.size() != 2) {
    return parser.Error("usage: sweepq artifacts ls RUN");
  }
  if (verb == "get" && positionals.size() != 3) {
    return parser.Error("usage: sweepq artifacts get RUN NAME [-o PATH]");
  }
  ASSIGN_OR_RETURN(int64_t run_id,
                   ParseId(parser, "RUN", positionals[1], "sweepq runs"));
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  if (verb == "get") {
    return Download(session, connection, run_id, positionals[2],
                    static_cast<uint32_t>(attempt),
                    DownloadPath(output, positionals[2]), force,
                    common.timeout_s);
  }
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, true));
  v1::ListArtifactsRequest request;
  request.set_run_id(run_id);
  ASSIGN_OR_RETURN(
      v1::ListArtifactsResponse response,
      connection->Call(&v1::TeamService::StubInterface::ListArtifacts, request,
                       "sweepq runs"));
  std::vector<v1::Artifact> artifacts(response.artifacts().begin(),
                                      response.artifacts().end());
  if (format == OutputFormat::kJson) {
    PrintJson(session, ArtifactsJson(artifacts));
    return absl::OkStatus();
  }
  if (artifacts.empty() && format == OutputFormat::kTable) {
    session.out() << "run " << run_id << " has no artifacts yet\n";
    return absl::OkStatus();
  }
  PrintTable(session, ArtifactsTable(artifacts, session.NowMs()), format);
  return absl::OkStatus();
}

// ---- example-sweep ----

absl::Status RunExampleSweep(const std::vector<std::string>& args,
                             CliContext& context) {
  ArgParser parser("sweepq example-sweep",
                   {"sweepq example-sweep",
                    "Prints a commented example sweep file to start from.",
                    "  sweepq example-sweep > my_sweep.yaml\n"
                    "  sweepq submit my_sweep.yaml --dry-run\n"});
  CommonOptions common;
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 0, context, &help));
  if (help) return absl::OkStatus();
  *context.out << kExampleSweep;
  return absl::OkStatus();
}

// ---- dispatch ----

using CommandFn = absl::Status (*)(const std::vector<std::string>&,
                                   CliContext&);

struct CommandEntry {
  const char* name;
  const char* summary;
  CommandFn run;
};

constexpr CommandEntry kCommands[] = {
    {"login", "save the coordinator address and your team's token", RunLogin},
    {"config", "show the configuration in effect and where it comes from",
     RunConfigCommand},
    {"submit", "submit a sweep file (--dry-run: preview its runs)", RunSubmit},
    {"runs", "list runs", RunRuns},
    {"show", "one run in detail", RunShow},
    {"watch", "follow a run or a sweep live until it ends", RunWatch},
    {"board", "the team leaderboard", RunBoard},
    {"cancel", "cancel a run or a whole sweep", RunCancel},
    {"retry", "queue a failed run again (or every failed run of a sweep)",
     RunRetry},
    {"workers", "list workers; drain or clear one", RunWorkers},
    {"artifacts", "list or download a run's artifacts", RunArtifacts},
    {"plot", "draw learning curves or a confusion matrix as a PNG", RunPlot},
    {"predict", "queue a prediction job (one run or an ensemble)", RunPredict},
    {"submission", "download a prediction job's submission.csv", RunSubmission},
    {"promote", "retrain a run's config on all data (--full)", RunPromote},
    {"gradcam", "Grad-CAM heat maps of a run's model as a PNG", RunGradCam},
    {"example-sweep", "print a commented example sweep", RunExampleSweep},
};

std::string MainHelp() {
  std::string out =
      "sweepq: submit hyper-parameter sweeps to a sweepq coordinator, follow "
      "runs live\nand read the team leaderboard.\n\n"
      "Usage: sweepq COMMAND [ARGS] [--help]\n\nCommands:\n";
  for (const auto& c : kCommands) {
    std::string name = c.name;
    absl::StrAppend(&out, "  ", name, std::string(16 - name.size(), ' '),
                    c.summary, "\n");
  }
  absl::StrAppend(
      &out,
      "\nEvery command takes --help (with an example), --timeout SECONDS and "
      "--no-color.\nListings take --format json (field names: docs/cli.md).\n"
      "\nExit codes: 0 ok; 1 failed (watch: the run did not succeed); 2 usage "
      "or invalid\ninput; 3 not found; 4 not logged in or token rejected; 5 "
      "coordinator unreachable.\n\nExample:\n"
      "  sweepq login --server gpu-coord:50051 --team vision --token "
      "\"$TOKEN\"\n"
      "  sweepq submit examples/sweeps/radam_cosine_vs_adamw.yaml\n"
      "  sweepq board\n");
  return out;
}

}  // namespace

void FillContextDefaults(CliContext& context) {
  if (!context.now_ms) {
    context.now_ms = [] { return absl::ToUnixMillis(absl::Now()); };
  }
  if (!context.connect) context.connect = Connection::Open;
  if (!context.sleep)
    context.sleep = [](absl::Duration d) { absl::SleepFor(d); };
}

int RunCli(const std::vector<std::string>& args, CliContext& context) {
  FillContextDefaults(context);
  absl::Status status;
  if (args.empty() || args[0] == "--help" || args[0] == "-h" ||
      args[0] == "help") {
    if (args.size() >= 2 && args[0] == "help") {
      return RunCli({args[1], "--help"}, context);
    }
    *context.out << MainHelp();
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version" || args[0] == "version") {
    *context.out << "sweepq 0.1.0\n";
    return kExitOk;
  }
  const CommandEntry* command = nullptr;
  for (const auto& c : kCommands) {
    if (args[0] == c.name) command = &c;
  }
  if (command == nullptr) {
    std::string message = absl::StrCat("unknown command '", args[0], "'");
    const CommandEntry* closest = nullptr;
    size_t best = 3;
    for (const auto& c : kCommands) {
      size_t d = EditDistance(args[0], c.name);
      if (d < best) {
        best = d;
        closest = &c;
      }
    }
    if (closest != nullptr) {
      absl::StrAppend(&message, "; did you mean ", closest->name, "?");
    }
    absl::StrAppend(&message, " (see sweepq --help)");
    status = UsageError(message);
  } else {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    status = command->run(rest, context);
  }
  if (status.ok()) return kExitOk;
  context.out->flush();
  bool color = context.stderr_is_tty;
  auto no_color = context.env->Get("NO_COLOR");
  if (no_color.has_value() && !no_color->empty()) color = false;
  // Usage errors already start with the command ("sweepq board: ...").
  absl::string_view message = status.message();
  if (absl::StartsWith(message, "sweepq ")) message.remove_prefix(7);
  *context.err << Stylize("sweepq", Style::kRed, color)
               << (absl::StartsWith(status.message(), "sweepq ") ? " " : ": ")
               << message << "\n";
  return ExitCodeOf(status);
}

}  // namespace sweepq::client

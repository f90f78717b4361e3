// `sweepq submit`: validates a sweep file locally (so errors name the file),
// previews it (--dry-run) or submits it under an idempotency key.
#include "client/submit.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/errors.h"
#include "client/format.h"
#include "client/json.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "common/sweep.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

namespace {

// Expansion cap for the local check; the coordinator applies its own.
constexpr uint64_t kLocalMaxRuns = 1'000'000;

absl::StatusOr<std::string> ReadSweepFile(const std::string& path,
                                          CliContext& context) {
  std::stringstream text;
  if (path == "-") {
    if (context.in == nullptr) return UsageError("no stdin to read from");
    text << context.in->rdbuf();
    return text.str();
  }
  std::ifstream in(path);
  if (!in) {
    return WithExitCode(
        absl::NotFoundError(absl::StrCat("cannot read sweep file ", path, ": ",
                                         std::strerror(errno))),
        kExitNotFound);
  }
  text << in.rdbuf();
  return text.str();
}

// "21-24" for consecutive ids, else "21, 23, 30" (at most 8, then "…").
std::string IdRange(const google::protobuf::RepeatedField<int64_t>& ids) {
  if (ids.empty()) return "";
  bool consecutive = true;
  for (int i = 1; i < ids.size(); ++i) {
    if (ids[i] != ids[i - 1] + 1) consecutive = false;
  }
  if (ids.size() == 1) return absl::StrCat(ids[0]);
  if (consecutive) return absl::StrCat(ids[0], "-", ids[ids.size() - 1]);
  std::vector<std::string> parts;
  for (int i = 0; i < ids.size() && i < 8; ++i) {
    parts.push_back(absl::StrCat(ids[i]));
  }
  if (ids.size() > 8) parts.push_back("\u2026");
  return absl::StrJoin(parts, ", ");
}

}  // namespace

Table DryRunTable(const ExpandedSweep& sweep) {
  std::vector<const std::map<std::string, std::string>*> params;
  for (const auto& run : sweep.runs) params.push_back(&run.params);
  std::vector<std::string> varying = VaryingParams(params);
  std::vector<std::string> titles = ParamTitles(varying);
  std::vector<Column> columns;
  Column index;
  index.header = "#";
  index.align = Align::kRight;
  index.shrinkable = false;
  columns.push_back(index);
  for (const auto& title : titles) {
    Column c;
    c.header = title;
    c.min_width = 5;
    c.droppable = true;
    columns.push_back(c);
  }
  Table table(std::move(columns));
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    std::vector<Cell> row = {Cell(absl::StrCat(i))};
    for (const auto& path : varying) {
      auto it = sweep.runs[i].params.find(path);
      row.push_back(it == sweep.runs[i].params.end()
                        ? Cell("-")
                        : Cell(JsonDisplay(it->second)));
    }
    table.AddRow(std::move(row));
  }
  return table;
}

std::string DryRunCaption(const ExpandedSweep& sweep,
                          absl::string_view source) {
  return absl::StrCat(
      source, ": sweep ", sweep.name.empty() ? "(unnamed)" : sweep.name, ", ",
      sweep.runs.size(), sweep.runs.size() == 1 ? " run" : " runs", " (",
      sweep.method, "; ranked by ", sweep.metric, ", ", GoalName(sweep.goal),
      "; up to ", sweep.max_attempts, " attempts each)");
}

JsonValue DryRunJson(const ExpandedSweep& sweep) {
  JsonValue runs = JsonValue::Array();
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    JsonValue params = JsonValue::Object();
    for (const auto& [path, text] : sweep.runs[i].params) {
      absl::StatusOr<JsonValue> value = JsonValue::Parse(text);
      params.Set(path,
                 value.ok() ? *std::move(value) : JsonValue::String(text));
    }
    JsonValue run = JsonValue::Object();
    run.Set("index", JsonValue::Int(static_cast<int64_t>(i)))
        .Set("params", std::move(params))
        .Set("config", ConfigJson(sweep.runs[i].config));
    runs.Push(std::move(run));
  }
  JsonValue out = JsonValue::Object();
  out.Set("name", JsonValue::String(sweep.name))
      .Set("method", JsonValue::String(sweep.method))
      .Set("metric", JsonValue::String(sweep.metric))
      .Set("goal", JsonValue::String(GoalName(sweep.goal)))
      .Set("max_attempts", JsonValue::Int(sweep.max_attempts))
      .Set("run_count", JsonValue::Int(static_cast<int64_t>(sweep.runs.size())))
      .Set("runs", std::move(runs));
  return out;
}

std::string IdempotencyKey(absl::string_view spec_yaml,
                           absl::string_view nonce) {
  return absl::StrCat("cli:", Sha256Hex(spec_yaml).substr(0, 16), ":", nonce);
}

absl::Status RunSubmit(const std::vector<std::string>& args,
                       CliContext& context) {
  ArgParser parser(
      "sweepq submit",
      {"sweepq submit SWEEP.yaml [--priority N] [--dry-run] [--name NAME] "
       "[--idempotency-key K] [--format table|json]",
       "Checks the sweep file, then submits it and prints the sweep id and "
       "run count.\n--dry-run prints the runs it expands into (only the "
       "parameters that vary) and\nsubmits nothing. A validation error names "
       "the file, the key path and what was\nexpected. Every submit carries "
       "an idempotency key (a hash of the file plus a\nrandom nonce, or "
       "--idempotency-key K), so a call retried after a network error\n"
       "never creates the sweep twice; resubmitting with the same K returns "
       "the first\nsweep. SWEEP.yaml may be - for stdin. See sweepq "
       "example-sweep for the format.",
       "  sweepq submit examples/sweeps/radam_cosine_vs_adamw.yaml --dry-run\n"
       "  sweepq submit examples/sweeps/radam_cosine_vs_adamw.yaml --priority 5\n"});
  CommonOptions common;
  int64_t priority = 0;
  bool dry_run = false;
  std::string name, key, format_text = "table";
  parser.AddInt("priority", &priority, "N",
                "higher runs are leased first (default 0)", -1000000, 1000000);
  parser.AddBool("dry-run", &dry_run, "print the runs; submit nothing");
  parser.AddString("name", &name, "NAME",
                   "name shown in listings (default: the file's name:)");
  parser.AddString("idempotency-key", &key, "K",
                   "submitting twice with K creates one sweep");
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  RETURN_IF_ERROR(parser.Parse(args, &positionals, 1, 1));
  if (parser.help_requested()) {
    *context.out << parser.HelpText();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  const std::string& path = positionals[0];
  ASSIGN_OR_RETURN(std::string text, ReadSweepFile(path, context));
  SweepLimits limits;
  limits.max_runs = kLocalMaxRuns;
  absl::StatusOr<ExpandedSweep> sweep =
      ExpandSweepYaml(text, path == "-" ? "stdin" : path, limits);
  if (!sweep.ok()) {
    return WithExitCode(absl::InvalidArgumentError(sweep.status().message()),
                        kExitUsage);
  }
  Session session(context, common);
  if (dry_run) {
    if (format == OutputFormat::kJson) {
      session.out() << DryRunJson(*sweep).Dump(2) << "\n";
      return absl::OkStatus();
    }
    session.out() << DryRunCaption(*sweep, path) << "\n";
    Table table = DryRunTable(*sweep);
    if (table.columns().size() == 1) {
      session.out() << "no parameter varies between the runs\n";
    } else {
      session.out() << table.Render(session.table_options());
    }
    session.out() << "dry run: nothing submitted\n";
    return absl::OkStatus();
  }

  v1::SubmitSweepRequest request;
  request.set_spec_yaml(text);
  request.set_priority(static_cast<int32_t>(priority));
  request.set_name(name);
  request.set_idempotency_key(
      key.empty() ? IdempotencyKey(text, RandomToken(16)) : key);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  // Safe to resend: the idempotency key makes a second delivery a no-op.
  ASSIGN_OR_RETURN(
      v1::SubmitSweepResponse response,
      connection->Call(&v1::TeamService::StubInterface::SubmitSweep, request,
                       "", Retry::kIdempotent));
  std::string shown_name = !name.empty() ? name : sweep->name;
  if (format == OutputFormat::kJson) {
    JsonValue ids = JsonValue::Array();
    for (int64_t id : response.run_ids()) ids.Push(JsonValue::Int(id));
    JsonValue out = JsonValue::Object();
    out.Set("sweep_id", JsonValue::Int(response.sweep_id()))
        .Set("name", JsonValue::String(shown_name))
        .Set("run_count", JsonValue::Int(response.run_ids_size()))
        .Set("run_ids", std::move(ids))
        .Set("existing", JsonValue::Bool(response.existing()))
        .Set("idempotency_key", JsonValue::String(request.idempotency_key()));
    session.out() << out.Dump(2) << "\n";
    return absl::OkStatus();
  }
  const int n = response.run_ids_size();
  if (response.existing()) {
    session.out() << "sweep " << response.sweep_id()
                  << " was already submitted with this idempotency key: "
                     "nothing new created ("
                  << n << (n == 1 ? " run" : " runs") << ")\n";
  } else {
    session.out() << "submitted sweep " << response.sweep_id()
                  << (shown_name.empty() ? ""
                                         : absl::StrCat(" (", shown_name, ")"))
                  << ": " << n << (n == 1 ? " run" : " runs") << ", ids "
                  << IdRange(response.run_ids()) << "\n";
  }
  session.out() << "  follow it: sweepq watch --sweep " << response.sweep_id()
                << "\n  rank it:   sweepq board --sweep " << response.sweep_id()
                << "\n";
  return absl::OkStatus();
}

}  // namespace sweepq::client

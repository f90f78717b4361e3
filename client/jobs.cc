// `sweepq predict`, `submission`, `promote` and `gradcam`: they check the
// runs they are given (so that mistakes are explained before anything is
// queued), build a one-run sweep file and submit it like `sweepq submit`.
//
// Idempotency: each invocation submits under a fresh key (a hash of the
// spec plus a random nonce), so a call resent after UNAVAILABLE never
// queues twice, but running the command again queues a new job. A key
// derived from the job alone would hand back the first job forever,
// failed or cancelled ones included, where people re-run a command to get
// another try; `sweepq submission RUN` already reuses the newest finished
// predict job instead of queueing one.
#include "client/jobs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/errors.h"
#include "client/format.h"
#include "client/submit.h"
#include "client/views.h"
#include "client/watch.h"
#include "common/crypto.h"
#include "common/mask_classes.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "common/sweep.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

namespace {

// How long --wait and gradcam keep reconnecting without the coordinator.
constexpr absl::Duration kGiveUpAfter = absl::Seconds(300);
constexpr size_t kLabelSources = 6;

JsonValue FieldJson(const Message& message, const FieldDescriptor* field,
                    int index) {
  const Reflection* r = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return JsonValue::Int(repeated
                                ? r->GetRepeatedInt32(message, field, index)
                                : r->GetInt32(message, field));
    case FieldDescriptor::CPPTYPE_INT64:
      return JsonValue::Int(repeated
                                ? r->GetRepeatedInt64(message, field, index)
                                : r->GetInt64(message, field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return JsonValue::Int(repeated
                                ? r->GetRepeatedUInt32(message, field, index)
                                : r->GetUInt32(message, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return JsonValue::NumberLiteral(
          absl::StrCat(repeated ? r->GetRepeatedUInt64(message, field, index)
                                : r->GetUInt64(message, field)));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return JsonValue::Number(repeated
                                   ? r->GetRepeatedDouble(message, field, index)
                                   : r->GetDouble(message, field));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return JsonValue::Number(repeated
                                   ? r->GetRepeatedFloat(message, field, index)
                                   : r->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return JsonValue::Bool(repeated
                                 ? r->GetRepeatedBool(message, field, index)
                                 : r->GetBool(message, field));
    case FieldDescriptor::CPPTYPE_STRING:
      return JsonValue::String(repeated
                                   ? r->GetRepeatedString(message, field, index)
                                   : r->GetString(message, field));
    case FieldDescriptor::CPPTYPE_ENUM:
      return JsonValue::String((repeated
                                    ? r->GetRepeatedEnum(message, field, index)
                                    : r->GetEnum(message, field))
                                   ->name());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageJson(repeated ? r->GetRepeatedMessage(message, field, index)
                                  : r->GetMessage(message, field));
  }
  return JsonValue::Null();
}

const JsonValue* FindPath(const JsonValue& root, absl::string_view path) {
  const JsonValue* at = &root;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    at = at->Find(part);
    if (at == nullptr) return nullptr;
  }
  return at;
}

std::string JoinIds(const std::vector<int64_t>& ids) {
  return absl::StrJoin(ids, ", ");
}

JsonValue IdsJson(const std::vector<int64_t>& ids) {
  JsonValue out = JsonValue::Array();
  for (int64_t id : ids) out.Push(JsonValue::Int(id));
  return out;
}

absl::StatusOr<v1::Run> FetchRun(Connection* connection, int64_t run_id) {
  v1::GetRunRequest request;
  request.set_run_id(run_id);
  return connection->Call(&v1::TeamService::StubInterface::GetRun, request,
                          "sweepq runs");
}

// A job reads the best checkpoint of a finished training run.
absl::Status CheckSource(const v1::Run& run, absl::string_view command) {
  const int64_t id = run.run_id();
  if (run.config().has_job()) {
    return UsageError(
        absl::StrCat("run ", id, " is a ", run.config().job().kind(),
                     " job, not a training run; sweepq ", command,
                     " reads a training run's model (this job's source: ",
                     RunsPhrase(SourcesOf(run.config().job())), ")"));
  }
  if (run.state() == v1::RUN_STATE_SUCCEEDED) return absl::OkStatus();
  if (!IsFinalState(run.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", id, " is ", StateName(run.state()), "; sweepq ", command,
        " needs a SUCCEEDED run (it reads the run's best.ckpt) \u2014 wait "
        "for it: sweepq watch ",
        id));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "run ", id, " ", StateName(run.state()),
      run.error().empty() ? "" : absl::StrCat(" (", run.error(), ")"),
      "; sweepq ", command,
      " needs a SUCCEEDED run \u2014 pick another from sweepq board"));
}

// Every run of an ensemble was trained on the same data set.
absl::Status CheckOneDataset(const std::vector<v1::Run>& runs, bool from_top) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> groups;
  for (const v1::Run& run : runs) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
      return g.first == run.dataset();
    });
    if (it == groups.end()) {
      groups.push_back({run.dataset(), {run.run_id()}});
    } else {
      it->second.push_back(run.run_id());
    }
  }
  if (groups.size() <= 1) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const auto& [dataset, ids] : groups) {
    parts.push_back(absl::StrCat(dataset, " (", RunsPhrase(ids), ")"));
  }
  return UsageError(absl::StrCat(
      "the runs were trained on different data sets: ",
      absl::StrJoin(parts, ", "),
      "; an ensemble's models must share one data set (data.dataset)",
      from_top ? " \u2014 pass --sweep S to rank one sweep's runs"
               : " \u2014 leave out the others"));
}

// The first `k` SUCCEEDED runs of a leaderboard (the team's by val_f1, or
// sweep `sweep_id`'s by its metric); runs still going are skipped with a
// note on stderr. *scope says where they came from.
absl::StatusOr<std::vector<int64_t>> TopRuns(Session& session,
                                             Connection* connection, int64_t k,
                                             int64_t sweep_id,
                                             std::string* scope) {
  v1::LeaderboardRequest request;
  request.set_sweep_id(sweep_id);
  request.set_metric(sweep_id > 0 ? "" : "val_f1");
  request.set_top(1000);
  ASSIGN_OR_RETURN(
      v1::LeaderboardResponse board,
      connection->Call(&v1::TeamService::StubInterface::Leaderboard, request,
                       "sweepq runs for the sweeps"));
  std::string metric = sweep_id > 0 ? "its metric" : "val_f1";
  if (sweep_id > 0 && board.entries_size() > 0) {
    metric = board.entries(0).run().metric();
  }
  const std::string where = sweep_id > 0
                                ? absl::StrCat("sweep ", sweep_id, "'s board")
                                : std::string("the team board");
  std::vector<int64_t> ids;
  std::vector<std::string> skipped;
  for (const auto& entry : board.entries()) {
    if (static_cast<int64_t>(ids.size()) == k) break;
    const v1::Run& run = entry.run();
    if (run.state() != v1::RUN_STATE_SUCCEEDED) {
      skipped.push_back(absl::StrCat(run.run_id(), " (rank ", entry.rank(),
                                     ", ", StateName(run.state()), ")"));
      continue;
    }
    ids.push_back(run.run_id());
  }
  if (!skipped.empty()) {
    session.err() << "sweepq: note: skipped "
                  << (skipped.size() == 1 ? "run " : "runs ")
                  << absl::StrJoin(skipped, ", ") << " of " << where
                  << ": not SUCCEEDED\n";
  }
  const std::string board_command = absl::StrCat(
      "sweepq board", sweep_id > 0 ? absl::StrCat(" --sweep ", sweep_id) : "");
  if (ids.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " (", metric,
                     ") has no SUCCEEDED run yet — wait for runs to finish (",
                     board_command, ")"));
  }
  if (static_cast<int64_t>(ids.size()) < k) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " (", metric, ") has only ", ids.size(),
                     " SUCCEEDED ", ids.size() == 1 ? "run" : "runs", " (",
                     JoinIds(ids), "); ask for --top ", ids.size(),
                     " or wait for more to finish (", board_command, ")"));
  }
  *scope = absl::StrCat("the top ", k, " of ", where, " by ", metric);
  return ids;
}

// Submits a one-run sweep file (checked here first with the coordinator's
// own expansion, so a mistake names the field) and returns its response.
absl::StatusOr<v1::SubmitSweepResponse> QueueOneRun(Connection* connection,
                                                    const std::string& yaml,
                                                    int64_t priority) {
  absl::StatusOr<ExpandedSweep> expanded = ExpandSweepYaml(yaml, "the job");
  if (!expanded.ok()) {
    return UsageError(expanded.status().message());
  }
  v1::SubmitSweepRequest request;
  request.set_spec_yaml(yaml);
  request.set_priority(static_cast<int32_t>(priority));
  request.set_idempotency_key(IdempotencyKey(yaml, RandomToken(16)));
  // Safe to resend: the key makes a second delivery return the first.
  ASSIGN_OR_RETURN(
      v1::SubmitSweepResponse response,
      connection->Call(&v1::TeamService::StubInterface::SubmitSweep, request,
                       "sweepq runs", Retry::kIdempotent));
  if (response.run_ids_size() != 1) {
    return absl::InternalError(absl::StrCat(
        "the coordinator queued ", response.run_ids_size(),
        " runs for a one-run sweep (sweep ", response.sweep_id(), ")"));
  }
  return response;
}

// Follows a queued job or run on stderr (stdout stays for its result).
absl::Status WaitFor(Session& session, int64_t run_id) {
  return FollowRun(session, run_id, session.err(), session.err_color(),
                   /*live=*/false, kGiveUpAfter);
}

std::string TtaText(const v1::TtaConfig& tta) {
  if (tta.transforms_size() == 0) return "each run's own TTA";
  std::string text = absl::StrCat("TTA ", absl::StrJoin(tta.transforms(), "+"));
  if (tta.scales_size() > 0) {
    std::vector<std::string> scales;
    for (double s : tta.scales()) scales.push_back(FormatMetricRaw(s));
    absl::StrAppend(&text, " (scales ", absl::StrJoin(scales, ", "), ")");
  }
  return text;
}

JsonValue TtaJson(const v1::TtaConfig& tta) {
  if (tta.transforms_size() == 0) return JsonValue::Null();
  return MessageJson(tta);
}

// Refuses to replace `path` without --force and checks that its directory
// exists, before anything is queued.
absl::Status CheckOutputPath(const std::string& path, bool force) {
  struct stat st;
  if (!force && stat(path.c_str(), &st) == 0) {
    return WithExitCode(
        absl::AlreadyExistsError(absl::StrCat(
            path, " exists \u2014 pass --force to replace it, or -o PATH")),
        kExitFailed);
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "."
                    : slash == 0               ? "/"
                                               : path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(dir.c_str(), W_OK) != 0) {
    return WithExitCode(absl::FailedPreconditionError(absl::StrCat(
                            "cannot write ", path, ": ", dir,
                            stat(dir.c_str(), &st) != 0 ? " does not exist"
                            : !S_ISDIR(st.st_mode)      ? " is not a directory"
                                                        : " is not writable")),
                        kExitFailed);
  }
  return absl::OkStatus();
}

// Rows of a CSV file after its header line.
absl::StatusOr<int64_t> CountCsvRows(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  int64_t lines = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line != "\r") ++lines;
  }
  return std::max<int64_t>(0, lines - 1);
}

// The newest SUCCEEDED predict job whose only source is `run`.
absl::StatusOr<int64_t> FindPredictJob(Connection* connection,
                                       const v1::Run& run) {
  const int64_t source = run.run_id();
  int64_t unfinished = 0;
  v1::RunState unfinished_state = v1::RUN_STATE_UNSPECIFIED;
  v1::ListRunsRequest request;
  request.set_limit(1000);
  // Newest first; a job's id is above its sources' (it was queued after
  // they finished), so the listing stops at `source`.
  while (true) {
    ASSIGN_OR_RETURN(v1::ListRunsResponse page,
                     connection->Call(&v1::TeamService::StubInterface::ListRuns,
                                      request, "sweepq runs"));
    for (const v1::Run& r : page.runs()) {
      if (r.run_id() <= source) break;
      if (!IsPredictJobOf(r, source)) continue;
      if (r.state() == v1::RUN_STATE_SUCCEEDED) {
        // Listings carry params, not configs: confirm with the config.
        ASSIGN_OR_RETURN(v1::Run job, FetchRun(connection, r.run_id()));
        const v1::JobConfig& c = job.config().job();
        if (c.kind() == "predict" && c.split() != "val" &&
            c.source_runs_size() == 1 && c.source_runs(0) == source) {
          return job.run_id();
        }
      } else if (unfinished == 0 && !IsFinalState(r.state())) {
        unfinished = r.run_id();
        unfinished_state = r.state();
      }
    }
    if (page.runs_size() == 0 ||
        page.runs(page.runs_size() - 1).run_id() <= source ||
        page.runs_size() < static_cast<int>(request.limit())) {
      break;
    }
    request.set_before_run_id(page.runs(page.runs_size() - 1).run_id());
  }
  if (unfinished > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", source, "'s predict job ", unfinished, " is ",
        StateName(unfinished_state), " \u2014 wait for it: sweepq watch ",
        unfinished, ", then run this again"));
  }
  return WithExitCode(
      absl::NotFoundError(absl::StrCat(
          "run ", source,
          " has no finished predict job of its own (one whose only source "
          "is run ",
          source,
          "; an ensemble's submission is fetched by the job's id) \u2014 "
          "queue one and wait for it:\n  sweepq predict ",
          source, " --wait")),
      kExitNotFound);
}

}  // namespace

// ---- Pure pieces (jobs.h) ----

std::string JobLabel(absl::string_view kind,
                     const std::vector<int64_t>& sources) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < sources.size() && i < kLabelSources; ++i) {
    parts.push_back(absl::StrCat(sources[i]));
  }
  if (sources.size() > kLabelSources) {
    parts.push_back(absl::StrCat("+", sources.size() - kLabelSources));
  }
  return absl::StrCat(kind, "(", absl::StrJoin(parts, ","), ")");
}

absl::StatusOr<std::vector<int64_t>> ParseRunList(absl::string_view text) {
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id <= 0) {
      return UsageError(absl::StrCat(
          "--runs must be run ids separated by commas (as listed by sweepq "
          "runs), got '",
          part, "' in '", text, "'"));
    }
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      return UsageError(absl::StrCat("--runs lists run ", id, " twice"));
    }
    ids.push_back(id);
  }
  if (static_cast<int>(ids.size()) > kMaxJobSourceRuns) {
    return UsageError(absl::StrCat("--runs: at most ", kMaxJobSourceRuns,
                                   " runs in an ensemble, got ", ids.size()));
  }
  return ids;
}

absl::StatusOr<v1::TtaConfig> ParseTtaFlags(absl::string_view tta,
                                            absl::string_view scales) {
  v1::TtaConfig out;
  bool scale = false;
  if (!tta.empty()) {
    for (absl::string_view word : absl::StrSplit(tta, ',')) {
      word = absl::StripAsciiWhitespace(word);
      if (word != "hflip" && word != "multicrop" && word != "scale") {
        return UsageError(absl::StrCat(
            "--tta takes hflip, multicrop and scale separated by commas, got "
            "'",
            word, "'"));
      }
      for (const std::string& seen : out.transforms()) {
        if (seen == word) {
          return UsageError(absl::StrCat("--tta lists ", word, " twice"));
        }
      }
      if (word == "scale") scale = true;
      out.add_transforms(std::string(word));
    }
  }
  if (!scales.empty()) {
    if (!scale) {
      return UsageError(
          "--scales goes with --tta scale (e.g. --tta hflip,scale --scales "
          "0.9,1.1)");
    }
    for (absl::string_view part : absl::StrSplit(scales, ',')) {
      part = absl::StripAsciiWhitespace(part);
      double value = 0;
      if (!absl::SimpleAtod(part, &value) || !(value > 0) || value > 1e6) {
        return UsageError(absl::StrCat(
            "--scales must be numbers > 0 separated by commas, got '", part,
            "'"));
      }
      out.add_scales(value);
    }
  }
  return out;
}

RunClasses ClassesOf(const v1::RunConfig& config) {
  RunClasses out;
  const std::string& layout = config.data().layout();
  if (layout.empty() || layout == "mask") {
    std::vector<int> bounds(config.data().age_bounds().begin(),
                            config.data().age_bounds().end());
    if (bounds.empty()) bounds = {30, 60};
    out.names = ::sweepq::MaskTaskClassNames(bounds);
    out.count = static_cast<uint32_t>(out.names.size());
    if (config.model().num_classes() != 0 &&
        config.model().num_classes() != out.count) {
      out.names.clear();
      out.count = config.model().num_classes();
    }
    return out;
  }
  out.count = config.model().num_classes();
  return out;
}

absl::StatusOr<uint32_t> ParseClass(absl::string_view text,
                                    const RunClasses& classes) {
  std::string listing;
  for (size_t i = 0; i < classes.names.size(); ++i) {
    absl::StrAppend(&listing, i == 0 ? "" : ", ", i, " ", classes.names[i]);
  }
  uint32_t index = 0;
  if (absl::SimpleAtoi(text, &index)) {
    if (classes.count > 0 && index >= classes.count) {
      return UsageError(
          absl::StrCat("--class ", text, " is out of range: the run has ",
                       classes.count, " classes (0-", classes.count - 1, ")"));
    }
    return index;
  }
  if (classes.names.empty()) {
    return UsageError(absl::StrCat(
        "--class '", text,
        "': the run's classes have no names (not the mask layout); give a "
        "class number",
        classes.count > 0 ? absl::StrCat(" (0-", classes.count - 1, ")")
                          : std::string()));
  }
  const std::string wanted = absl::AsciiStrToLower(text);
  size_t best = 0;
  size_t best_distance = SIZE_MAX;
  for (size_t i = 0; i < classes.names.size(); ++i) {
    const std::string name = absl::AsciiStrToLower(classes.names[i]);
    if (name == wanted) return static_cast<uint32_t>(i);
    size_t d = EditDistance(wanted, name);
    if (d < best_distance) {
      best_distance = d;
      best = i;
    }
  }
  return UsageError(absl::StrCat(
      "--class '", text, "' is not a class of the run; did you mean '",
      classes.names[best], "' (", best, ")? The classes: ", listing));
}

absl::StatusOr<v1::RunConfig> FullDataConfig(const v1::Run& run,
                                             uint32_t epochs,
                                             absl::string_view name) {
  v1::RunConfig config = run.config();
  if (config.scheduler().name() == "plateau") {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run.run_id(),
        " uses scheduler plateau, which follows a validation metric that "
        "data.split full does not measure; submit a copy of its config "
        "with another scheduler by hand (sweepq show ",
        run.run_id(), " --format json | jq .config)"));
  }
  v1::DataConfig* data = config.mutable_data();
  data->set_split("full");
  data->clear_fold();
  data->clear_folds();
  data->clear_val_ratio();
  config.mutable_train()->set_epochs(epochs);
  config.mutable_early_stopping()->set_patience(0);
  config.set_name(std::string(name));
  return config;
}

JsonValue MessageJson(const Message& message) {
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  JsonValue out = JsonValue::Object();
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) {
      JsonValue items = JsonValue::Array();
      const int n = message.GetReflection()->FieldSize(message, field);
      for (int i = 0; i < n; ++i) items.Push(FieldJson(message, field, i));
      out.Set(field->name(), std::move(items));
    } else {
      out.Set(field->name(), FieldJson(message, field, -1));
    }
  }
  return out;
}

std::string OneRunSweepYaml(const v1::RunConfig& config, absl::string_view name,
                            absl::string_view metric, v1::Goal goal,
                            const std::vector<std::string>& param_paths) {
  // JSON is YAML: the config goes in as one flow mapping.
  JsonValue json = MessageJson(config);
  std::string yaml = absl::StrCat(
      "name: ", JsonQuote(name),
      "\nmethod: grid\nmetric: {name: ", JsonQuote(metric),
      ", goal: ", GoalName(goal), "}\nconfig: ", json.Dump(0), "\n");
  std::string params;
  for (const std::string& path : param_paths) {
    const JsonValue* value = FindPath(json, path);
    if (value == nullptr) continue;
    absl::StrAppend(&params, "  ", path, ": {value: ", value->Dump(0), "}\n");
  }
  if (!params.empty()) absl::StrAppend(&yaml, "parameters:\n", params);
  return yaml;
}

bool IsPredictJobOf(const v1::Run& run, int64_t source_run_id) {
  auto kind = run.params().find(kJobKindParam);
  auto sources = run.params().find(kJobSourcesParam);
  if (kind == run.params().end() || sources == run.params().end()) {
    return false;
  }
  absl::StatusOr<JsonValue> k = JsonValue::Parse(kind->second);
  absl::StatusOr<JsonValue> s = JsonValue::Parse(sources->second);
  if (!k.ok() || !s.ok() || k->string_value() != "predict" || !s->is_array() ||
      s->items().size() != 1) {
    return false;
  }
  int64_t id = 0;
  return absl::SimpleAtoi(s->items()[0].number_text(), &id) &&
         id == source_run_id;
}

// ---- sweepq predict ----

absl::Status RunPredict(const std::vector<std::string>& args,
                        CliContext& context) {
  ArgParser parser(
      "sweepq predict",
      {"sweepq predict RUN | --runs R1,R2,... | --top K [--sweep S] "
       "[--tta hflip,multicrop,scale] [--scales 0.9,1.1] [--split eval|val] "
       "[--name N] [--priority N] [--wait] [--format table|json]",
       "Queues a predict job: a worker holding the run's data set loads the "
       "best\ncheckpoint of RUN (or of every run of --runs, or of the top K "
       "SUCCEEDED runs of\nthe team board by val_f1 or of sweep S's board) "
       "and predicts every image of\neval/info.csv in file order into "
       "submission.csv; several runs are a soft-vote\nensemble (their "
       "probabilities averaged). --split val predicts the first run's\n"
       "validation split instead and reports pred_f1 / pred_acc. --tta "
       "replaces the runs'\nown test-time augmentation. The runs must have "
       "SUCCEEDED, on one data set.\nPrints what was queued and, alone on "
       "the last line, the job's run id. --wait\nfollows the job on stderr "
       "until it ends and exits 1 unless it succeeded.\nRunning the command "
       "again queues another job; sweepq submission RUN fetches\nthe newest "
       "finished one.",
       "  JOB=$(sweepq predict 12 --tta hflip | tail -1)\n"
       "  JOB=$(sweepq predict --top 5 --sweep 3 --wait | tail -1) &&\n"
       "    sweepq submission \"$JOB\" -o ensemble.csv\n"});
  CommonOptions common;
  std::string runs_text, tta_text, scales_text, split, name;
  std::string format_text = "table";
  int64_t top = 0, sweep_id = 0, priority = 0;
  bool wait = false;
  parser.AddString("runs", &runs_text, "R1,R2,...",
                   "soft-vote ensemble of these runs");
  parser.AddInt("top", &top, "K",
                "ensemble of the best K SUCCEEDED runs of the board", 1,
                kMaxJobSourceRuns);
  parser.AddInt("sweep", &sweep_id, "S",
                "with --top: rank sweep S's runs (default: the team's by "
                "val_f1)",
                1, INT64_MAX);
  parser.AddString("tta", &tta_text, "LIST",
                   "test-time augmentation: hflip, multicrop, scale "
                   "(default: each run's own)");
  parser.AddString("scales", &scales_text, "LIST",
                   "with --tta scale: input scales, e.g. 0.9,1.1");
  parser.AddString("split", &split, "SPLIT",
                   "eval (default: eval/info.csv -> submission.csv) or val");
  parser.AddString("name", &name, "N",
                   "label shown in listings (default predict(RUNS))");
  parser.AddInt("priority", &priority, "N",
                "higher is leased first (default 0)", -1000000, 1000000);
  parser.AddBool("wait", &wait,
                 "follow the job until it ends; exit 1 unless it succeeded");
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 0, 1, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  const int selectors = (positionals.empty() ? 0 : 1) +
                        (runs_text.empty() ? 0 : 1) + (top > 0 ? 1 : 0);
  if (selectors != 1) {
    return parser.Error(
        "give one of RUN, --runs R1,R2,... or --top K (which runs' models "
        "to predict with)");
  }
  if (sweep_id > 0 && top == 0) {
    return parser.Error("--sweep S goes with --top K");
  }
  if (!split.empty() && split != "eval" && split != "val") {
    return parser.Error(
        absl::StrCat("--split must be eval or val, not '", split, "'"));
  }
  absl::StatusOr<v1::TtaConfig> tta = ParseTtaFlags(tta_text, scales_text);
  if (!tta.ok()) return parser.Error(tta.status().message());

  std::vector<int64_t> sources;
  if (!positionals.empty()) {
    ASSIGN_OR_RETURN(int64_t id,
                     ParseId(parser, "RUN", positionals[0], "sweepq runs"));
    sources.push_back(id);
  } else if (!runs_text.empty()) {
    absl::StatusOr<std::vector<int64_t>> list = ParseRunList(runs_text);
    if (!list.ok()) return parser.Error(list.status().message());
    sources = *std::move(list);
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  std::string scope;
  if (top > 0) {
    ASSIGN_OR_RETURN(sources,
                     TopRuns(session, connection, top, sweep_id, &scope));
  }
  std::vector<v1::Run> runs;
  for (int64_t id : sources) {
    ASSIGN_OR_RETURN(v1::Run run, FetchRun(connection, id));
    RETURN_IF_ERROR(CheckSource(run, "predict"));
    runs.push_back(std::move(run));
  }
  RETURN_IF_ERROR(CheckOneDataset(runs, top > 0));

  const std::string label = name.empty() ? JobLabel("predict", sources) : name;
  v1::RunConfig config;
  config.mutable_data()->set_dataset(runs[0].dataset());
  config.set_name(label);
  v1::JobConfig* job = config.mutable_job();
  job->set_kind("predict");
  for (int64_t id : sources) job->add_source_runs(id);
  job->set_split(split);
  *job->mutable_tta() = *tta;
  // The job's sweep ranks by its sources' metric, which a job never
  // reports (it reports pred_*): a job has no best value, so no board
  // lists it.
  const std::string yaml = OneRunSweepYaml(
      config, label, runs[0].metric().empty() ? "val_f1" : runs[0].metric(),
      runs[0].goal(), {kJobKindParam, kJobSourcesParam});
  ASSIGN_OR_RETURN(v1::SubmitSweepResponse queued,
                   QueueOneRun(connection, yaml, priority));
  const int64_t job_id = queued.run_ids(0);
  const bool val = split == "val";

  if (format == OutputFormat::kJson) {
    v1::RunState state = v1::RUN_STATE_QUEUED;
    absl::Status outcome;
    if (wait) {
      outcome = WaitFor(session, job_id);
      ASSIGN_OR_RETURN(v1::Run now, FetchRun(connection, job_id));
      state = now.state();
    }
    JsonValue out = JsonValue::Object();
    out.Set("job_id", JsonValue::Int(job_id))
        .Set("sweep_id", JsonValue::Int(queued.sweep_id()))
        .Set("kind", JsonValue::String("predict"))
        .Set("name", JsonValue::String(label))
        .Set("dataset", JsonValue::String(runs[0].dataset()))
        .Set("source_runs", IdsJson(sources))
        .Set("split", JsonValue::String(val ? "val" : "eval"))
        .Set("tta", TtaJson(*tta))
        .Set("state", JsonValue::String(StateName(state)));
    PrintJson(session, out);
    return outcome;
  }
  std::string what =
      sources.size() == 1
          ? absl::StrCat("run ", sources[0])
          : absl::StrCat("soft-vote ensemble of runs ", JoinIds(sources),
                         scope.empty() ? "" : absl::StrCat(" (", scope, ")"));
  session.out() << "queued predict job " << job_id << " (sweep "
                << queued.sweep_id() << "): " << what << " on data set "
                << runs[0].dataset() << ", "
                << (val ? absl::StrCat("validation split of run ", sources[0])
                        : std::string("eval/info.csv -> submission.csv"))
                << ", " << TtaText(*tta) << "\n"
                << "  follow it:   sweepq watch " << job_id << "\n"
                << (val ? absl::StrCat("  its scores:  sweepq show ", job_id)
                        : absl::StrCat("  download it: sweepq submission ",
                                       job_id, " -o submission.csv"))
                << "\n"
                << job_id << "\n";
  session.out().flush();
  if (!wait) return absl::OkStatus();
  return WaitFor(session, job_id);
}

// ---- sweepq submission ----

absl::Status RunSubmission(const std::vector<std::string>& args,
                           CliContext& context) {
  ArgParser parser(
      "sweepq submission",
      {"sweepq submission RUN|JOB [-o PATH] [--force] [--format table|json]",
       "Downloads submission.csv (ImageID,ans: one row per eval/info.csv "
       "row) of a\npredict job. Given a training run, it takes the newest "
       "SUCCEEDED predict job\nwhose only source is that run (queued by "
       "sweepq predict RUN), and says how to\nmake one when there is none. "
       "The download is checked against the SHA-256 the\ncoordinator "
       "recorded; an existing file is replaced only with --force.",
       "  sweepq submission 12 -o submission.csv\n"
       "  sweepq submission \"$JOB\" -o ensemble.csv --force\n"});
  CommonOptions common;
  std::string output, format_text = "table";
  bool force = false;
  parser.AddString("output", &output, "PATH",
                   "file or directory to save to (default ./submission.csv)",
                   "-o");
  parser.AddBool("force", &force, "replace PATH if it exists");
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 1, 1, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  ASSIGN_OR_RETURN(int64_t id,
                   ParseId(parser, "RUN", positionals[0], "sweepq runs"));
  const std::string path = DownloadPath(output, "submission.csv");
  RETURN_IF_ERROR(CheckOutputPath(path, force));
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(v1::Run run, FetchRun(connection, id));
  v1::Run job_run;
  if (run.config().has_job()) {
    const v1::JobConfig& job = run.config().job();
    if (job.kind() != "predict") {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", id, " is a ", job.kind(),
          " job; it has no submission.csv (its files: sweepq artifacts ls ", id,
          ")"));
    }
    if (job.split() == "val") {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", id,
          " predicted a validation split (job.split val), not the eval set; "
          "queue one on the eval set: sweepq predict ",
          absl::StrJoin(job.source_runs(), ",")));
    }
    if (run.state() != v1::RUN_STATE_SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "predict job ", id, " is ", StateName(run.state()),
          run.error().empty() ? "" : absl::StrCat(" (", run.error(), ")"),
          IsFinalState(run.state())
              ? absl::StrCat(
                    " \u2014 queue another: sweepq predict ",
                    job.source_runs_size() == 1
                        ? absl::StrCat(job.source_runs(0))
                        : absl::StrCat("--runs ",
                                       absl::StrJoin(job.source_runs(), ",")))
              : absl::StrCat(" \u2014 wait for it: sweepq watch ", id)));
    }
    job_run = std::move(run);
  } else {
    ASSIGN_OR_RETURN(int64_t job_id, FindPredictJob(connection, run));
    ASSIGN_OR_RETURN(job_run, FetchRun(connection, job_id));
  }
  const int64_t job_id = job_run.run_id();
  const std::vector<int64_t> sources = SourcesOf(job_run.config().job());
  ASSIGN_OR_RETURN(v1::Artifact artifact,
                   DownloadArtifactTo(connection, job_id, "submission.csv", 0,
                                      path, force, common.timeout_s));
  ASSIGN_OR_RETURN(int64_t rows, CountCsvRows(path));
  if (format == OutputFormat::kJson) {
    JsonValue out = JsonValue::Object();
    out.Set("job_id", JsonValue::Int(job_id))
        .Set("source_runs", IdsJson(sources))
        .Set("path", JsonValue::String(path))
        .Set("rows", JsonValue::Int(rows))
        .Set("size", JsonValue::Int(artifact.size()))
        .Set("sha256", JsonValue::String(artifact.sha256()))
        .Set("attempt", JsonValue::Int(artifact.attempt()));
    PrintJson(session, out);
    return absl::OkStatus();
  }
  session.out() << "saved submission.csv of predict job " << job_id << " ("
                << (sources.size() == 1 ? "" : "ensemble of ")
                << RunsPhrase(sources) << "): " << rows
                << (rows == 1 ? " row, " : " rows, ")
                << FormatBytes(artifact.size()) << ", sha256 "
                << artifact.sha256().substr(0, 12) << "\u2026 verified\n"
                << path << "\n";
  return absl::OkStatus();
}

// ---- sweepq promote ----

absl::Status RunPromote(const std::vector<std::string>& args,
                        CliContext& context) {
  ArgParser parser(
      "sweepq promote",
      {"sweepq promote RUN --full [--epochs N] [--name N] [--priority N] "
       "[--wait] [--format table|json]",
       "The final-model step: queues a new training run with RUN's config "
       "on\ndata.split full (every image, no validation set) for RUN's best "
       "epoch count\n(the epoch of its best value of the sweep's metric; "
       "--epochs N overrides it),\nwith early stopping off. RUN must have "
       "SUCCEEDED. Prints what was queued and,\nalone on the last line, the "
       "new run's id. --wait follows it on stderr until it\nends and exits 1 "
       "unless it succeeded.",
       "  NEW=$(sweepq promote 12 --full | tail -1)\n"
       "  NEW=$(sweepq promote 12 --full --wait | tail -1) && sweepq predict "
       "\"$NEW\" --wait\n"});
  CommonOptions common;
  bool full = false, wait = false;
  int64_t epochs = 0, priority = 0;
  std::string name, format_text = "table";
  parser.AddBool("full", &full,
                 "retrain on data.split full (required: the only kind of "
                 "promotion)");
  parser.AddInt("epochs", &epochs, "N",
                "train N epochs (default: RUN's best epoch)", 1, 100000);
  parser.AddString("name", &name, "N",
                   "label of the new run (default full(RUN))");
  parser.AddInt("priority", &priority, "N",
                "higher is leased first (default 0)", -1000000, 1000000);
  parser.AddBool("wait", &wait,
                 "follow the run until it ends; exit 1 unless it succeeded");
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 1, 1, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  ASSIGN_OR_RETURN(int64_t id,
                   ParseId(parser, "RUN", positionals[0], "sweepq runs"));
  if (!full) {
    return parser.Error(
        "say --full: promote queues RUN's config again on data.split full "
        "(every image, no validation) for its best epoch count");
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(v1::Run run, FetchRun(connection, id));
  RETURN_IF_ERROR(CheckSource(run, "promote"));
  const std::string metric = run.metric().empty() ? "val_f1" : run.metric();
  if (epochs == 0) {
    if (!run.has_best() || run.best_step() < 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", id, " has no best ", metric,
          ", so its best epoch is unknown \u2014 pass --epochs N"));
    }
    epochs = run.best_step();
  }
  const std::string label =
      name.empty() ? absl::StrCat("full(", id, ")") : name;
  ASSIGN_OR_RETURN(v1::RunConfig config,
                   FullDataConfig(run, static_cast<uint32_t>(epochs), label));
  const std::string yaml = OneRunSweepYaml(config, label, metric, run.goal(),
                                           {"data.split", "train.epochs"});
  ASSIGN_OR_RETURN(v1::SubmitSweepResponse queued,
                   QueueOneRun(connection, yaml, priority));
  const int64_t new_id = queued.run_ids(0);
  const std::string why = run.has_best() && run.best_step() == epochs
                              ? absl::StrCat("its best ", metric, " ",
                                             FormatMetric(run.best_value()),
                                             " was at epoch ", epochs)
                              : std::string("--epochs");

  if (format == OutputFormat::kJson) {
    v1::RunState state = v1::RUN_STATE_QUEUED;
    absl::Status outcome;
    if (wait) {
      outcome = WaitFor(session, new_id);
      ASSIGN_OR_RETURN(v1::Run now, FetchRun(connection, new_id));
      state = now.state();
    }
    JsonValue out = JsonValue::Object();
    out.Set("run_id", JsonValue::Int(new_id))
        .Set("sweep_id", JsonValue::Int(queued.sweep_id()))
        .Set("source_run", JsonValue::Int(id))
        .Set("name", JsonValue::String(label))
        .Set("epochs", JsonValue::Int(epochs))
        .Set("state", JsonValue::String(StateName(state)));
    PrintJson(session, out);
    return outcome;
  }
  session.out() << "queued run " << new_id << " (sweep " << queued.sweep_id()
                << "): run " << id
                << "'s config on data.split full (every image, no "
                   "validation) for "
                << epochs << (epochs == 1 ? " epoch" : " epochs") << " (" << why
                << "), early stopping off\n"
                << "  follow it: sweepq watch " << new_id << "\n"
                << "  then:      sweepq predict " << new_id << "\n"
                << new_id << "\n";
  session.out().flush();
  if (!wait) return absl::OkStatus();
  return WaitFor(session, new_id);
}

// ---- sweepq gradcam ----

absl::Status RunGradCam(const std::vector<std::string>& args,
                        CliContext& context) {
  ArgParser parser(
      "sweepq gradcam",
      {"sweepq gradcam RUN --class C [--images N] [--layer L] [-o FILE] "
       "[--force] [--priority N] [--format table|json]",
       "Queues a gradcam job over RUN's best model, waits for it (progress "
       "on stderr)\nand downloads its sheet: N validation images of class C, "
       "each with its\nGrad-CAM heat map and a title true-pred (O|X). C is a "
       "class number or, for the\nmask task, a name such as wear/male/<30. "
       "The target layer is the model's last\nconvolution unless --layer "
       "names one. Interrupting leaves the job queued; fetch\nits picture "
       "later with sweepq artifacts get JOB gradcam.png.",
       "  sweepq gradcam 12 --class wear/female/30-59 --images 32 -o "
       "cam.png\n"});
  CommonOptions common;
  std::string class_text, layer, output, name, format_text = "table";
  int64_t images = 0, priority = 0;
  bool force = false;
  parser.AddString("class", &class_text, "C",
                   "class number or name whose images are shown (required)");
  parser.AddInt("images", &images, "N",
                absl::StrCat("images on the sheet (default 16, at most ",
                             kMaxGradCamImages, ")"),
                1, kMaxGradCamImages);
  parser.AddString("layer", &layer, "L",
                   "target layer (default: the last convolution)");
  parser.AddString("output", &output, "FILE",
                   "where the PNG goes (default run-RUN-gradcam-C.png)", "-o");
  parser.AddBool("force", &force, "replace FILE if it exists");
  parser.AddString("name", &name, "N",
                   "label shown in listings (default gradcam(RUN))");
  parser.AddInt("priority", &priority, "N",
                "higher is leased first (default 0)", -1000000, 1000000);
  parser.AddString("format", &format_text, "FORMAT", "table or json");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  bool help = false;
  RETURN_IF_ERROR(
      ParseOrHelp(parser, args, &positionals, 1, 1, context, &help));
  if (help) return absl::OkStatus();
  ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(format_text, false));
  ASSIGN_OR_RETURN(int64_t id,
                   ParseId(parser, "RUN", positionals[0], "sweepq runs"));
  if (class_text.empty()) {
    return parser.Error(
        "--class C is required (a class number, or a name such as "
        "wear/male/<30)");
  }
  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  ASSIGN_OR_RETURN(v1::Run run, FetchRun(connection, id));
  RETURN_IF_ERROR(CheckSource(run, "gradcam"));
  const RunClasses classes = ClassesOf(run.config());
  absl::StatusOr<uint32_t> parsed = ParseClass(class_text, classes);
  if (!parsed.ok()) return parser.Error(parsed.status().message());
  const uint32_t klass = *parsed;
  const std::string class_name =
      klass < classes.names.size() ? classes.names[klass] : "";
  const std::string path =
      output.empty() ? absl::StrCat("run-", id, "-gradcam-", klass, ".png")
                     : DownloadPath(output, "gradcam.png");
  RETURN_IF_ERROR(CheckOutputPath(path, force));

  const std::string label = name.empty() ? JobLabel("gradcam", {id}) : name;
  v1::RunConfig config;
  config.mutable_data()->set_dataset(run.dataset());
  config.set_name(label);
  v1::JobConfig* job = config.mutable_job();
  job->set_kind("gradcam");
  job->add_source_runs(id);
  job->set_gradcam_class(klass);
  job->set_gradcam_images(static_cast<uint32_t>(images));
  job->set_gradcam_layer(layer);
  const std::string yaml = OneRunSweepYaml(
      config, label, run.metric().empty() ? "val_f1" : run.metric(), run.goal(),
      {kJobKindParam, kJobSourcesParam, "job.gradcam_class"});
  ASSIGN_OR_RETURN(v1::SubmitSweepResponse queued,
                   QueueOneRun(connection, yaml, priority));
  const int64_t job_id = queued.run_ids(0);
  const std::string class_phrase = absl::StrCat(
      "class ", klass, class_name.empty() ? "" : absl::StrCat(" ", class_name));
  session.err() << "sweepq: queued gradcam job " << job_id << " (sweep "
                << queued.sweep_id() << "): run " << id << ", " << class_phrase
                << ", " << (images == 0 ? 16 : images)
                << " validation images; waiting for it (Ctrl-C leaves it "
                   "queued: sweepq artifacts get "
                << job_id << " gradcam.png)\n";
  RETURN_IF_ERROR(WaitFor(session, job_id));
  ASSIGN_OR_RETURN(v1::Artifact artifact,
                   DownloadArtifactTo(connection, job_id, "gradcam.png", 0,
                                      path, force, common.timeout_s));
  if (format == OutputFormat::kJson) {
    JsonValue out = JsonValue::Object();
    out.Set("job_id", JsonValue::Int(job_id))
        .Set("sweep_id", JsonValue::Int(queued.sweep_id()))
        .Set("run_id", JsonValue::Int(id))
        .Set("class", JsonValue::Int(klass))
        .Set("class_name", class_name.empty() ? JsonValue::Null()
                                              : JsonValue::String(class_name))
        .Set("images", JsonValue::Int(images == 0 ? 16 : images))
        .Set("layer",
             layer.empty() ? JsonValue::Null() : JsonValue::String(layer))
        .Set("path", JsonValue::String(path))
        .Set("size", JsonValue::Int(artifact.size()))
        .Set("sha256", JsonValue::String(artifact.sha256()));
    PrintJson(session, out);
    return absl::OkStatus();
  }
  session.out() << "wrote " << path << " (Grad-CAM of run " << id << ", "
                << class_phrase << "; job " << job_id << ", "
                << FormatBytes(artifact.size()) << ")\n";
  return absl::OkStatus();
}

}  // namespace sweepq::client

#include "server/store/sqlite_db.h"

#include <sqlite3.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace sweepq::store {
namespace {

constexpr size_t kMaxSqlInMessage = 200;

absl::string_view Abbreviate(absl::string_view sql) {
  return sql.size() <= kMaxSqlInMessage ? sql : sql.substr(0, kMaxSqlInMessage);
}

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return absl::StatusCode::kUnavailable;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CONSTRAINT:
      return rc == SQLITE_CONSTRAINT_UNIQUE ||
                     rc == SQLITE_CONSTRAINT_PRIMARYKEY
                 ? absl::StatusCode::kAlreadyExists
                 : absl::StatusCode::kFailedPrecondition;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    default:
      return absl::StatusCode::kInternal;
  }
}

// sqlite3_wal_hook's callback: `arg` is the connection's hook.
int CallWalCommitHook(void* arg, sqlite3* /*db*/, const char* /*name*/,
                      int frames) {
  (*static_cast<absl::AnyInvocable<void(int)>*>(arg))(frames);
  return SQLITE_OK;
}

}  // namespace

// ---- Statement ----

Statement::Statement(Database* db, sqlite3_stmt* stmt, bool* in_use)
    : db_(db), stmt_(stmt), in_use_(in_use), bind_error_(SQLITE_OK) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_error_(other.bind_error_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (in_use_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}

void Statement::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindDouble(int index, double value) {
  if (std::isnan(value)) {
    BindNull(index);
    return;
  }
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindText(int index, absl::string_view value) {
  int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindBlob(int index, absl::string_view value) {
  // A null data pointer would bind NULL; an empty blob must stay a blob.
  static const char kEmpty = 0;
  const char* data = value.empty() ? &kEmpty : value.data();
  int rc =
      sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_error_ != SQLITE_OK) {
    return db_->ErrorStatus(bind_error_, sqlite3_sql(stmt_));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->ErrorStatus(rc, sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

void Statement::Reset() { sqlite3_reset(stmt_); }

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

int64_t Statement::ColumnInt64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

double Statement::ColumnDouble(int col) const {
  return sqlite3_column_double(stmt_, col);
}

std::string Statement::ColumnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_, col));
}

std::string Statement::ColumnBlob(int col) const {
  const void* blob = sqlite3_column_blob(stmt_, col);
  if (blob == nullptr) return std::string();
  return std::string(static_cast<const char*>(blob),
                     sqlite3_column_bytes(stmt_, col));
}

// ---- Database ----

Database::Database(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)) {}

Database::~Database() {
  for (auto& [sql, cached] : cache_) {
    DCHECK(!cached.in_use) << "statement still in use: " << sql;
    sqlite3_finalize(cached.stmt);
  }
  int rc = sqlite3_close(db_);
  if (rc != SQLITE_OK) {
    LOG(ERROR) << "closing database " << path_ << ": " << sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
  }
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const std::string& path, const DatabaseOptions& options) {
  // NOMUTEX: each connection is used by one thread at a time (see header).
  int flags = SQLITE_OPEN_NOMUTEX;
  if (options.read_only) {
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE;
    if (options.create) flags |= SQLITE_OPEN_CREATE;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message =
        raw != nullptr ? sqlite3_errmsg(raw) : std::string(sqlite3_errstr(rc));
    sqlite3_close_v2(raw);
    return absl::UnavailableError(
        absl::StrCat("cannot open database ", path, ": ", message));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  std::unique_ptr<Database> db(new Database(raw, path));

  if (!options.read_only) {
    ASSIGN_OR_RETURN(std::string mode,
                     db->QueryText("PRAGMA journal_mode=WAL"));
    if (mode != "wal") {
      return absl::FailedPreconditionError(absl::StrCat(
          "database ", path,
          " cannot use write-ahead logging (journal_mode is ", mode, ")"));
    }
    RETURN_IF_ERROR(db->Execute(options.synchronous_full
                                    ? "PRAGMA synchronous=FULL"
                                    : "PRAGMA synchronous=NORMAL"));
  }
  RETURN_IF_ERROR(db->Execute("PRAGMA foreign_keys=ON"));
  return db;
}

absl::StatusOr<sqlite3_stmt*> Database::PrepareRaw(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), 0,
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return ErrorStatus(rc, sql);
  if (stmt == nullptr) {
    return absl::InternalError(
        absl::StrCat("empty SQL on database ", path_, ": ", Abbreviate(sql)));
  }
  return stmt;
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    CachedStatement& cached = it->second;
    if (!cached.in_use) {
      cached.in_use = true;
      return Statement(this, cached.stmt, &cached.in_use);
    }
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, PrepareRaw(sql));
    return Statement(this, stmt, nullptr);
  }
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, PrepareRaw(sql));
  CachedStatement& cached = cache_[std::string(sql)];
  cached.stmt = stmt;
  cached.in_use = true;
  return Statement(this, stmt, &cached.in_use);
}

absl::Status Database::Execute(absl::string_view sql) {
  const std::string text(sql);
  ++executes_;
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);  // sqlite3_errmsg() still has it
  if (rc != SQLITE_OK) return ErrorStatus(rc, sql);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Database::QueryInt64(absl::string_view sql) {
  ++executes_;  // a pragma may write
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, PrepareRaw(sql));
  Statement statement(this, raw, nullptr);
  ASSIGN_OR_RETURN(bool row, statement.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("no row from ", Abbreviate(sql)));
  }
  return statement.ColumnInt64(0);
}

absl::StatusOr<std::string> Database::QueryText(absl::string_view sql) {
  ++executes_;  // a pragma may write
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, PrepareRaw(sql));
  Statement statement(this, raw, nullptr);
  ASSIGN_OR_RETURN(bool row, statement.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("no row from ", Abbreviate(sql)));
  }
  return statement.ColumnText(0);
}

void Database::SetWalCommitHook(absl::AnyInvocable<void(int frames)> hook) {
  wal_commit_hook_ = std::move(hook);
  sqlite3_wal_hook(db_, &CallWalCommitHook, &wal_commit_hook_);
}

int64_t Database::LastInsertRowId() const {
  return sqlite3_last_insert_rowid(db_);
}

int64_t Database::Changes() const { return sqlite3_changes64(db_); }

int64_t Database::ChangeCount() const {
  return sqlite3_total_changes64(db_) + executes_;
}

bool Database::InTransaction() const { return !sqlite3_get_autocommit(db_); }

absl::Status Database::ErrorStatus(int rc, absl::string_view sql) const {
  // sqlite3_errmsg describes the most recent failed call on the connection,
  // which for a failed bind or step is this one; for other codes (a bind
  // error reported late) fall back to the generic text of the code.
  const int last = sqlite3_extended_errcode(db_);
  const char* message = last == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return absl::Status(
      CodeFor(rc), absl::StrCat(message, " (sqlite code ", rc, ") on database ",
                                path_, " in: ", Abbreviate(sql)));
}

// ---- Transaction ----

Transaction::~Transaction() {
  if (!active_) return;
  absl::Status status = Rollback();
  if (!status.ok()) LOG(ERROR) << "rollback failed: " << status;
}

absl::Status Transaction::Begin(Mode mode) {
  DCHECK(!active_);
  ASSIGN_OR_RETURN(Statement begin,
                   db_->Prepare(mode == Mode::kImmediate ? "BEGIN IMMEDIATE"
                                                         : "BEGIN DEFERRED"));
  RETURN_IF_ERROR(begin.Run());
  active_ = true;
  return absl::OkStatus();
}

absl::Status Transaction::Commit() {
  DCHECK(active_);
  ASSIGN_OR_RETURN(Statement commit, db_->Prepare("COMMIT"));
  RETURN_IF_ERROR(commit.Run());
  active_ = false;
  return absl::OkStatus();
}

absl::Status Transaction::Rollback() {
  active_ = false;
  if (!db_->InTransaction()) return absl::OkStatus();
  ASSIGN_OR_RETURN(Statement rollback, db_->Prepare("ROLLBACK"));
  return rollback.Run();
}

// ---- Savepoint ----

Savepoint::~Savepoint() {
  if (!active_) return;
  absl::Status status = Rollback();
  if (!status.ok()) LOG(ERROR) << "rollback to savepoint failed: " << status;
}

absl::Status Savepoint::Begin() {
  DCHECK(!active_);
  ASSIGN_OR_RETURN(Statement savepoint, db_->Prepare("SAVEPOINT sweepq_op"));
  RETURN_IF_ERROR(savepoint.Run());
  active_ = true;
  return absl::OkStatus();
}

absl::Status Savepoint::Release() {
  DCHECK(active_);
  ASSIGN_OR_RETURN(Statement release, db_->Prepare("RELEASE sweepq_op"));
  RETURN_IF_ERROR(release.Run());
  active_ = false;
  return absl::OkStatus();
}

absl::Status Savepoint::Rollback() {
  active_ = false;
  // After an error that made SQLite roll back the whole transaction the
  // savepoint is gone too; nothing is left to undo here.
  if (!db_->InTransaction()) return absl::OkStatus();
  ASSIGN_OR_RETURN(Statement rollback, db_->Prepare("ROLLBACK TO sweepq_op"));
  RETURN_IF_ERROR(rollback.Run());
  ASSIGN_OR_RETURN(Statement release, db_->Prepare("RELEASE sweepq_op"));
  return release.Run();
}

}  // namespace sweepq::store

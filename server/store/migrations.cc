#include "server/store/migrations.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace sweepq::store {
namespace {

absl::Status TooNewError(const Database& db, int current, int latest) {
  return absl::FailedPreconditionError(
      absl::StrCat("database ", db.path(), " is at schema version ", current,
                   " but this sweepq-server knows only up to ", latest,
                   "; upgrade sweepq-server"));
}

}  // namespace

absl::StatusOr<int> SchemaVersion(Database& db) {
  ASSIGN_OR_RETURN(int64_t version, db.QueryInt64("PRAGMA user_version"));
  return static_cast<int>(version);
}

absl::Status ApplyMigrations(Database& db,
                             absl::Span<const Migration> migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    CHECK_EQ(migrations[i].version, static_cast<int>(i) + 1)
        << "migrations must be numbered 1, 2, ... without gaps";
  }
  const int latest = migrations.empty() ? 0 : migrations.back().version;

  ASSIGN_OR_RETURN(int current, SchemaVersion(db));
  if (current > latest) return TooNewError(db, current, latest);

  for (const Migration& migration : migrations) {
    if (migration.version <= current) continue;
    Transaction transaction(&db);
    RETURN_IF_ERROR(transaction.Begin(Transaction::Mode::kImmediate));
    // Read again under the write lock: another process may have migrated
    // since.
    ASSIGN_OR_RETURN(current, SchemaVersion(db));
    if (current > latest) return TooNewError(db, current, latest);
    if (migration.version <= current) continue;

    absl::Status status = db.Execute(migration.sql);
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat("migration ", migration.version, "_", migration.name,
                       " failed: ", status.message()));
    }
    // PRAGMA takes no parameters; the version is a compiled-in integer.
    RETURN_IF_ERROR(
        db.Execute(absl::StrCat("PRAGMA user_version = ", migration.version)));
    RETURN_IF_ERROR(transaction.Commit());
    current = migration.version;
    LOG(INFO) << "database " << db.path() << " migrated to schema version "
              << migration.version << " (" << migration.name << ")";
  }
  return absl::OkStatus();
}

}  // namespace sweepq::store

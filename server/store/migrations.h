// Schema migrations of the coordinator database: the numbered files in
// migrations/, embedded into the binary at build time
// (cmake/EmbedMigrations.cmake), applied in order at open.
#ifndef SWEEPQ_SERVER_STORE_MIGRATIONS_H_
#define SWEEPQ_SERVER_STORE_MIGRATIONS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/store/sqlite_db.h"

namespace sweepq::store {

// One migration file: migrations/NNNN_name.sql.
struct Migration {
  int version;             // NNNN; the schema version after applying it
  absl::string_view name;  // e.g. "initial"
  absl::string_view sql;   // the whole file
};

// The migrations compiled into this binary, versions 1, 2, ... in order.
// Defined in the generated embedded_migrations.cc.
absl::Span<const Migration> EmbeddedMigrations();

// The schema version of `db` (PRAGMA user_version; 0 for a new file).
absl::StatusOr<int> SchemaVersion(Database& db);

// Brings `db` to the last version of `migrations` (which must be versions
// 1..N in order). Each pending migration runs in its own BEGIN IMMEDIATE
// transaction that also sets PRAGMA user_version, so a failure leaves the
// database at the previous version. A database newer than N is refused with
// FAILED_PRECONDITION ("... upgrade sweepq-server") and left untouched;
// a failing migration returns its SQL error, naming the migration.
// Not thread-safe: `db` must not be used elsewhere meanwhile.
absl::Status ApplyMigrations(Database& db,
                             absl::Span<const Migration> migrations);

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_MIGRATIONS_H_

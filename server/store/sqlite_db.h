// RAII wrappers over the SQLite C API: Database (one connection with its
// statement cache), Statement (a prepared statement in use), Transaction
// and Savepoint (roll back unless committed / released).
//
// Values always travel as bound parameters; SQL text is never built from
// values. Every error is an absl::Status that names the database file, the
// SQL and sqlite3_errmsg, with a code that says what the caller can do:
//   UNAVAILABLE        busy/locked, I/O error, cannot open (retry later);
//   RESOURCE_EXHAUSTED disk or database full;
//   ALREADY_EXISTS     UNIQUE / PRIMARY KEY constraint;
//   FAILED_PRECONDITION other constraints (CHECK, FOREIGN KEY, NOT NULL);
//   DATA_LOSS          corrupt file or not a database;
//   INTERNAL           anything else (misuse, bad SQL).
//
// Thread safety: a Database and everything made from it may be used by one
// thread at a time (the connection is opened without SQLite's own mutex).
// Different Database objects on the same file may be used concurrently.
#ifndef SWEEPQ_SERVER_STORE_SQLITE_DB_H_
#define SWEEPQ_SERVER_STORE_SQLITE_DB_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/node_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sweepq::store {

// How Database::Open opens a connection.
struct DatabaseOptions {
  // Opens the file read-only; no pragma that writes (journal_mode,
  // synchronous) is set. The file must exist.
  bool read_only = false;
  // Creates the file if it does not exist (ignored when read_only).
  bool create = true;
  // synchronous=FULL instead of NORMAL. With WAL, NORMAL survives a crash
  // of the process but may lose the last commits on power loss; FULL syncs
  // the WAL on every commit.
  bool synchronous_full = false;
  // How long a statement waits for a lock held by another connection
  // before failing with UNAVAILABLE.
  int busy_timeout_ms = 5000;
};

class Database;

// A prepared statement checked out of a Database for one use: bind, step,
// read columns. Destroying it resets the statement and clears its bindings
// (a cached statement goes back to the cache; a one-off one is finalized),
// so a read never keeps its snapshot open by accident.
//
// Bind indexes are 1-based (SQLite's ?1, ?2, ...); column indexes 0-based.
// A failed bind is reported by the next Step(). Column getters must only be
// called after Step() returned true.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds a 64-bit integer.
  void BindInt64(int index, int64_t value);
  // Binds a bool as 0 or 1.
  void BindBool(int index, bool value) { BindInt64(index, value ? 1 : 0); }
  // Binds a REAL. SQLite has no NaN: a NaN binds NULL. +-Inf are kept.
  void BindDouble(int index, double value);
  // Binds UTF-8 text (copied).
  void BindText(int index, absl::string_view value);
  // Binds a BLOB (copied).
  void BindBlob(int index, absl::string_view value);
  // Binds NULL.
  void BindNull(int index);

  // Runs the statement to its next row. Returns true when a row is
  // available, false when the statement is done; an error status (see the
  // file comment) on failure or if a bind failed.
  absl::StatusOr<bool> Step();

  // Steps until done, ignoring any rows. For INSERT/UPDATE/DELETE.
  absl::Status Run();

  // Rewinds the statement so that it can be stepped again, keeping the
  // bindings (loops that rebind every parameter before each Step()).
  void Reset();

  // Whether column `col` of the current row is NULL.
  bool ColumnIsNull(int col) const;
  // Column `col` as an integer (NULL reads 0).
  int64_t ColumnInt64(int col) const;
  // Column `col` as a bool (non-zero integer).
  bool ColumnBool(int col) const { return ColumnInt64(col) != 0; }
  // Column `col` as a double (NULL reads 0.0).
  double ColumnDouble(int col) const;
  // Column `col` as text (NULL reads "").
  std::string ColumnText(int col) const;
  // Column `col` as bytes (NULL reads "").
  std::string ColumnBlob(int col) const;

 private:
  friend class Database;

  // `in_use` is the cache slot's flag (cleared on destruction), or null for
  // a one-off statement this object finalizes.
  Statement(Database* db, sqlite3_stmt* stmt, bool* in_use);

  Database* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
  int bind_error_;  // first failed bind's result code, or SQLITE_OK
};

// One SQLite connection. Owns its prepared-statement cache.
class Database {
 public:
  // Opens `path` and sets the pragmas once: busy_timeout, foreign_keys=ON
  // and, unless read-only, journal_mode=WAL and synchronous=NORMAL (FULL
  // with options.synchronous_full). Fails with UNAVAILABLE if the file
  // cannot be opened, FAILED_PRECONDITION if WAL cannot be enabled, or the
  // error of a pragma (e.g. DATA_LOSS for a file that is not a database).
  static absl::StatusOr<std::unique_ptr<Database>> Open(
      const std::string& path, const DatabaseOptions& options);

  // Finalizes the cached statements and closes the connection. Statements
  // and transactions made from it must be gone.
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Returns `sql` (one statement) prepared, from the cache when it was
  // prepared before on this connection. Should the cached statement be in
  // use still (nested use of the same SQL), a one-off statement is
  // prepared instead. Fails with INTERNAL on invalid SQL.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // Runs `sql`, which may hold several statements and must take no
  // parameters (schema scripts, pragmas). Rows are ignored.
  absl::Status Execute(absl::string_view sql);

  // Runs `sql` (one statement) uncached and returns column 0 of its first
  // row; NOT_FOUND if it returns no row. For pragmas and tests.
  absl::StatusOr<int64_t> QueryInt64(absl::string_view sql);
  // As QueryInt64, for a text column.
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // Rowid of the last successful INSERT on this connection.
  int64_t LastInsertRowId() const;
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t Changes() const;
  // A count that moves whenever this connection may have changed the
  // database: rows changed by INSERT/UPDATE/DELETE (triggers included)
  // since it opened, plus one per Execute(), QueryInt64() and QueryText()
  // call (schema scripts and pragmas, whose changes SQLite does not count;
  // a prepared statement must not change the schema). Equal before and
  // after some work: that work changed nothing.
  int64_t ChangeCount() const;
  // Whether a transaction is open (SQLite may roll one back by itself
  // after some errors, e.g. disk full; callers that group work check this).
  bool InTransaction() const;

  // The file this connection was opened on.
  const std::string& path() const { return path_; }

  // Calls `hook` after every commit on this connection, on the committing
  // thread, with the number of frames now in the write-ahead log. This
  // replaces SQLite's automatic checkpoints on this connection: whoever
  // sets a hook checkpoints (see WalCheckpointer).
  void SetWalCommitHook(absl::AnyInvocable<void(int frames)> hook);

  // The status for result code `rc` of the last call on this connection
  // (see the file comment for the codes), naming the file and `sql`.
  absl::Status ErrorStatus(int rc, absl::string_view sql) const;

 private:
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  Database(sqlite3* db, std::string path);

  // Prepares `sql` without caching; the caller finalizes.
  absl::StatusOr<sqlite3_stmt*> PrepareRaw(absl::string_view sql);

  sqlite3* db_;
  const std::string path_;
  int64_t executes_ = 0;  // Execute() and Query*() calls, for ChangeCount()
  absl::AnyInvocable<void(int)> wal_commit_hook_;
  // Keyed by SQL text. Node-based, so `in_use` flags stay put on rehash.
  absl::node_hash_map<std::string, CachedStatement> cache_;
};

// A transaction that rolls back when destroyed unless Commit() succeeded.
// Not nestable (use Savepoint inside one).
class Transaction {
 public:
  enum class Mode {
    // BEGIN: takes locks on first use. For reads (a consistent snapshot).
    kDeferred,
    // BEGIN IMMEDIATE: takes the write lock now. For every transaction that
    // writes, so that it never fails to upgrade a read lock midway.
    kImmediate,
  };

  // `db` must outlive the transaction.
  explicit Transaction(Database* db) : db_(db) {}
  // Rolls back if begun and not committed; errors are logged.
  ~Transaction();

  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Begins the transaction. UNAVAILABLE if the write lock stays busy past
  // the busy timeout.
  absl::Status Begin(Mode mode);
  // Commits. On failure the transaction is still open and the destructor
  // rolls it back.
  absl::Status Commit();
  // Rolls back now. OK if SQLite already rolled back by itself.
  absl::Status Rollback();

 private:
  Database* db_;
  bool active_ = false;
};

// A SAVEPOINT inside an open transaction: Release() keeps its changes,
// otherwise they are rolled back (ROLLBACK TO + RELEASE) on destruction.
class Savepoint {
 public:
  // `db` must outlive the savepoint.
  explicit Savepoint(Database* db) : db_(db) {}
  // Rolls back to the savepoint unless released; errors are logged.
  ~Savepoint();

  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;

  // Sets the savepoint.
  absl::Status Begin();
  // Keeps the changes made since Begin() in the enclosing transaction.
  absl::Status Release();
  // Undoes the changes made since Begin() and ends the savepoint.
  absl::Status Rollback();

 private:
  Database* db_;
  bool active_ = false;
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_SQLITE_DB_H_

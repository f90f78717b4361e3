// ArtifactStore: content-addressed files under the coordinator's artifact
// directory (DIR/ab/abcdef... by SHA-256). Uploads go to DIR/tmp and are
// renamed into place only after their size and hash were verified, so a
// crash never leaves a partial artifact under its hash.
//
// Thread safety: Open/NewUpload/OpenBlob may be called concurrently; each
// Writer and Reader is used by one thread at a time.
#ifndef SWEEPQ_SERVER_ARTIFACT_STORE_H_
#define SWEEPQ_SERVER_ARTIFACT_STORE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"

namespace sweepq::server {

// Largest single artifact accepted (checkpoints of big models fit).
inline constexpr int64_t kMaxArtifactBytes = int64_t{8} << 30;

class ArtifactStore {
 public:
  // One upload in progress. Destroying it without Commit deletes the data.
  class Writer {
   public:
    ~Writer();
    // Appends bytes. RESOURCE_EXHAUSTED past kMaxArtifactBytes.
    absl::Status Append(absl::string_view data);
    // Verifies the size and SHA-256 the uploader announced, then moves the
    // file under its hash. DATA_LOSS naming both hashes on mismatch.
    absl::Status Commit(int64_t expected_size,
                        const std::string& expected_sha256);
    int64_t size() const { return size_; }

   private:
    friend class ArtifactStore;
    Writer(const ArtifactStore* store, std::string temp_path);
    const ArtifactStore* store_;
    std::string temp_path_;
    std::ofstream out_;
    Sha256 hash_;
    int64_t size_ = 0;
    bool committed_ = false;
  };

  class Reader {
   public:
    // Reads up to `max_bytes` into `out` (empty at the end).
    absl::Status Read(size_t max_bytes, std::string* out);

   private:
    friend class ArtifactStore;
    explicit Reader(std::string path) : path_(path), in_(path, std::ios::binary) {}
    std::string path_;
    std::ifstream in_;
  };

  // Creates DIR and DIR/tmp if needed and removes stale temp files.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(
      const std::string& dir);

  absl::StatusOr<std::unique_ptr<Writer>> NewUpload() const;

  // NOT_FOUND if no blob has this hash.
  absl::StatusOr<std::unique_ptr<Reader>> OpenBlob(
      const std::string& sha256) const;

  // Where the blob with this hash lives (whether or not it exists).
  std::string BlobPath(const std::string& sha256) const;

 private:
  explicit ArtifactStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_ARTIFACT_STORE_H_

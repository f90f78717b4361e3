#include "server/artifact_store.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"

namespace sweepq::server {
namespace fs = std::filesystem;

namespace {

bool IsHexSha256(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) ||
        absl::ascii_isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(
    const std::string& dir) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "tmp", ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create artifact directory ", dir, ": ", ec.message()));
  }
  // Temp files are from uploads that a crash interrupted: nobody owns them.
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "tmp", ec)) {
    fs::remove(entry.path(), ec);
  }
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(dir));
}

std::string ArtifactStore::BlobPath(const std::string& sha256) const {
  return (fs::path(dir_) / sha256.substr(0, 2) / sha256).string();
}

absl::StatusOr<std::unique_ptr<ArtifactStore::Writer>>
ArtifactStore::NewUpload() const {
  std::string temp =
      (fs::path(dir_) / "tmp" / absl::StrCat("upload-", RandomToken(16)))
          .string();
  std::unique_ptr<Writer> w(new Writer(this, temp));
  if (!w->out_) {
    return absl::UnavailableError(
        absl::StrCat("cannot create upload file ", temp));
  }
  return w;
}

ArtifactStore::Writer::Writer(const ArtifactStore* store, std::string temp_path)
    : store_(store),
      temp_path_(std::move(temp_path)),
      out_(temp_path_, std::ios::binary | std::ios::trunc) {}

ArtifactStore::Writer::~Writer() {
  if (!committed_) {
    out_.close();
    std::error_code ec;
    fs::remove(temp_path_, ec);
  }
}

absl::Status ArtifactStore::Writer::Append(absl::string_view data) {
  if (size_ + static_cast<int64_t>(data.size()) > kMaxArtifactBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "artifact larger than the limit of ", kMaxArtifactBytes, " bytes"));
  }
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out_) {
    return absl::UnavailableError(
        absl::StrCat("write to ", temp_path_, " failed (disk full?)"));
  }
  hash_.Update(data);
  size_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status ArtifactStore::Writer::Commit(int64_t expected_size,
                                           const std::string& expected_sha256) {
  out_.flush();
  out_.close();
  if (!out_) {
    return absl::UnavailableError(
        absl::StrCat("cannot finish writing ", temp_path_));
  }
  std::string actual = hash_.FinishHex();
  if (size_ != expected_size) {
    return absl::DataLossError(absl::StrCat("artifact size mismatch: announced ",
                                            expected_size, " bytes, received ",
                                            size_));
  }
  if (actual != expected_sha256) {
    return absl::DataLossError(absl::StrCat("artifact sha256 mismatch: announced ",
                                            expected_sha256, ", received ",
                                            actual));
  }
  std::string final_path = store_->BlobPath(actual);
  std::error_code ec;
  fs::create_directories(fs::path(final_path).parent_path(), ec);
  fs::rename(temp_path_, final_path, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot move upload to ",
                                               final_path, ": ", ec.message()));
  }
  committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ArtifactStore::Reader>> ArtifactStore::OpenBlob(
    const std::string& sha256) const {
  if (!IsHexSha256(sha256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a SHA-256 hex digest: '", sha256, "'"));
  }
  std::string path = BlobPath(sha256);
  std::unique_ptr<Reader> r(new Reader(path));
  if (!r->in_) {
    return absl::NotFoundError(absl::StrCat("artifact blob ", sha256,
                                            " is missing from ", dir_));
  }
  return r;
}

absl::Status ArtifactStore::Reader::Read(size_t max_bytes, std::string* out) {
  out->resize(max_bytes);
  in_.read(out->data(), static_cast<std::streamsize>(max_bytes));
  std::streamsize got = in_.gcount();
  if (in_.bad()) {
    return absl::DataLossError(absl::StrCat("read of ", path_, " failed"));
  }
  out->resize(static_cast<size_t>(got));
  return absl::OkStatus();
}

}  // namespace sweepq::server

#include "worker/daemon/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat("spool: cannot ", what, " ", path, ": ", strerror(errno)));
}

absl::Status WriteFully(int fd, const std::string& data,
                        const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// fsync of a directory makes a rename or unlink in it durable.
void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventSpool>> EventSpool::Create(
    const std::string& root, const sweepq::v1::LeaseRef& lease) {
  const std::string dir =
      absl::StrFormat("%s/run-%d-attempt-%u-%016x", root, lease.run_id(),
                      lease.attempt(), lease.lease_id());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("spool: cannot create ", dir, ": ", ec.message()));
  }
  return std::unique_ptr<EventSpool>(new EventSpool(dir, lease));
}

absl::StatusOr<std::unique_ptr<EventSpool>> EventSpool::Reopen(
    const std::string& dir) {
  std::unique_ptr<EventSpool> spool(new EventSpool(dir, sweepq::v1::LeaseRef()));
  std::error_code ec;
  std::vector<uint64_t> seqs;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t seq = 0;
    if (absl::EndsWith(name, ".batch") &&
        absl::SimpleAtoi(name.substr(0, name.size() - 6), &seq) && seq > 0) {
      seqs.push_back(seq);
    } else {
      fs::remove(entry.path(), ec);  // an unfinished .tmp
    }
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("spool: cannot read ", dir, ": ", ec.message()));
  }
  std::sort(seqs.begin(), seqs.end());
  absl::MutexLock lock(&spool->mu_);
  for (uint64_t seq : seqs) spool->unacked_.push_back(seq);
  if (!seqs.empty()) spool->next_seq_ = seqs.back() + 1;
  return spool;
}

std::vector<std::string> EventSpool::ListDirs(const std::string& root) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory(ec) &&
        absl::StartsWith(entry.path().filename().string(), "run-")) {
      dirs.push_back(entry.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::string EventSpool::PathOf(uint64_t seq, const char* suffix) const {
  return absl::StrFormat("%s/%020u%s", dir_, seq, suffix);
}

absl::StatusOr<uint64_t> EventSpool::Append(
    sweepq::v1::ReportEventsRequest batch) {
  // Appends are serialised: one thread (the reader) appends, and seq order
  // must match file order.
  absl::MutexLock lock(&mu_);
  const uint64_t seq = next_seq_;
  if (lease_.run_id() != 0) *batch.mutable_lease() = lease_;
  batch.set_batch_seq(seq);
  std::string data;
  if (!batch.SerializeToString(&data)) {
    return absl::InternalError("spool: cannot serialise a batch");
  }
  const std::string tmp = PathOf(seq, ".tmp");
  const std::string path = PathOf(seq, ".batch");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp);
  absl::Status written = WriteFully(fd, data, tmp);
  if (written.ok() && fsync(fd) != 0) written = Errno("fsync", tmp);
  close(fd);
  if (written.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    written = Errno("rename", tmp);
  }
  if (!written.ok()) {
    unlink(tmp.c_str());
    return written;
  }
  SyncDir(dir_);
  ++next_seq_;
  unacked_.push_back(seq);
  return seq;
}

absl::StatusOr<std::optional<sweepq::v1::ReportEventsRequest>>
EventSpool::Oldest() {
  while (true) {
    uint64_t seq;
    {
      absl::MutexLock lock(&mu_);
      if (unacked_.empty()) return std::nullopt;
      seq = unacked_.front();
    }
    const std::string path = PathOf(seq, ".batch");
    std::ifstream in(path, std::ios::binary);
    std::stringstream data;
    data << in.rdbuf();
    sweepq::v1::ReportEventsRequest batch;
    if (in && batch.ParseFromString(data.str()) && batch.batch_seq() == seq) {
      return batch;
    }
    LOG(WARNING) << "spool: dropping unreadable batch file " << path;
    unlink(path.c_str());
    absl::MutexLock lock(&mu_);
    if (!unacked_.empty() && unacked_.front() == seq) unacked_.pop_front();
  }
}

absl::Status EventSpool::Ack(uint64_t batch_seq) {
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find(unacked_.begin(), unacked_.end(), batch_seq);
    if (it == unacked_.end()) return absl::OkStatus();
    unacked_.erase(it);
  }
  const std::string path = PathOf(batch_seq, ".batch");
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Errno("delete", path);
  }
  return absl::OkStatus();
}

size_t EventSpool::pending() const {
  absl::MutexLock lock(&mu_);
  return unacked_.size();
}

absl::Status EventSpool::RemoveAll() {
  {
    absl::MutexLock lock(&mu_);
    unacked_.clear();
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("spool: cannot delete ", dir_, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace sweepq::worker

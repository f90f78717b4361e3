// The CLI end-to-end tests' stand-in for sweepq-worker: it registers when
// made and then makes the worker calls a test scripts (lease, report,
// upload, finish) against the real sweepq-server, failing the test on an
// error.
#ifndef SWEEPQ_TESTS_CLIENT_FAKE_WORKER_H_
#define SWEEPQ_TESTS_CLIENT_FAKE_WORKER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sweepq/v1/coordinator.grpc.pb.h"

namespace sweepq::testing {

class FakeWorker {
 public:
  struct Options {
    std::string id = "w1";
    uint32_t slots = 1;
    std::vector<std::string> datasets = {"mask"};
    // How long Lease waits for a run to be queued (the CLI under test may
    // not have queued it yet).
    int64_t lease_wait_ms = 0;
  };

  FakeWorker(const std::string& address, std::string token,
             Options options);

  // Leases the next run; expects one (an empty response if none came).
  sweepq::v1::LeaseResponse Lease();

  // One batch: metric points at `step`, then events (kind, payload).
  void Report(
      const sweepq::v1::LeaseRef& lease, int64_t step,
      const std::map<std::string, double>& metrics,
      const std::vector<std::pair<std::string, std::string>>& events = {});

  // Uploads `data` as artifact `name`, in 256 KiB chunks.
  void Upload(const sweepq::v1::LeaseRef& lease, const std::string& name,
              const std::string& data);

  void Finish(const sweepq::v1::LeaseRef& lease, sweepq::v1::Outcome outcome,
              const std::string& reason = "");

 private:
  std::unique_ptr<sweepq::v1::WorkerService::Stub> stub_;
  const std::string token_;
  const Options options_;
  uint64_t batch_ = 0;
};

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_CLIENT_FAKE_WORKER_H_

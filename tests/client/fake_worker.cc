#include "tests/client/fake_worker.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>

#include "common/crypto.h"
#include "gtest/gtest.h"
#include "tests/testing/grpc_context.h"

namespace sweepq::testing {
namespace {

namespace v1 = ::sweepq::v1;

constexpr int kCallSeconds = 10;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

FakeWorker::FakeWorker(const std::string& address, std::string token,
                       Options options)
    : stub_(v1::WorkerService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
      token_(std::move(token)),
      options_(std::move(options)) {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.id);
  request.set_host("test-host");
  request.set_slots(options_.slots);
  for (const std::string& dataset : options_.datasets) {
    request.add_datasets(dataset);
  }
  v1::RegisterWorkerResponse response;
  grpc::Status status = stub_->RegisterWorker(
      AuthorizedContext(token_, kCallSeconds).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

v1::LeaseResponse FakeWorker::Lease() {
  v1::LeaseRequest request;
  request.set_worker_id(options_.id);
  request.set_wait_ms(options_.lease_wait_ms);
  v1::LeaseResponse response;
  const int seconds =
      kCallSeconds + static_cast<int>(options_.lease_wait_ms / 1000);
  grpc::Status status = stub_->Lease(AuthorizedContext(token_, seconds).get(),
                                     request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.granted()) << "nothing was queued";
  return response;
}

void FakeWorker::Report(
    const v1::LeaseRef& lease, int64_t step,
    const std::map<std::string, double>& metrics,
    const std::vector<std::pair<std::string, std::string>>& events) {
  v1::ReportEventsRequest request;
  *request.mutable_lease() = lease;
  request.set_batch_seq(++batch_);
  for (const auto& [name, value] : metrics) {
    v1::MetricPoint* point = request.add_points();
    point->set_name(name);
    point->set_step(step);
    point->set_value(value);
    point->set_wall_time_ms(NowMs());
  }
  for (const auto& [kind, payload] : events) {
    v1::RunEvent* event = request.add_events();
    event->set_kind(kind);
    event->set_payload_json(payload);
    event->set_time_ms(NowMs());
  }
  v1::ReportEventsResponse response;
  grpc::Status status = stub_->ReportEvents(
      AuthorizedContext(token_, kCallSeconds).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

void FakeWorker::Upload(const v1::LeaseRef& lease, const std::string& name,
                        const std::string& data) {
  auto ctx = AuthorizedContext(token_, kCallSeconds);
  v1::UploadArtifactResponse response;
  auto writer = stub_->UploadArtifact(ctx.get(), &response);
  v1::ArtifactChunk first;
  first.mutable_header()->set_name(name);
  first.mutable_header()->set_size(static_cast<int64_t>(data.size()));
  first.mutable_header()->set_sha256(Sha256Hex(data));
  *first.mutable_lease() = lease;
  bool written = writer->Write(first);
  constexpr size_t kChunk = 256 << 10;
  for (size_t at = 0; written && at < data.size(); at += kChunk) {
    v1::ArtifactChunk chunk;
    chunk.set_data(data.substr(at, kChunk));
    written = writer->Write(chunk);
  }
  EXPECT_TRUE(written) << "upload of " << name << " broke off";
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

void FakeWorker::Finish(const v1::LeaseRef& lease, v1::Outcome outcome,
                        const std::string& reason) {
  v1::FinishRunRequest request;
  *request.mutable_lease() = lease;
  request.set_worker_id(options_.id);
  request.set_outcome(outcome);
  request.set_retryable(false);
  request.set_reason(reason);
  v1::FinishRunResponse response;
  grpc::Status status = stub_->FinishRun(
      AuthorizedContext(token_, kCallSeconds).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace sweepq::testing

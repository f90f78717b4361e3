#include "common/grpc_channel.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sweepq {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
ChannelCredentialsFor(const std::string& tls_ca_file) {
  if (tls_ca_file.empty()) return grpc::InsecureChannelCredentials();
  std::ifstream in(tls_ca_file);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the TLS CA file ", tls_ca_file));
  }
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  return grpc::SslCredentials(ssl);
}

}  // namespace sweepq

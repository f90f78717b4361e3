// Authenticator: turns the `authorization: Bearer TOKEN` metadata of a call
// into the caller's team and role. Only SHA-256 hashes of tokens are stored;
// the presented token is hashed and compared in constant time.
//
// Thread safety: Authenticate may be called from any thread.
#ifndef SWEEPQ_SERVER_AUTH_H_
#define SWEEPQ_SERVER_AUTH_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/store/store.h"

namespace sweepq::server {

class Authenticator {
 public:
  // Successful look-ups are cached for `cache_ttl_ms` (a rotated token stops
  // working within that time). `store` and `clock` must outlive this.
  Authenticator(store::Store* store, const Clock* clock,
                int64_t cache_ttl_ms = 5'000);

  // Returns the principal of `authorization` ("Bearer TOKEN", or the bare
  // token). UNAUTHENTICATED when missing or unknown; PERMISSION_DENIED when
  // the token's role is not `required`.
  absl::StatusOr<store::TeamPrincipal> Authenticate(
      absl::string_view authorization, store::Role required);

  // The two halves of Authenticate, for a call that checks the same token
  // again and again (an event stream checks it before storing each batch):
  // TokenHash is the look-up key of `authorization` (UNAUTHENTICATED when
  // missing or too long); AuthenticateHash is Authenticate given that key.
  static absl::StatusOr<std::string> TokenHash(absl::string_view authorization);
  absl::StatusOr<store::TeamPrincipal> AuthenticateHash(
      const std::string& token_hash, store::Role required);

 private:
  struct Cached {
    store::TeamPrincipal principal;
    std::string hash;
    int64_t expires_ms = 0;
  };
  store::Store* const store_;
  const Clock* const clock_;
  const int64_t cache_ttl_ms_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_AUTH_H_

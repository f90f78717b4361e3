#include "server/auth.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace sweepq::server {
namespace {

constexpr size_t kMaxCacheEntries = 10'000;

const char* RoleName(store::Role role) {
  return role == store::Role::kWorker ? "worker" : "member";
}

}  // namespace

Authenticator::Authenticator(store::Store* store, const Clock* clock,
                             int64_t cache_ttl_ms)
    : store_(store), clock_(clock), cache_ttl_ms_(cache_ttl_ms) {}

absl::StatusOr<store::TeamPrincipal> Authenticator::Authenticate(
    absl::string_view authorization, store::Role required) {
  ASSIGN_OR_RETURN(const std::string hash, TokenHash(authorization));
  return AuthenticateHash(hash, required);
}

absl::StatusOr<std::string> Authenticator::TokenHash(
    absl::string_view authorization) {
  absl::string_view token = absl::StripAsciiWhitespace(authorization);
  if (absl::StartsWithIgnoreCase(token, "bearer ")) {
    token = absl::StripLeadingAsciiWhitespace(token.substr(7));
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "missing team token: send `authorization: Bearer TOKEN` metadata");
  }
  if (token.size() > 512) {
    return absl::UnauthenticatedError("team token rejected");
  }
  return Sha256Hex(token);
}

absl::StatusOr<store::TeamPrincipal> Authenticator::AuthenticateHash(
    const std::string& hash, store::Role required) {
  const int64_t now = clock_->NowMs();
  store::TeamPrincipal principal;
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && it->second.expires_ms > now &&
        ConstantTimeEquals(it->second.hash, hash)) {
      principal = it->second.principal;
      found = true;
    }
  }
  if (!found) {
    absl::StatusOr<store::TeamPrincipal> looked_up = store_->FindToken(hash);
    if (absl::IsNotFound(looked_up.status())) {
      return absl::UnauthenticatedError("team token rejected");
    }
    if (!looked_up.ok()) return looked_up.status();
    principal = *looked_up;
    absl::MutexLock lock(&mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_[hash] = Cached{principal, hash, now + cache_ttl_ms_};
  }
  if (principal.role != required) {
    return absl::PermissionDeniedError(
        absl::StrCat("this call needs a ", RoleName(required), " token; a ",
                     RoleName(principal.role), " token of team '",
                     principal.team_name, "' was sent"));
  }
  return principal;
}

}  // namespace sweepq::server

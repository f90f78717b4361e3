// Hashing and randomness for tokens, lease ids and artifacts (OpenSSL).
#ifndef SWEEPQ_COMMON_CRYPTO_H_
#define SWEEPQ_COMMON_CRYPTO_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace sweepq {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// Incremental SHA-256 for streamed data. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `length` URL-safe characters (A-Z a-z 0-9 - _) from the OS CSPRNG,
// 6 bits of entropy each.
std::string RandomToken(size_t length);

// A random 64-bit value from the OS CSPRNG, never 0.
uint64_t RandomNonZeroU64();

// Compares in time independent of where the strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_CRYPTO_H_

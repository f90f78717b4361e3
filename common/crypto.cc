#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "glog/logging.h"

namespace sweepq {
namespace {

std::string ToHex(const unsigned char* bytes, unsigned int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

// SHA-256 fetched from OpenSSL's default provider once. EVP_sha256()
// makes every EVP_DigestInit_ex look the algorithm up again (an implicit
// fetch through the provider store's locks); a token is hashed on every
// call the coordinator serves, so that look-up showed up in its profile.
const EVP_MD* Sha256Md() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    CHECK(fetched != nullptr) << "OpenSSL has no SHA-256";
    return fetched;
  }();
  return md;
}

void FillRandom(unsigned char* out, int n) {
  // The CSPRNG failing is not an input error: nothing sensible can go on.
  CHECK_EQ(RAND_bytes(out, n), 1) << "OpenSSL RAND_bytes failed";
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  CHECK(impl_->ctx != nullptr);
  CHECK_EQ(EVP_DigestInit_ex(impl_->ctx, Sha256Md(), nullptr), 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(absl::string_view data) {
  CHECK_EQ(EVP_DigestUpdate(impl_->ctx, data.data(), data.size()), 1);
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  CHECK_EQ(EVP_DigestFinal_ex(impl_->ctx, digest, &n), 1);
  return ToHex(digest, n);
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  CHECK_EQ(
      EVP_Digest(data.data(), data.size(), digest, &n, Sha256Md(), nullptr), 1);
  return ToHex(digest, n);
}

std::string RandomToken(size_t length) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out(length, 'A');
  std::string raw(length, '\0');
  FillRandom(reinterpret_cast<unsigned char*>(raw.data()),
             static_cast<int>(length));
  for (size_t i = 0; i < length; ++i) {
    out[i] = kAlphabet[static_cast<unsigned char>(raw[i]) & 63];
  }
  return out;
}

uint64_t RandomNonZeroU64() {
  uint64_t v = 0;
  while (v == 0) FillRandom(reinterpret_cast<unsigned char*>(&v), sizeof(v));
  return v;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace sweepq

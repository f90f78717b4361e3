#include "common/crypto.h"

#include <set>

#include "gtest/gtest.h"

namespace sweepq {
namespace {

TEST(CryptoTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(CryptoTest, IncrementalSha256EqualsOneShot) {
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.FinishHex(), Sha256Hex("abc"));
}

TEST(CryptoTest, RandomTokenIsUrlSafeAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string t = RandomToken(43);
    ASSERT_EQ(t.size(), 43u);
    for (char c : t) {
      EXPECT_TRUE(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')
          << t;
    }
    EXPECT_TRUE(seen.insert(t).second);
  }
}

TEST(CryptoTest, ConstantTimeEqualsComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_NE(RandomNonZeroU64(), 0u);
}

}  // namespace
}  // namespace sweepq

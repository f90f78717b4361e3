#include "common/thread_name.h"

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace sweepq {
namespace {

// Starts a thread, names it from outside, and returns the name the thread
// itself then reads.
std::string NameSeenInside(absl::string_view name) {
  absl::Notification named;
  std::string inside;
  std::thread t([&] {
    named.WaitForNotification();
    inside = ThisThreadName();
  });
  NameThread(t, name);
  named.Notify();
  t.join();
  return inside;
}

TEST(ThreadNameTest, NamesTheGivenThreadOnly) {
  const std::string before = ThisThreadName();
  EXPECT_EQ(NameSeenInside("sweepq-test"), "sweepq-test");
  EXPECT_EQ(ThisThreadName(), before);
}

TEST(ThreadNameTest, ALongNameIsCutToTheKernelsFifteenBytes) {
  EXPECT_EQ(NameSeenInside("sweepq-a-name-longer-than-fifteen"),
            "sweepq-a-name-l");
}

}  // namespace
}  // namespace sweepq

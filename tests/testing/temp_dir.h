// TempDir: a fresh directory under $TEST_TMPDIR or /tmp, removed on
// destruction. For tests only.
#ifndef SWEEPQ_TESTS_TESTING_TEMP_DIR_H_
#define SWEEPQ_TESTS_TESTING_TEMP_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

#include "glog/logging.h"

namespace sweepq::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(base != nullptr ? base : "/tmp") + "/sweepq-test-XXXXXX";
    CHECK(mkdtemp(pattern.data()) != nullptr) << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_TESTING_TEMP_DIR_H_

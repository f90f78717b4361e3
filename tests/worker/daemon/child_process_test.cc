#include "worker/daemon/child_process.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

// True once `pid` is gone or a zombie (waiting for its new parent to reap
// it), polling for up to 10 s.
bool Gone(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    const size_t paren = text.rfind(')');
    if (paren != std::string::npos && paren + 2 < text.size() &&
        text[paren + 2] == 'Z') {
      return true;
    }
    usleep(10'000);
  }
  return false;
}

class ChildProcessTest : public ::testing::Test {
 protected:
  ChildSpec Shell(const std::string& script) {
    ChildSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.env = {"PATH=/usr/bin:/bin", "FOO=bar"};
    spec.stderr_path = dir_.Join("stderr.log");
    return spec;
  }

  static std::string ReadAll(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
    return out;
  }

  std::string Stderr() {
    std::ifstream in(dir_.Join("stderr.log"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  testing::TempDir dir_;
};

TEST_F(ChildProcessTest, ExitStatusStdoutStderrAndEnvironment) {
  auto child = ChildProcess::Start(
      Shell("echo out=$FOO; echo token=${SWEEPQ_WORKER_TOKEN-unset}; "
            "echo oops >&2; exit 3"));
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(ReadAll((*child)->stdout_fd()), "out=bar\ntoken=unset\n");
  ASSERT_TRUE((*child)->WaitForExit(absl::Seconds(10)));
  const ExitStatus status = (*child)->exit_status();
  EXPECT_FALSE(status.signaled);
  EXPECT_EQ(status.code, 3);
  EXPECT_EQ(status.Describe(), "exit status 3");
  EXPECT_EQ(Stderr(), "oops\n");
}

TEST_F(ChildProcessTest, DeathBySignalIsReported) {
  auto child = ChildProcess::Start(Shell("kill -9 $$"));
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE((*child)->WaitForExit(absl::Seconds(10)));
  EXPECT_TRUE((*child)->exit_status().signaled);
  EXPECT_EQ((*child)->exit_status().signal, SIGKILL);
  EXPECT_THAT((*child)->exit_status().Describe(), HasSubstr("signal 9"));
}

TEST_F(ChildProcessTest, SignalReachesEverythingTheChildStarted) {
  // The shell starts a grandchild and waits; SIGTERM to the group must end
  // both (else the pipe stays open and the read below never ends).
  auto child = ChildProcess::Start(Shell("sleep 300 & echo $!; wait"));
  ASSERT_TRUE(child.ok());
  std::string line;
  char c;
  while (read((*child)->stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
  const pid_t grandchild = std::stoi(line);
  EXPECT_FALSE((*child)->WaitForExit(absl::Milliseconds(50)));
  (*child)->Signal(SIGTERM);
  ASSERT_TRUE((*child)->WaitForExit(absl::Seconds(10)));
  EXPECT_EQ(ReadAll((*child)->stdout_fd()), "");  // EOF: no writer left
  EXPECT_TRUE(Gone(grandchild));
}

TEST_F(ChildProcessTest, WhatTheChildLeavesBehindIsKilledWhenItExits) {
  auto child = ChildProcess::Start(Shell("sleep 300 & echo $!"));
  ASSERT_TRUE(child.ok());
  std::string out = ReadAll((*child)->stdout_fd());  // ends: sleep was killed
  ASSERT_TRUE((*child)->WaitForExit(absl::Seconds(10)));
  EXPECT_EQ((*child)->exit_status().code, 0);
  EXPECT_TRUE(Gone(std::stoi(out)));
}

TEST_F(ChildProcessTest, OnExitIsCalledOnce) {
  std::atomic<int> calls{0};
  ChildSpec spec = Shell("exit 0");
  spec.on_exit = [&calls] { ++calls; };
  auto child = ChildProcess::Start(spec);
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE((*child)->WaitForExit(absl::Seconds(10)));
  child->reset();
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(ChildProcessTest, DestroyingARunningChildKillsIt) {
  pid_t pid;
  {
    auto child = ChildProcess::Start(Shell("exec sleep 300"));
    ASSERT_TRUE(child.ok());
    pid = (*child)->pid();
  }
  EXPECT_NE(kill(pid, 0), 0);  // reaped by the destructor
}

TEST_F(ChildProcessTest, AProgramThatCannotRunIsAnErrorNotAnExitStatus) {
  ChildSpec spec = Shell("");
  spec.argv = {dir_.Join("no-such-program")};
  auto child = ChildProcess::Start(spec);
  ASSERT_FALSE(child.ok());
  EXPECT_THAT(child.status().message(), HasSubstr("no-such-program"));
  EXPECT_THAT(child.status().message(), HasSubstr("No such file"));
}

}  // namespace
}  // namespace sweepq::worker

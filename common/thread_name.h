// Thread names, so `top -H`, `ps -L`, perf and gdb tell the coordinator's
// writer from its expiry sweeper and gRPC's pollers.
#ifndef SWEEPQ_COMMON_THREAD_NAME_H_
#define SWEEPQ_COMMON_THREAD_NAME_H_

#include <string>
#include <thread>

#include "absl/strings/string_view.h"

namespace sweepq {

// Names `thread` (started, not joined) before it is observed: the name is
// set when this returns. Linux keeps 15 bytes of a name; a longer one is cut
// there.
void NameThread(std::thread& thread, absl::string_view name);

// The calling thread's name as the kernel has it ("" if unreadable).
std::string ThisThreadName();

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_THREAD_NAME_H_

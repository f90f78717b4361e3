#include "common/thread_name.h"

#include <pthread.h>

#include <string>

namespace sweepq {

void NameThread(std::thread& thread, absl::string_view name) {
  std::string cut(name.substr(0, 15));
  pthread_setname_np(thread.native_handle(), cut.c_str());
}

std::string ThisThreadName() {
  char name[16] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0) return "";
  return name;
}

}  // namespace sweepq

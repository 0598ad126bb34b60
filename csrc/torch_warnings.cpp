// libtorch's warnings (TORCH_WARN) handed to voxlab instead of printed raw
// ("[W1201 12:00:00.000 ReduceOps.cpp:1831] Warning: ..."): voxlab prints
// them as its own warnings, naming the function that was running
// (src/torch_warnings.rs).
#include <c10/util/Exception.h>

#include <cstddef>
#include <string>

extern "C" void voxlab_torch_warning(const char* msg, std::size_t len);

namespace {

class ToVoxlab : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    const std::string& msg = warning.msg();
    voxlab_torch_warning(msg.data(), msg.size());
  }
};

}  // namespace

// c10 keeps the handler per thread: called once on each thread that runs
// libtorch operations for a script.
extern "C" void voxlab_route_torch_warnings() {
  static ToVoxlab handler;
  c10::WarningUtils::set_warning_handler(&handler);
}

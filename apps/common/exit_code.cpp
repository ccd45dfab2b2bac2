#include "exit_code.hpp"

#include <hello/error.hpp>

namespace hello::app {

bool is_shortage(const boost::system::error_code& ec) noexcept {
    return is_resource_exhaustion(ec) || ec == boost::system::errc::resource_unavailable_try_again;
}

startup_error uncaught_system_error(const boost::system::error_code& ec, const std::string& what) {
    if (is_shortage(ec)) return {exit_code::os_error, "cannot run: " + ec.message()};
    return {exit_code::software, "internal error: " + what};
}

}  // namespace hello::app

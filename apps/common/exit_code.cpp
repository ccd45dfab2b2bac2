#include "exit_code.hpp"

#include <hello/error.hpp>

#include <boost/system/system_error.hpp>

#include <new>
#include <system_error>

namespace hello::app {

bool is_shortage(const boost::system::error_code& ec) noexcept {
    return is_resource_exhaustion(ec) || ec == boost::system::errc::resource_unavailable_try_again;
}

startup_error uncaught_system_error(const boost::system::error_code& ec, const std::string& what) {
    if (is_shortage(ec)) return {exit_code::os_error, "cannot run: " + ec.message()};
    return {exit_code::software, "internal error: " + what};
}

startup_error uncaught(std::exception_ptr failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
        return uncaught_system_error(e.code(), e.what());
    } catch (const std::system_error& e) {
        return uncaught_system_error(e.code(), e.what());
    } catch (const std::bad_alloc&) {
        return {exit_code::os_error, "cannot run: out of memory"};
    } catch (const std::exception& e) {
        return {exit_code::software, std::string("internal error: ") + e.what()};
    } catch (...) {
        return {exit_code::software, "internal error: unknown exception"};
    }
}

}  // namespace hello::app

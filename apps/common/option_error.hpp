#pragma once

#include <boost/program_options/errors.hpp>

#include <string>

namespace hello::app {

// One line for what Boost.Program_options refused, built without its what(): that fills its
// message template in a loop that never ends when an option name or a config line itself
// holds a placeholder such as `%canonical_option%`, and grows without bound around one.
[[nodiscard]] std::string option_error_text(const boost::program_options::error& e);

}  // namespace hello::app

#include "option_error.hpp"

#include <hello/error.hpp>

namespace po = boost::program_options;

namespace hello::app {

std::string option_error_text(const po::error& e) {
    if (const auto* line = dynamic_cast<const po::invalid_config_file_syntax*>(&e))
        return "invalid line " + in_quotes(line->tokens()) + " (expected NAME = VALUE)";
    const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
    // Errors without an option name have fixed messages, free of placeholders.
    if (!named) return printable(e.what());
    const auto name = in_quotes(named->get_option_name());
    if (dynamic_cast<const po::unknown_option*>(&e)) return "unknown option " + name;
    if (dynamic_cast<const po::ambiguous_option*>(&e)) return "ambiguous option " + name;
    if (dynamic_cast<const po::multiple_occurrences*>(&e)) return "option " + name + " given more than once";
    if (const auto* syntax = dynamic_cast<const po::invalid_command_line_syntax*>(&e)) {
        switch (syntax->kind()) {
            case po::invalid_syntax::missing_parameter:
                return "option " + name + " needs a value";
            case po::invalid_syntax::extra_parameter:
                return "option " + name + " takes no value";
            default:
                return "option " + name + " is written wrongly";
        }
    }
    return "invalid option " + name;
}

}  // namespace hello::app

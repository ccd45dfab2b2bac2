#include "server_options.hpp"

#include "option_error.hpp"
#include "parse.hpp"

#include <hello/error.hpp>
#include <hello/version.hpp>

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unordered_set>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace po = boost::program_options;

namespace hello::app {

std::string_view to_string(config_source s) noexcept {
    switch (s) {
        case config_source::defaults:
            return "default";
        case config_source::file:
            return "config file";
        case config_source::environment:
            return "environment";
        case config_source::command_line:
            return "command line";
    }
    return "?";
}

namespace {

// One entry per setting: its option, how its text becomes a value, and how the value is
// printed back. The option table, the configuration and --print-config all come from here,
// so a new setting is one entry. Values are read as text and converted strictly here:
// program_options would take "-1" for an unsigned and wrap it around.
struct setting {
    const char* name;        // --NAME, NAME = in the file, HELLO_NAME (upper case, '_' for '-')
    const char* short_name;  // or nullptr
    const char* value_name;
    const char* help;
    const char* expected;  // what a valid value looks like, for the error
    // Stores the value `text` stands for; false when it stands for none.
    std::function<bool(server_invocation&, const std::string& text)> read;
    std::function<std::vector<std::string>(const server_invocation&)> show;
    // For a list (repeatable, and comma-separated in HELLO_*): empties it before read() is
    // given one item at a time, as a list replaces the defaults rather than adding to them.
    std::function<void(server_invocation&)> clear = {};
};

// Seconds where 0 means "never".
std::function<bool(server_invocation&, const std::string&)> seconds_in(
    std::chrono::milliseconds server_config::*field) {
    return [=](server_invocation& inv, const std::string& text) {
        const auto d = parse_seconds(text);
        if (d) inv.config.*field = *d;
        return d.has_value();
    };
}

std::function<std::vector<std::string>(const server_invocation&)> seconds_of(
    std::chrono::milliseconds server_config::*field) {
    return [=](const server_invocation& inv) { return std::vector{format_seconds(inv.config.*field)}; };
}

// A user or group as a name or a number: ids are what the kernel compares.
std::optional<unsigned> user_id(const std::string& text) {
    if (const auto n = parse_number<unsigned>(text)) return n;
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwnam_r(text.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
    return found->pw_uid;
}

std::optional<unsigned> group_id(const std::string& text) {
    if (const auto n = parse_number<unsigned>(text)) return n;
    std::vector<char> buffer(16384);
    group entry{};
    group* found = nullptr;
    if (::getgrnam_r(text.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
    return found->gr_gid;
}

std::function<bool(server_invocation&, const std::string&)> ids_into(
    std::vector<unsigned> server_config::*field, std::optional<unsigned> (*lookup)(const std::string&)) {
    return [=](server_invocation& inv, const std::string& text) {
        const auto id = lookup(text);
        if (id) (inv.config.*field).push_back(*id);
        return id.has_value();
    };
}

std::function<std::vector<std::string>(const server_invocation&)> ids_of(std::vector<unsigned> server_config::*field) {
    return [=](const server_invocation& inv) {
        std::vector<std::string> out;
        for (const auto id : inv.config.*field) out.push_back(std::to_string(id));
        return out;
    };
}

template <typename Number>
std::function<bool(server_invocation&, const std::string&)> number_in(Number server_config::*field, Number low,
                                                                      Number high, int base = 10) {
    return [=](server_invocation& inv, const std::string& text) {
        const auto n = parse_number<Number>(text, base);
        if (!n || *n < low || *n > high) return false;
        inv.config.*field = *n;
        return true;
    };
}

template <typename Number>
std::function<std::vector<std::string>(const server_invocation&)> number_of(Number server_config::*field) {
    return [=](const server_invocation& inv) { return std::vector{std::to_string(inv.config.*field)}; };
}

const std::vector<setting>& settings() {
    static const std::vector<setting> table{
        {"listen", "l", "ENDPOINT",
         "endpoint to serve, repeatable: unix:/path, unix:@abstract, tcp:host:port, tcp:[v6]:port "
         "(default unix:/tmp/uds_socket; HELLO_LISTEN takes a comma-separated list)",
         "an endpoint",
         [](server_invocation& inv, const std::string& text) {
             try {
                 inv.config.listen.push_back(endpoint::parse(text));
             } catch (const error& e) {
                 throw startup_error(exit_code::config, e.what());
             }
             return true;
         },
         [](const server_invocation& inv) {
             std::vector<std::string> out;
             for (const auto& ep : inv.config.listen) out.push_back(ep.to_string());
             return out;
         },
         [](server_invocation& inv) { inv.config.listen.clear(); }},
        {"framing", nullptr, "raw|line",
         "raw: each chunk read gets 'hello client'; line: each line gets 'hello client\\n' (default raw)",
         "raw or line",
         [](server_invocation& inv, const std::string& text) {
             const auto f = parse_framing(text);
             if (f) inv.config.framing = *f;
             return f.has_value();
         },
         [](const server_invocation& inv) { return std::vector{std::string(to_string(inv.config.framing))}; }},
        {"threads", nullptr, "N", "event loops, one thread each (default 1)", "a number from 1 to 1024",
         number_in(&server_config::threads, 1U, 1024U), number_of(&server_config::threads)},
        {"log-level", nullptr, "LEVEL", "trace, debug, info, warn, error or off (default info)",
         "trace, debug, info, warn, error or off",
         [](server_invocation& inv, const std::string& text) {
             const auto l = parse_log_level(text);
             if (l) inv.log_level = *l;
             return l.has_value();
         },
         [](const server_invocation& inv) { return std::vector{std::string(to_string(inv.log_level))}; }},
        {"socket-mode", nullptr, "OCTAL", "permissions of UNIX socket files (default 0660)",
         "an octal mode such as 0660", number_in(&server_config::socket_mode, 0U, 0777U, 8),
         [](const server_invocation& inv) {
             char mode[8];
             std::snprintf(mode, sizeof mode, "%04o", inv.config.socket_mode);
             return std::vector{std::string(mode)};
         }},
        {"max-request-bytes", nullptr, "N", "longest request line in line framing (default 4096)",
         "a number from 1 to 16777216",
         number_in(&server_config::max_request_bytes, std::size_t{1}, std::size_t{1} << 24),
         number_of(&server_config::max_request_bytes)},
        {"drain-timeout", nullptr, "SECONDS",
         "on SIGTERM/SIGINT, how long open connections may finish before they are closed (default 10)",
         "seconds from 0 to 86400, to the millisecond", seconds_in(&server_config::drain_timeout),
         seconds_of(&server_config::drain_timeout)},
        {"max-connections", nullptr, "N",
         "connections open at once; more are refused (default 0: the descriptor limit less 64)",
         "a number from 0 to 10000000",
         number_in(&server_config::max_connections, std::size_t{0}, std::size_t{10'000'000}),
         number_of(&server_config::max_connections)},
        {"idle-timeout", nullptr, "SECONDS",
         "close a connection that sends no request for that long (default 0: never)",
         "seconds from 0 to 86400, to the millisecond", seconds_in(&server_config::idle_timeout),
         seconds_of(&server_config::idle_timeout)},
        {"write-timeout", nullptr, "SECONDS",
         "close a connection whose peer takes no reply for that long (default 30; 0: never)",
         "seconds from 0 to 86400, to the millisecond", seconds_in(&server_config::write_timeout),
         seconds_of(&server_config::write_timeout)},
        {"socket-group", nullptr, "GROUP", "group of UNIX socket files, a name or a number (default: the server's)",
         "a group name or number",
         [](server_invocation& inv, const std::string& text) {
             inv.config.socket_group = group_id(text);
             return inv.config.socket_group.has_value();
         },
         [](const server_invocation& inv) {
             return inv.config.socket_group ? std::vector{std::to_string(*inv.config.socket_group)}
                                            : std::vector<std::string>{};
         }},
        {"allow-uid", nullptr, "USERS",
         "UNIX peers let in by user, names or numbers, repeatable or comma-separated (default: anyone the socket "
         "file's mode lets connect)",
         "a user name or number", ids_into(&server_config::allow_uids, user_id), ids_of(&server_config::allow_uids),
         [](server_invocation& inv) { inv.config.allow_uids.clear(); }},
        {"allow-gid", nullptr, "GROUPS",
         "UNIX peers let in by group (primary or supplementary), names or numbers, repeatable or comma-separated",
         "a group name or number", ids_into(&server_config::allow_gids, group_id), ids_of(&server_config::allow_gids),
         [](server_invocation& inv) { inv.config.allow_gids.clear(); }},
    };
    return table;
}

po::options_description settings_description() {
    po::options_description d("Settings (also HELLO_<NAME> in the environment, or NAME = VALUE in --config)");
    for (const auto& s : settings()) {
        const auto spelling = std::string(s.name) + (s.short_name ? std::string(",") + s.short_name : "");
        po::value_semantic* value = nullptr;
        if (s.clear)
            value = po::value<std::vector<std::string>>()->value_name(s.value_name);
        else
            value = po::value<std::string>()->value_name(s.value_name);
        d.add_options()(spelling.c_str(), value, s.help);
    }
    return d;
}

po::options_description command_description() {
    po::options_description d("Commands");
    // One option per stanza: the formatter would run the chain together.
    // clang-format off
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config", po::value<std::string>()->value_name("FILE"),
         "read settings from FILE (INI: NAME = VALUE); also HELLO_CONFIG")
        ("check-config", "validate the settings and endpoints without binding, print nothing, exit 0 (64, 69 or 78 on errors)")
        ("print-config", "print the effective configuration with where each value came from, then exit");
    // clang-format on
    return d;
}

// HELLO_LOG_LEVEL -> log-level, for the options that exist; anything else (lower case
// included, as environment names are case-sensitive) is ignored, as other programs'
// variables may share the prefix.
std::string environment_name_to_option(std::string_view var, const po::options_description& known) {
    constexpr std::string_view prefix = "HELLO_";
    if (!var.starts_with(prefix) || var.size() == prefix.size()) return {};
    std::string name;
    for (char c : var.substr(prefix.size())) {
        if (c == '_')
            name += '-';
        else if (c >= 'A' && c <= 'Z')
            name += static_cast<char>(c - 'A' + 'a');
        else
            return {};
    }
    return known.find_nothrow(name, false) ? name : std::string{};
}

std::string trim(std::string_view text) {
    constexpr std::string_view blanks = " \t";
    const auto first = text.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {};
    return std::string(text.substr(first, text.find_last_not_of(blanks) - first + 1));
}

bool is_list(const std::string& name) {
    const auto& all = settings();
    return std::any_of(all.begin(), all.end(), [&](const setting& s) { return name == s.name && s.clear; });
}

// "a, b,c" as its items, blanks around the commas dropped.
std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream list(text);
    for (std::string item; std::getline(list, item, ',');)
        if (auto trimmed = trim(item); !trimmed.empty()) items.push_back(std::move(trimmed));
    return items;
}

po::parsed_options parse_environment(const char* const* envp, const po::options_description& known) {
    po::parsed_options parsed(&known);
    for (auto* e = envp; e && *e; ++e) {
        std::string_view entry(*e);
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos) continue;
        const auto name = environment_name_to_option(entry.substr(0, eq), known);
        if (name.empty()) continue;
        std::string value(entry.substr(eq + 1));
        if (is_list(name)) {
            // One variable carries the whole list, written with or without blanks after the commas.
            po::basic_option<char> opt(name, split_list(value));
            parsed.options.push_back(opt);
        } else {
            parsed.options.push_back(po::basic_option<char>(name, {value}));
        }
    }
    return parsed;
}

// Values gathered from one source, before they are merged.
struct layer {
    config_source source;
    po::variables_map values;
};

struct merged {
    std::map<std::string, std::pair<config_source, po::variable_value>> values;

    [[nodiscard]] const std::pair<config_source, po::variable_value>* find(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? nullptr : &it->second;
    }
};

merged merge(const std::vector<layer>& layers) {
    merged m;
    for (const auto& l : layers)
        for (const auto& [name, value] : l.values)
            if (!value.defaulted()) m.values.try_emplace(name, l.source, value);
    return m;
}

// A UNIX socket needs an existing directory to live in; say so now rather than at bind().
void check_parent_directory(const endpoint& ep) {
    if (!ep.is_unix() || ep.as_unix().abstract) return;
    const auto parent = std::filesystem::path(ep.as_unix().name).parent_path();
    std::error_code ec;
    if (parent.empty() || std::filesystem::is_directory(parent, ec)) return;
    const auto where = "cannot use " + in_quotes(ep.to_string()) + ": directory " + in_quotes(parent.string());
    // Only a directory that is not there is the configuration's fault; one the server may not
    // look into is the endpoint's (exit 69, as when bind() is refused).
    if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
        throw startup_error(exit_code::unavailable, where + ": " + ec.message());
    throw startup_error(exit_code::config, where + " does not exist");
}

// The same socket twice would make the server collide with itself at bind time and blame
// "another" server. Compared as written, a file by its directory's canonical path (so that a
// symlinked directory is seen through) and its name, before any host name is resolved: tcp:localhost:P beside
// tcp:127.0.0.1:P still meets at bind time. A port 0 asks for a fresh port each time and may repeat.
void check_no_repeats(const std::vector<endpoint>& listen) {
    auto key = [](const endpoint& ep) {
        if (!ep.is_unix() || ep.as_unix().abstract) return ep.to_string();
        std::error_code ec;
        const std::filesystem::path path(ep.as_unix().name);
        const auto directory = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec).parent_path(), ec);
        return "unix:" + (directory / path.filename()).string();
    };
    // Each key once, into a set: a file may list thousands of endpoints, and this runs again
    // on every reload, on the loop that serves.
    std::unordered_set<std::string> seen;
    for (const auto& ep : listen) {
        if (!ep.is_unix() && ep.as_tcp().port == 0) continue;
        if (!seen.insert(key(ep)).second)
            throw startup_error(exit_code::config, "endpoint " + in_quotes(ep.to_string()) + " is listed twice");
    }
}

[[noreturn]] void bad_value(config_source from, const std::string& name, const std::string& value,
                            const std::string& expected) {
    const auto code = from == config_source::file ? exit_code::config : exit_code::usage;
    throw startup_error(code, "invalid value " + in_quotes(value) + " for " + name + " (from " +
                                  std::string(to_string(from)) + "): expected " + expected);
}

// One setting's value, from one source, into `inv`; a bad value throws, naming the source.
void apply_setting(const setting& s, config_source from, const po::variable_value& value, server_invocation& inv) {
    if (s.clear) {
        s.clear(inv);
        std::size_t items_given = 0;
        for (const auto& given : value.as<std::vector<std::string>>()) {
            // An endpoint may hold a comma; the other lists take "a,b" in one value too.
            const auto items = std::string_view(s.name) == "listen" ? std::vector{given} : split_list(given);
            items_given += items.size();
            for (const auto& item : items)
                if (!s.read(inv, item)) bad_value(from, s.name, item, s.expected);
        }
        // An empty allowlist would let everyone in: a variable left empty in a unit file
        // must not silently drop the only access control an abstract socket has.
        if (items_given == 0 && std::string_view(s.name) != "listen")
            bad_value(from, s.name, "", std::string(s.expected) + " (to let anyone in, leave " + s.name + " out)");
    } else if (const auto text = value.as<std::string>(); !s.read(inv, text)) {
        bad_value(from, s.name, text, s.expected);
    }
}

// The values another source overrides are checked all the same: a typo in the file must not
// wait, unnoticed by --check-config and reloads, for the day the flag that hides it is dropped.
void check_overridden(const std::vector<layer>& layers, const merged& m) {
    for (const auto& l : layers) {
        server_invocation scratch;
        for (const auto& s : settings()) {
            const auto it = l.values.find(s.name);
            if (it == l.values.end() || it->second.defaulted() || m.find(s.name)->first == l.source) continue;
            apply_setting(s, l.source, it->second, scratch);
        }
    }
}

void apply_settings(const merged& m, server_invocation& inv) {
    for (const auto& s : settings()) {
        const auto* v = m.find(s.name);
        if (!v) continue;
        const auto& [from, value] = *v;
        inv.sources[s.name] = from;
        apply_setting(s, from, value, inv);
    }
    if (const auto* v = m.find("listen"); v && inv.config.listen.empty())
        throw startup_error(exit_code::config,
                            "no endpoint to listen on (listen from " + std::string(to_string(v->first)) + " is empty)");
    for (const auto& ep : inv.config.listen) check_parent_directory(ep);
    check_no_repeats(inv.config.listen);
}

[[noreturn]] void unreadable(const std::string& path, const std::string& why, int err = 0) {
    const auto code = is_shortage(boost::system::error_code(err, boost::system::system_category()))
                          ? exit_code::os_error
                          : exit_code::config;
    throw startup_error(code, "cannot read config file " + in_quotes(path) + ": " + why);
}

// The whole file, refused unless it is a regular file of sane size: a FIFO would block,
// /dev/zero never ends, and a read error must not pass for an empty file of defaults.
std::string read_config_text(const std::string& path) {
    constexpr std::size_t limit = 1 << 20;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int err = errno;
        unreadable(path, std::strerror(err), err);
    }
    const struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_on_return{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        unreadable(path, std::strerror(err), err);
    }
    if (S_ISDIR(st.st_mode)) unreadable(path, "it is a directory");
    if (!S_ISREG(st.st_mode)) unreadable(path, "it is not a regular file");
    if (static_cast<std::uintmax_t>(st.st_size) > limit) unreadable(path, "it is larger than 1 MiB");
    std::string text;
    char chunk[16 * 1024];
    for (;;) {
        const auto n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            unreadable(path, std::strerror(err), err);
        }
        if (n == 0) return text;
        // A file may grow after fstat(), and /proc files say they are empty.
        if (text.size() + static_cast<std::size_t>(n) > limit) unreadable(path, "it is larger than 1 MiB");
        text.append(chunk, static_cast<std::size_t>(n));
    }
}

po::variables_map read_config_file(const std::string& path, const po::options_description& settings) {
    std::istringstream in(read_config_text(path));
    po::variables_map vm;
    try {
        po::store(po::parse_config_file(in, settings, false), vm);
    } catch (const po::error& e) {
        throw startup_error(exit_code::config, "config file " + in_quotes(path) + ": " + option_error_text(e));
    }
    return vm;
}

// Why `value` would not read back from a config file as itself (empty when it would): the
// format ends a value at `#` or a line break and trims blanks from both ends.
std::string_view why_unwritable(std::string_view value) {
    if (value.find('#') != std::string_view::npos) return "'#' cannot appear in a config file";
    for (const char c : value)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return "a control character (shown as \\xNN) cannot appear in a config file";
    if (value.starts_with(' ') || value.ends_with(' ')) return "a config file trims blanks at either end of a value";
    return {};
}

}  // namespace

server_invocation parse_server_invocation(int argc, const char* const argv[], const char* const* envp) {
    const auto settings = settings_description();
    const auto commands = command_description();
    po::options_description all;
    all.add(commands).add(settings);

    po::variables_map cli;
    po::variables_map env;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional({}).run(), cli);
        po::options_description env_known;
        env_known.add(settings).add_options()("config", po::value<std::string>(), "");
        po::store(parse_environment(envp, env_known), env);
    } catch (const po::error& e) {
        throw startup_error(exit_code::usage, option_error_text(e));
    }

    server_invocation inv;
    std::ostringstream help;
    help << "Usage: hello-server [OPTIONS]\n"
            "Answers every request on its endpoints with 'hello client'.\n\n"
         << commands << "\n"
         << settings
         << "\nExit codes: 0 clean stop, 64 usage, 69 endpoint unavailable, 70 internal error,\n"
            "71 out of system resources (descriptors, memory), 78 bad configuration\n";
    inv.help_text = help.str();
    if (cli.count("help")) {
        inv.what = server_invocation::action::help;
        return inv;
    }
    if (cli.count("version")) {
        inv.what = server_invocation::action::version;
        return inv;
    }

    std::vector<layer> layers;
    layers.push_back({config_source::command_line, std::move(cli)});
    layers.push_back({config_source::environment, std::move(env)});
    const auto& config_from = layers[0].values.count("config") ? layers[0].values : layers[1].values;
    if (config_from.count("config"))
        layers.push_back({config_source::file, read_config_file(config_from["config"].as<std::string>(), settings)});

    const auto m = merge(layers);
    apply_settings(m, inv);
    check_overridden(layers, m);
    if (m.find("check-config")) inv.what = server_invocation::action::check_config;
    if (m.find("print-config")) inv.what = server_invocation::action::print_config;
    return inv;
}

std::string describe(const server_invocation& inv) {
    std::ostringstream out;
    out << "# hello-server " << version << " effective configuration\n";
    for (const auto& s : settings()) {
        auto it = inv.sources.find(s.name);
        const auto origin = to_string(it == inv.sources.end() ? config_source::defaults : it->second);
        const auto values = s.show(inv);
        if (values.empty()) out << "# " << s.name << " is not set  # " << origin << "\n";
        for (const auto& value : values) {
            // A value the file format cannot carry is left commented out, with the reason,
            // rather than printed as a line that reads back as another value.
            if (const auto why = why_unwritable(value); !why.empty())
                out << "# " << s.name << " = " << printable(value) << "  # " << origin << "; " << why << "\n";
            else
                out << s.name << " = " << value << "  # " << origin << "\n";
        }
    }
    return out.str();
}

}  // namespace hello::app

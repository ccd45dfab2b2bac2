// The server's config file parser on any file content, as
//   hello-server --config PATH --check-config
// with an empty environment. It either returns or throws hello::app::startup_error for exit
// 78 (bad configuration) with a one-line printable message; anything else (another
// exception, a crash, a sanitizer report) aborts.
//
// When it returns, the documented read-back property is checked: describe() (what
// --print-config prints) is a valid config file, and reading it gives the same settings, so
// describe() of that equals the first one but for the origin comments. A value the file
// format cannot carry is printed commented out with the reason (README: a '#', a control
// character, a blank at an end); such a configuration is not expected to read back.

#include "check.hpp"

#include "server_options.hpp"

#include <hello/error.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>
#include <typeinfo>

#include <sys/stat.h>
#include <unistd.h>

namespace {

// A file of this process's own, created once and rewritten for every input: in /dev/shm
// when there is one, so that the fuzzer does not wear a disk, or in $HELLO_FUZZ_SCRATCH_DIR
// (.ci/fuzz.sh gives a directory it removes afterwards: a crash or a hang ends the process
// without running destructors, and would leave the file behind).
class scratch_file {
public:
    explicit scratch_file(const char* tag) {
        struct stat st {};
        std::string dir = ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        if (const char* given = std::getenv("HELLO_FUZZ_SCRATCH_DIR"); given && *given) dir = given;
        path_ = dir + "/hello-fuzz-" + tag + "-XXXXXX";
        fd_ = ::mkstemp(path_.data());
        FUZZ_CHECK(fd_ >= 0, "mkstemp %s: %s", path_.c_str(), std::strerror(errno));
    }
    ~scratch_file() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    scratch_file(const scratch_file&) = delete;
    scratch_file& operator=(const scratch_file&) = delete;

    const std::string& write(std::string_view text) {
        FUZZ_CHECK(::ftruncate(fd_, 0) == 0, "ftruncate %s: %s", path_.c_str(), std::strerror(errno));
        std::size_t done = 0;
        while (done < text.size()) {
            const auto n = ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(done));
            FUZZ_CHECK(n > 0 || errno == EINTR, "write %s: %s", path_.c_str(), std::strerror(errno));
            if (n > 0) done += static_cast<std::size_t>(n);
        }
        return path_;
    }

private:
    std::string path_;
    int fd_ = -1;
};

scratch_file& input_file() {
    static scratch_file file("config");
    return file;
}

scratch_file& readback_file() {
    static scratch_file file("readback");
    return file;
}

hello::app::server_invocation check_config(const std::string& path) {
    const char* const argv[] = {"hello-server", "--config", path.c_str(), "--check-config", nullptr};
    const char* const envp[] = {nullptr};
    return hello::app::parse_server_invocation(4, argv, envp);
}

// describe() less its origin comments ("  # config file", "  # default", ...).
std::string without_origins(const std::string& text) {
    std::istringstream in(text);
    std::string out;
    for (std::string line; std::getline(in, line);) {
        if (const auto origin = line.find("  # "); origin != std::string::npos) line.erase(origin);
        out += line;
        out += '\n';
    }
    return out;
}

// A value describe() left commented out because the file format cannot carry it.
bool has_commented_out_value(const std::string& text) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("# ") && line.find(" = ") != std::string::npos) return true;
    return false;
}

void check_startup_error(const hello::app::startup_error& e, const char* when) {
    FUZZ_CHECK(e.code() == hello::app::exit_code::config, "%s: startup_error with exit code %d, not 78: %s", when,
               hello::app::to_int(e.code()), e.what());
    FUZZ_CHECK(hello::fuzz::printable_line(e.what()), "%s: error message not one printable line: %s", when,
               hello::printable(e.what()).c_str());
}

void check_reads_back(const hello::app::server_invocation& inv) {
    FUZZ_CHECK(inv.what == hello::app::server_invocation::action::check_config, "action %d, not check_config",
               static_cast<int>(inv.what));
    FUZZ_CHECK(!inv.config.listen.empty(), "a configuration with no endpoint accepted");
    const auto printed = hello::app::describe(inv);
    if (has_commented_out_value(printed)) return;
    try {
        const auto again = check_config(readback_file().write(printed));
        const auto reprinted = hello::app::describe(again);
        FUZZ_CHECK(without_origins(reprinted) == without_origins(printed),
                   "describe() does not read back as itself.\n--- printed:\n%s--- read back and printed again:\n%s",
                   printed.c_str(), reprinted.c_str());
    } catch (const hello::app::startup_error& e) {
        FUZZ_CHECK(false, "describe() output is not a valid config file: %s\n--- printed:\n%s", e.what(),
                   printed.c_str());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        check_reads_back(check_config(input_file().write(input)));
    } catch (const hello::app::startup_error& e) {
        check_startup_error(e, "parse");
    } catch (const std::exception& e) {
        FUZZ_CHECK(false, "parse_server_invocation threw %s, not startup_error: %s", typeid(e).name(), e.what());
    }
    return 0;
}

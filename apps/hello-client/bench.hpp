#pragma once

namespace hello::bench {

// `hello-client bench [OPTIONS]`: argv[0] is "bench". Returns the process's exit code.
int main(int argc, char* argv[]);

}  // namespace hello::bench

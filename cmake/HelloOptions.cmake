# hello::options: warnings and sanitizers every target of the project builds with.
add_library(hello_options INTERFACE)
add_library(hello::options ALIAS hello_options)

target_compile_options(hello_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough
  # g++ only: clang has no such warnings and, under -Werror, fails on the unknown option.
  $<$<CXX_COMPILER_ID:GNU>:-Wduplicated-cond> $<$<CXX_COMPILER_ID:GNU>:-Wlogical-op>
  $<$<BOOL:${HELLO_WERROR}>:-Werror>)

if(HELLO_SANITIZE)
  if(NOT HELLO_SANITIZE MATCHES "^(address|undefined|address,undefined|undefined,address|thread)$")
    message(FATAL_ERROR "HELLO_SANITIZE must be address, undefined, address,undefined or thread; got '${HELLO_SANITIZE}'")
  endif()
  target_compile_options(hello_options INTERFACE -fsanitize=${HELLO_SANITIZE} -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=all)
  target_link_options(hello_options INTERFACE -fsanitize=${HELLO_SANITIZE})
  if(HELLO_SANITIZE MATCHES "undefined")
    # The vptr check probes memory through a pipe(); with every descriptor in use (as the
    # descriptor-exhaustion test arranges) the probe fails and it reports a bogus bad vptr.
    target_compile_options(hello_options INTERFACE -fno-sanitize=vptr)
  endif()
  if(HELLO_SANITIZE STREQUAL "thread")
    # Asio's handler recycling uses std::atomic_thread_fence, which g++ warns TSan cannot model.
    target_compile_options(hello_options INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
  endif()
endif()

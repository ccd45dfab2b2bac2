# cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=... -DCXX=... -DGENERATOR=... [-DMAKE_PROGRAM=...]
#       [-DCONFIG=...] [-DSANITIZE=...] -P install_and_build.cmake
#
# Installs the built tree into WORK_DIR/prefix, then configures, builds and runs the consumer
# project (CONSUMER_DIR) against that prefix alone, with the same compiler and generator.
# Passes only if every step succeeds and the consumer prints `hello client`.
foreach(var BUILD_DIR WORK_DIR CONSUMER_DIR CXX GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "${var} is not set")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

function(step what)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE rc)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "${what} failed: ${rc}")
  endif()
endfunction()

set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})

set(configure_args -S ${CONSUMER_DIR} -B ${build} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(CONFIG)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${CONFIG})
endif()
if(SANITIZE)
  # A sanitized libhello.a needs the sanitizer runtime in the program that links it.
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE} -fno-omit-frame-pointer"
       -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE})
endif()
step("consumer configure" ${CMAKE_COMMAND} ${configure_args})

# The package must come from the prefix just installed, not from anywhere else on the machine.
file(STRINGS ${build}/CMakeCache.txt hello_dir REGEX "^hello_DIR:")
string(REGEX REPLACE "^hello_DIR:[A-Z]+=" "" hello_dir "${hello_dir}")
cmake_path(IS_PREFIX prefix "${hello_dir}" NORMALIZE from_prefix)
if(NOT from_prefix)
  message(FATAL_ERROR "the consumer found hello in '${hello_dir}', not under '${prefix}'")
endif()

step("consumer build" ${CMAKE_COMMAND} --build ${build} --parallel 2 ${config_args})

set(program ${build}/hello-consumer)
if(CONFIG AND NOT EXISTS ${program})
  set(program ${build}/${CONFIG}/hello-consumer)  # multi-config generators
endif()
execute_process(COMMAND ${program} COMMAND_ECHO STDOUT RESULT_VARIABLE rc OUTPUT_VARIABLE out TIMEOUT 30)
message(STATUS "hello-consumer printed: ${out}")
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "hello-consumer failed: ${rc}")
endif()
if(NOT out MATCHES "(^|\n)hello client\n")
  message(FATAL_ERROR "hello-consumer did not print `hello client`")
endif()

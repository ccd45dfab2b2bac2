# `cmake --install`: the manual pages and the bash completion (both kept under config/).
#
#   config/man/hello-server.8, hello-client.1, hello-server.conf.5 -> share/man/man{8,1,5}/
#   config/bash-completion/hello -> bash-completion's completions directory, once as
#                                   hello-server and once as hello-client (it is looked up by
#                                   the command's name)
#
# The completions directory is bash-completion's own (pkg-config's completionsdir), taken
# relative to its prefix so that an install into another prefix stays under that prefix,
# as config/CMakeLists.txt does with systemd's directories. An absolute
# HELLO_BASH_COMPLETION_DIR is used as it is.
include(GNUInstallDirs)

set(completion_dir share/bash-completion/completions)
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_get_variable(pc_completionsdir bash-completion completionsdir)
  pkg_get_variable(pc_prefix bash-completion prefix)
  if(pc_completionsdir AND pc_prefix AND pc_completionsdir MATCHES "^${pc_prefix}/(.+)$")
    set(completion_dir "${CMAKE_MATCH_1}")
  endif()
endif()
set(HELLO_BASH_COMPLETION_DIR "${completion_dir}" CACHE STRING
    "Where the bash completion is installed (relative: under the install prefix)")

set(hello_docs_dir ${PROJECT_SOURCE_DIR}/config)
install(FILES ${hello_docs_dir}/man/hello-client.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${hello_docs_dir}/man/hello-server.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${hello_docs_dir}/man/hello-server.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
foreach(program IN ITEMS hello-server hello-client)
  install(FILES ${hello_docs_dir}/bash-completion/hello DESTINATION ${HELLO_BASH_COMPLETION_DIR} RENAME ${program})
endforeach()

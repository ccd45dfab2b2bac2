# `cmake --install`: the two programs and the library as a CMake
# package, so that another project can write
#   find_package(hello CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE hello::hello)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS hello-server hello-client RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The configuration file and the systemd units are installed by config/CMakeLists.txt.

set(HELLO_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/hello
    CACHE STRING "Where helloConfig.cmake is installed, relative to the prefix")

install(TARGETS hello EXPORT helloTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Public headers: whatever lib/include/hello/ holds (by directory, so that a header added or
# moved away needs no change here), and the version.hpp generated into the build tree.
get_target_property(hello_source_dir hello SOURCE_DIR)
get_target_property(hello_binary_dir hello BINARY_DIR)
install(DIRECTORY ${hello_source_dir}/include/hello/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hello
        FILES_MATCHING PATTERN "*.hpp")
install(FILES ${hello_binary_dir}/include/hello/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hello)

install(EXPORT helloTargets NAMESPACE hello:: FILE helloTargets.cmake DESTINATION ${HELLO_INSTALL_CMAKEDIR})

# A static hello carries its private dependency (spdlog) into every
# program that links it; helloConfig.cmake then finds them too.
get_target_property(hello_type hello TYPE)
if(hello_type STREQUAL "STATIC_LIBRARY")
  set(HELLO_STATIC ON)
else()
  set(HELLO_STATIC OFF)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/helloConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/helloConfig.cmake
                              INSTALL_DESTINATION ${HELLO_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/helloConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/helloConfig.cmake ${PROJECT_BINARY_DIR}/helloConfigVersion.cmake
        DESTINATION ${HELLO_INSTALL_CMAKEDIR})

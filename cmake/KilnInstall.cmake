# `cmake --install` layout and the exported CMake package, so another project can write
#   find_package(kiln REQUIRED)
#   target_link_libraries(app PRIVATE kiln::kiln)
# <prefix>/include/kiln/{kiln.h, core/**.h, kernels/**.h, ...}  public headers (*.h, *.cuh)
# <prefix>/lib/libkiln_*.a                                       the libraries
# <prefix>/lib/cmake/kiln/kiln{Config,ConfigVersion,Targets}.cmake
# Targets export as kiln::<EXPORT_NAME>: kiln_core -> kiln::core, kiln -> kiln::kiln,
# kiln_sim -> kiln::sim (SIM builds). kilnConfig.cmake finds the dependencies again
# (Threads; CUDAToolkit in ON builds; Boost.Context in SIM builds).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# kiln's public headers are C++20. kiln_build_flags carries the standard inside this build
# only, so installed consumers get it from the libraries' own usage requirements.
target_compile_features(kiln_core PUBLIC cxx_std_20)

# The library folders, bottom-up, and their targets; each installs once its target exists.
# kiln_sim (SIM builds) lives in core/cuda/sim, so its headers install with core's.
set(_kiln_library_dirs core kernels layers training)
set(_kiln_installed_targets "")
foreach(_target IN ITEMS kiln_dnnl kiln_sim kiln_core kiln_kernels kiln_layers kiln_training kiln)
  if(TARGET ${_target})
    list(APPEND _kiln_installed_targets ${_target})
  endif()
endforeach()
if(TARGET kiln_sim)
  set_target_properties(kiln_sim PROPERTIES EXPORT_NAME sim)
endif()

install(TARGETS ${_kiln_installed_targets}
  EXPORT kilnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Headers keep their folders, so <kiln/core/tensor.h> means the same installed as in the
# build tree. Only the library folders install: sources, tests/, bench/, samples/ and
# build trees stay behind.
foreach(_dir IN LISTS _kiln_library_dirs)
  if(TARGET kiln_${_dir})
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln
      FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
  endif()
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/kiln.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)

set(_kiln_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/kiln)
install(EXPORT kilnTargets NAMESPACE kiln:: DESTINATION ${_kiln_cmake_dir})
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/kilnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kilnConfig.cmake
  INSTALL_DESTINATION ${_kiln_cmake_dir})
# 0.x: minor versions may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/kilnConfig.cmake
  ${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
  DESTINATION ${_kiln_cmake_dir})

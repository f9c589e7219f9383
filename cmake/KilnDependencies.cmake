# Third-party dependencies, all from Debian packages (scripts/install-deps installs them).
find_package(Threads REQUIRED)
if(KILN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(KILN_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
if(KILN_CUDA_MODE STREQUAL "SIM")
  find_package(Boost 1.74 REQUIRED COMPONENTS context)
endif()

# oneDNN (Debian libdnnl-dev) for cpu GEMM and convolution. Its CMake package insists on
# OpenCL headers (Debian builds it with the OpenCL GPU runtime), which kiln does not use,
# so the library and header are found directly.
find_library(KILN_DNNL_LIBRARY NAMES dnnl REQUIRED)
find_path(KILN_DNNL_INCLUDE_DIR NAMES oneapi/dnnl/dnnl.hpp REQUIRED)
# An INTERFACE target with absolute paths, exported with kiln (kiln::dnnl) so installed
# consumers link oneDNN too.
add_library(kiln_dnnl INTERFACE)
set_target_properties(kiln_dnnl PROPERTIES EXPORT_NAME dnnl)
target_link_libraries(kiln_dnnl INTERFACE ${KILN_DNNL_LIBRARY})
target_include_directories(kiln_dnnl SYSTEM INTERFACE ${KILN_DNNL_INCLUDE_DIR})
find_package(OpenMP REQUIRED COMPONENTS CXX)

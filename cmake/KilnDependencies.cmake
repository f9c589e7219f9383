# Third-party dependencies, all from Debian packages (scripts/install-deps installs them).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3 REQUIRED)  # layer and model configs (Keras-style JSON)
find_package(ZLIB REQUIRED)  # Debian zlib1g-dev: gzip/deflate for the data readers
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

# cuDNN 9 for the vendor convolution path (KILN_CUDA=ON only; kernels/cuda/cudnn_conv.cpp).
# cuDNN ships no CMake package: header and library are found next to the CUDA toolkit, under
# $CUDNN_ROOT, or in the system paths. kiln_cudnn is an imported target; kiln_kernels links
# it privately, and kilnConfig.cmake defines it again for installed (static) consumers.
option(KILN_WITH_CUDNN "KILN_CUDA=ON: use cuDNN for convolutions when it is found" ON)
if(KILN_CUDA_MODE STREQUAL "ON" AND NOT KILN_WITH_CUDNN)
  set(KILN_HAS_CUDNN OFF)
  message(STATUS "kiln: cuDNN off (KILN_WITH_CUDNN=OFF): cuda convolutions use kiln's native path")
elseif(KILN_CUDA_MODE STREQUAL "ON")
  find_path(KILN_CUDNN_INCLUDE_DIR NAMES cudnn.h
    HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV CUDNN_ROOT PATH_SUFFIXES include)
  find_library(KILN_CUDNN_LIBRARY NAMES cudnn
    HINTS ${CUDAToolkit_LIBRARY_DIR} ENV CUDNN_ROOT PATH_SUFFIXES lib64 lib)
  # Without cuDNN the build still works: convolutions on cuda take kiln's native path
  # (kernels/cuda/cudnn_off.cpp says so at run time), as with KILN_CONV=native.
  set(KILN_HAS_CUDNN ON)
  if(NOT KILN_CUDNN_INCLUDE_DIR OR NOT KILN_CUDNN_LIBRARY)
    message(WARNING "kiln: cuDNN 9 (cudnn.h and libcudnn.so) not found next to the CUDA toolkit "
      "(${CUDAToolkit_INCLUDE_DIRS}) or in the system paths; cuda convolutions will use kiln's native "
      "path. Install cuDNN 9 for CUDA ${CUDAToolkit_VERSION_MAJOR}, or point CUDNN_ROOT (environment) "
      "or KILN_CUDNN_INCLUDE_DIR and KILN_CUDNN_LIBRARY (cache) at it.")
    set(KILN_HAS_CUDNN OFF)
  endif()
endif()
if(KILN_HAS_CUDNN)
  file(STRINGS "${KILN_CUDNN_INCLUDE_DIR}/cudnn_version.h" _kiln_cudnn_major REGEX "^#define CUDNN_MAJOR +[0-9]+")
  string(REGEX REPLACE "^#define CUDNN_MAJOR +([0-9]+).*" "\\1" _kiln_cudnn_major "${_kiln_cudnn_major}")
  if(NOT _kiln_cudnn_major STREQUAL "9")
    message(FATAL_ERROR "kiln needs cuDNN 9; ${KILN_CUDNN_INCLUDE_DIR}/cudnn_version.h is version "
      "'${_kiln_cudnn_major}'. Point KILN_CUDNN_INCLUDE_DIR and KILN_CUDNN_LIBRARY at a cuDNN 9.")
  endif()
  get_filename_component(KILN_CUDNN_LIBRARY_DIR "${KILN_CUDNN_LIBRARY}" DIRECTORY)  # for kilnConfig.cmake
  add_library(kiln_cudnn UNKNOWN IMPORTED GLOBAL)
  set_target_properties(kiln_cudnn PROPERTIES
    IMPORTED_LOCATION "${KILN_CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${KILN_CUDNN_INCLUDE_DIR}")
  message(STATUS "kiln: cuDNN ${_kiln_cudnn_major}: ${KILN_CUDNN_LIBRARY}")
endif()

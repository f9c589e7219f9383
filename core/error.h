// kiln's one family of errors and the macros that raise them.
//   KILN_CHECK(cond, Kind, parts...)  user input: throws Kind with the parts streamed
//                                     together ("reshape: cannot view (2, 3) as (4,)").
//   KILN_THROW(Kind, parts...)        the same, unconditionally.
//   KILN_ASSERT(cond, parts...)       an internal invariant: failing it is a bug in kiln.
//   KILN_DASSERT(cond, parts...)      KILN_ASSERT in debug builds only (hot paths).
// Library results (CUDA, cuBLAS, cuDNN, NCCL) go through KILN_LIB_CHECK in
// core/cuda/check.h, which raises the same family with the call, file and line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace kiln {

class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* file, int line);
  // The message without the "raised at" location suffix.
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

// Kinds. A catch of kiln::Error catches them all.
#define KILN_DEFINE_ERROR(Name, Base) \
  class Name : public Base {          \
   public:                            \
    using Base::Base;                 \
  };
KILN_DEFINE_ERROR(ValueError, Error)        // a bad argument value
KILN_DEFINE_ERROR(ShapeError, ValueError)   // shapes that do not fit together
KILN_DEFINE_ERROR(IndexError, ValueError)   // an index or axis out of range
KILN_DEFINE_ERROR(TypeError, Error)         // an unsupported or mismatched dtype
KILN_DEFINE_ERROR(DeviceError, Error)       // wrong, mixed or missing device
KILN_DEFINE_ERROR(CudaError, DeviceError)   // a CUDA or vendor-library call failed
KILN_DEFINE_ERROR(OutOfMemoryError, Error)  // an allocator could not satisfy a request
KILN_DEFINE_ERROR(IOError, Error)           // a file could not be read or written
KILN_DEFINE_ERROR(FormatError, Error)       // a file's contents are malformed
KILN_DEFINE_ERROR(InternalError, Error)     // a broken invariant: a bug in kiln
#undef KILN_DEFINE_ERROR

namespace detail {

template <class... Parts>
std::string concat(Parts&&... parts) {
  if constexpr (sizeof...(Parts) == 0) {
    return {};
  } else {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
  }
}

template <class Kind>
[[noreturn]] void raise(std::string message, const char* file, int line) {
  throw Kind(std::move(message), file, line);
}

[[noreturn]] void raise_internal(const char* condition, std::string message, const char* file,
                                 int line);

}  // namespace detail
}  // namespace kiln

#define KILN_THROW(Kind, ...) \
  ::kiln::detail::raise<::kiln::Kind>(::kiln::detail::concat(__VA_ARGS__), __FILE__, __LINE__)

#define KILN_CHECK(cond, Kind, ...)     \
  do {                                  \
    if (!(cond)) [[unlikely]] {         \
      KILN_THROW(Kind, __VA_ARGS__);    \
    }                                   \
  } while (0)

#define KILN_ASSERT(cond, ...)                                                       \
  do {                                                                               \
    if (!(cond)) [[unlikely]] {                                                      \
      ::kiln::detail::raise_internal(#cond, ::kiln::detail::concat(__VA_ARGS__),     \
                                     __FILE__, __LINE__);                            \
    }                                                                                \
  } while (0)

#ifdef NDEBUG
#define KILN_DASSERT(cond, ...) \
  do {                          \
  } while (0)
#else
#define KILN_DASSERT(cond, ...) KILN_ASSERT(cond, __VA_ARGS__)
#endif

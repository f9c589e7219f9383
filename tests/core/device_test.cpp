// Device (core/device.h): parsing, printing and equality of cpu / cuda:N, check_device,
// and the default device of a build without CUDA.
#include "kiln/core/device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <type_traits>

#include "kiln/core/error.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

TEST(Device, ParsesCpuAndCuda) {
  const Device cpu("cpu");
  EXPECT_TRUE(cpu.is_cpu());
  EXPECT_FALSE(cpu.is_cuda());
  EXPECT_EQ(cpu.type(), DeviceType::cpu);
  EXPECT_EQ(cpu.index(), -1);

  const Device bare("cuda");
  EXPECT_TRUE(bare.is_cuda());
  EXPECT_EQ(bare.index(), 0);

  const Device third("cuda:3");
  EXPECT_EQ(third.type(), DeviceType::cuda);
  EXPECT_EQ(third.index(), 3);
  EXPECT_EQ(Device("cuda:12").index(), 12);
}

TEST(Device, BadStringsRaiseValueErrorQuotingTheText) {
  for (const char* bad : {"", "gpu", "CPU", "Cuda", "cuda:", "cuda:-1", "cuda:x", "cuda:1x",
                          "cuda3", "cuda:+1", "cpu:0", " cuda:0", "cuda:0 ",
                          "cuda:99999999999"}) {
    try {
      Device d{std::string_view(bad)};
      FAIL() << "expected ValueError for '" << bad << "', got " << d;
    } catch (const ValueError& e) {
      EXPECT_THAT(e.message(), HasSubstr(std::string("'") + bad + "'"));
      EXPECT_THAT(e.message(), HasSubstr("cuda:N"));
    }
  }
}

TEST(Device, StrAndStreamRoundTrip) {
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_EQ(Device::cuda().str(), "cuda:0");
  EXPECT_EQ(Device::cuda(7).str(), "cuda:7");
  for (Device d : {Device::cpu(), Device::cuda(0), Device::cuda(5)}) {
    EXPECT_EQ(Device(d.str()), d);
    std::ostringstream os;
    os << d;
    EXPECT_EQ(os.str(), d.str());
  }
}

TEST(Device, EqualityComparesTypeAndIndex) {
  EXPECT_EQ(Device::cpu(), Device());
  EXPECT_EQ(Device(DeviceType::cpu, 4), Device::cpu());  // cpu has no index
  EXPECT_EQ(Device::cuda(1), Device(DeviceType::cuda, 1));
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
  EXPECT_NE(Device::cpu(), Device::cuda(0));
}

// Device is a constexpr value type, usable in kernel argument structs and constants.
static_assert(Device::cuda(2).index() == 2);
static_assert(Device::cpu().index() == -1);
static_assert(Device::cuda(0) != Device::cpu());
static_assert(std::is_trivially_copyable_v<Device>);

TEST(Device, CheckDeviceAcceptsCpu) { EXPECT_NO_THROW(check_device(Device::cpu(), "zeros")); }

TEST(Device, CheckDeviceRejectsAMissingCudaIndex) {
  // No machine or SIM build has 1000 devices; the message names the op and the device.
  try {
    check_device(Device::cuda(1000), "zeros");
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_THAT(e.message(), HasSubstr("zeros"));
    EXPECT_THAT(e.message(), HasSubstr("cuda:1000"));
  }
}

#if KILN_HAS_CUDA == 0
TEST(DeviceOffBuild, CheckDeviceOnCudaSaysCudaIsOff) {
  try {
    check_device(Device::cuda(0), "ones");
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_THAT(e.message(), HasSubstr("ones"));
    EXPECT_THAT(e.message(), HasSubstr("cuda:0"));
    EXPECT_THAT(e.message(), HasSubstr("KILN_CUDA=OFF"));
  }
}

TEST(DeviceOffBuild, DefaultDeviceIsCpu) {
  if (std::getenv("KILN_DEVICE") != nullptr) {
    GTEST_SKIP() << "KILN_DEVICE is set; it overrides the default";
  }
  EXPECT_EQ(default_device(), Device::cpu());
  EXPECT_EQ(default_device(), default_device());  // decided once
}
#endif

}  // namespace
}  // namespace kiln

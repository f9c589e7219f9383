// The CUDA runtime seam (core/cuda/runtime.h) on a real GPU or SIM devices: device count
// and properties, DeviceGuard, Stream and StreamGuard, Event, memory info, and the
// DeviceError for a device index past the count. Every test skips without a cuda device.
#include "kiln/core/cuda/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "kiln/core/tensor.h"
#include "kiln_test.h"

namespace kiln::cuda {
namespace {

using ::testing::HasSubstr;

// Skips unless a second cuda device exists (SIM has 2 by default: KILN_SIM_DEVICES).
// Queues real work on the current stream of `device`: a fill of a fresh tensor.
Tensor queue_fill(int device, double value) {
  Tensor t = empty({1 << 14}, {.device = Device::cuda(device)});
  t.fill_(value);
  return t;
}

TEST(CudaRuntime, AtLeastOneDeviceAndNoReason) {
  KILN_REQUIRE_CUDA();
  EXPECT_GE(device_count(), 1);
  EXPECT_TRUE(is_available());
  EXPECT_EQ(unavailable_reason(), "");
}

TEST(CudaRuntime, PropertiesAreSensible) {
  KILN_REQUIRE_CUDA();
  for (int d = 0; d < device_count(); ++d) {
    SCOPED_TRACE("cuda:" + std::to_string(d));
    const DeviceProperties& p = properties(d);
    EXPECT_FALSE(p.name.empty());
    EXPECT_EQ(p.warp_size, 32);
    EXPECT_GE(p.major, 1);
    EXPECT_GE(p.minor, 0);
    EXPECT_GE(p.multiprocessor_count, 1);
    EXPECT_GE(p.max_threads_per_block, 512);
    EXPECT_EQ(p.max_threads_per_block % p.warp_size, 0);
    EXPECT_GE(p.shared_memory_per_block, std::size_t{16} << 10);
    EXPECT_GT(p.total_memory, std::size_t{0});
    EXPECT_EQ(&properties(d), &p);  // cached: one object per device
  }
}

TEST(CudaRuntime, MemoryInfoTotalIsAtLeastFree) {
  KILN_REQUIRE_CUDA();
  for (int d = 0; d < device_count(); ++d) {
    const MemoryInfo info = memory_info(d);
    EXPECT_GT(info.total, std::size_t{0}) << "cuda:" << d;
    EXPECT_LE(info.free, info.total) << "cuda:" << d;
  }
}

TEST(CudaRuntime, DeviceIndexPastTheCountNamesTheCount) {
  KILN_REQUIRE_CUDA();
  const int count = device_count();
  try {
    check_device(Device::cuda(count), "probe");
    FAIL() << "cuda:" << count << " was accepted";
  } catch (const DeviceError& e) {
    EXPECT_THAT(e.message(), HasSubstr("probe"));
    EXPECT_THAT(e.message(), HasSubstr("cuda:" + std::to_string(count)));
    EXPECT_THAT(e.message(), HasSubstr("only " + std::to_string(count) + " cuda device"));
  }
  EXPECT_NO_THROW(check_device(Device::cuda(count - 1), "probe"));
  EXPECT_NO_THROW(check_device(Device::cpu(), "probe"));
  EXPECT_THROW(set_device(count), DeviceError);
  EXPECT_THROW(properties(count), DeviceError);
  EXPECT_THROW(DeviceGuard{count}, DeviceError);
  EXPECT_THROW(Stream::create(count), DeviceError);
}

TEST(CudaRuntime, DeviceGuardRestoresTheDevice) {
  KILN_REQUIRE_CUDA();
  set_device(0);
  const int last = device_count() - 1;
  {
    DeviceGuard guard(last);
    EXPECT_EQ(current_device(), last);
    {
      DeviceGuard inner(Device::cuda(0));
      EXPECT_EQ(current_device(), 0);
    }
    EXPECT_EQ(current_device(), last);
  }
  EXPECT_EQ(current_device(), 0);
}

TEST(CudaRuntime, DeviceGuardOnSecondDevice) {
  KILN_REQUIRE_TWO_DEVICES();
  set_device(1);
  {
    DeviceGuard guard(0);
    EXPECT_EQ(current_device(), 0);
  }
  EXPECT_EQ(current_device(), 1);
  set_device(0);
}

TEST(CudaStream, DefaultStreamIsTheNullStream) {
  KILN_REQUIRE_CUDA();
  const Stream s = Stream::default_stream(0);
  EXPECT_TRUE(s.is_default());
  EXPECT_EQ(s.native(), nullptr);
  EXPECT_EQ(s.device(), 0);
  EXPECT_EQ(current_stream(0), s);
  s.synchronize();
  EXPECT_TRUE(s.query());
}

TEST(CudaStream, CreateQueryAndSynchronize) {
  KILN_REQUIRE_CUDA();
  const Stream s = Stream::create(0);
  EXPECT_FALSE(s.is_default());
  EXPECT_NE(s.native(), nullptr);
  EXPECT_TRUE(s.query());  // nothing queued yet
  Tensor t;
  {
    StreamGuard guard(s);
    t = queue_fill(0, 2.0);
  }
  s.synchronize();
  EXPECT_TRUE(s.query());
  StreamGuard guard(s);
  EXPECT_EQ(t.at<float>({(1 << 14) - 1}), 2.f);
}

TEST(CudaStream, CopiesShareTheStreamAndCreatesDiffer) {
  KILN_REQUIRE_CUDA();
  const Stream a = Stream::create(0);
  const Stream copy = a;  // NOLINT(performance-unnecessary-copy-initialization): the point
  EXPECT_EQ(copy, a);
  EXPECT_EQ(copy.native(), a.native());
  const Stream b = Stream::create(0, /*high_priority=*/true);
  EXPECT_FALSE(b == a);
  EXPECT_FALSE(a == Stream::default_stream(0));
}

TEST(CudaStream, StreamOnSecondDevice) {
  KILN_REQUIRE_TWO_DEVICES();
  const Stream s = Stream::create(1);
  EXPECT_EQ(s.device(), 1);
  Tensor t;
  {
    StreamGuard guard(s);
    EXPECT_EQ(current_device(), 1);
    t = queue_fill(1, -3.0);
  }
  s.synchronize();
  EXPECT_TRUE(s.query());
  StreamGuard guard(s);
  EXPECT_EQ(t.at<float>({0}), -3.f);
  EXPECT_EQ(t.device(), Device::cuda(1));
}

TEST(CudaStreamGuard, SetsAndRestoresTheCurrentStream) {
  KILN_REQUIRE_CUDA();
  const Stream outer = Stream::create(0);
  const Stream inner = Stream::create(0);
  EXPECT_TRUE(current_stream(0).is_default());
  {
    StreamGuard g1(outer);
    EXPECT_EQ(current_stream(0), outer);
    {
      StreamGuard g2(inner);
      EXPECT_EQ(current_stream(0), inner);
    }
    EXPECT_EQ(current_stream(0), outer);
  }
  EXPECT_TRUE(current_stream(0).is_default());
}

// Once a StreamGuard has given this thread a table of current streams, a bad index must
// still be rejected rather than read from outside the table.
TEST(CudaStreamGuard, CurrentStreamOfAnInvalidDeviceRaises) {
  KILN_REQUIRE_CUDA();
  const Stream s = Stream::create(device_count() - 1);
  StreamGuard guard(s);
  EXPECT_THROW(current_stream(-1), DeviceError);
  EXPECT_THROW(current_stream(device_count()), DeviceError);
}

TEST(CudaStreamGuard, OnlyTouchesItsOwnDevice) {
  KILN_REQUIRE_TWO_DEVICES();
  set_device(0);
  const Stream s1 = Stream::create(1);
  {
    StreamGuard guard(s1);
    EXPECT_EQ(current_stream(1), s1);
    EXPECT_TRUE(current_stream(0).is_default());
    EXPECT_EQ(current_device(), 1);
  }
  EXPECT_TRUE(current_stream(1).is_default());
  EXPECT_EQ(current_device(), 0);
}

TEST(CudaEvent, RecordQuerySynchronizeAndTime) {
  KILN_REQUIRE_CUDA();
  const Stream s = Stream::create(0);
  Event start(0, /*timing=*/true), stop(0, /*timing=*/true);
  EXPECT_TRUE(start.query());  // a never-recorded event counts as complete
  start.record(s);
  Tensor t;
  {
    StreamGuard guard(s);
    t = queue_fill(0, 1.0);
  }
  stop.record(s);
  stop.synchronize();
  EXPECT_TRUE(stop.query());
  EXPECT_TRUE(start.query());
  EXPECT_GE(Event::elapsed_ms(start, stop), 0.f);
  EXPECT_EQ(stop.device(), 0);
}

TEST(CudaEvent, StreamWaitOrdersWorkAcrossStreams) {
  KILN_REQUIRE_CUDA();
  const Stream producer = Stream::create(0);
  const Stream consumer = Stream::create(0);
  Tensor t = zeros({1 << 14}, {.device = Device::cuda(0)});
  synchronize_device(0);
  {
    StreamGuard guard(producer);
    t.fill_(5.0);
  }
  Event ready(0);
  ready.record(producer);
  consumer.wait(ready);
  Tensor copy;
  {
    StreamGuard guard(consumer);
    copy = t.clone();  // queued on the consumer, after the fill
  }
  consumer.synchronize();
  StreamGuard guard(consumer);
  EXPECT_EQ(copy.at<float>({(1 << 14) - 1}), 5.f);
}

TEST(CudaEvent, MoveTransfersOwnership) {
  KILN_REQUIRE_CUDA();
  Event a(0);
  void* native = a.native();
  ASSERT_NE(native, nullptr);
  Event b(std::move(a));
  EXPECT_EQ(b.native(), native);
  EXPECT_EQ(a.native(), nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  Event c(0);
  c = std::move(b);
  EXPECT_EQ(c.native(), native);
}

TEST(CudaEvent, RecordOnAnotherDevicesStreamRaises) {
  KILN_REQUIRE_TWO_DEVICES();
  Event e(0);
  EXPECT_THROW(e.record(Stream::create(1)), DeviceError);
}

}  // namespace
}  // namespace kiln::cuda

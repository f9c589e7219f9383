// Progbar: Keras 3's formats, ETA, throttling and the first-step-excluded rate, with an
// injected clock and output stream.
#include "kiln/training/progbar.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

namespace kiln {
namespace {

// A clock the test moves by hand.
struct FakeClock {
  double t = 0.0;
  std::function<double()> fn() {
    return [this] { return t; };
  }
};

ProgbarOptions opts(std::ostringstream& out, FakeClock& clock, int verbose, std::int64_t target,
                    bool dynamic) {
  return {.target = target, .verbose = verbose, .out = &out, .dynamic_display = dynamic,
          .clock = clock.fn()};
}

TEST(Progbar, FormatsTimePerUnitLikeKeras) {
  EXPECT_EQ(Progbar::format_time_per_unit(0.025, "step"), " 25ms/step");
  EXPECT_EQ(Progbar::format_time_per_unit(2.4, "step"), " 2s/step");
  EXPECT_EQ(Progbar::format_time_per_unit(0.0, "step"), " 0s/step");
  EXPECT_EQ(Progbar::format_time_per_unit(0.0003, "sample"), " 300us/sample");
}

TEST(Progbar, FormatsEtaAsSecondsMinutesHours) {
  EXPECT_EQ(Progbar::format_eta(59.9), "59s");
  EXPECT_EQ(Progbar::format_eta(65.5), "1:05");
  EXPECT_EQ(Progbar::format_eta(3725.0), "1:02:05");
}

TEST(Progbar, FormatsSmallValuesInScientificNotation) {
  EXPECT_EQ(Progbar::format_value(0.63124), " 0.6312");
  EXPECT_EQ(Progbar::format_value(-2.5), " -2.5000");
  EXPECT_EQ(Progbar::format_value(0.0001234), " 1.2340e-04");
  EXPECT_EQ(Progbar::format_value(std::nan("")), " nan");
  EXPECT_EQ(Progbar::format_value(-INFINITY), " -inf");
}

TEST(Progbar, Verbose2PrintsOneLineWhenFinished) {
  std::ostringstream out;
  FakeClock clock;
  Progbar bar(opts(out, clock, 2, 63, false));
  for (int step = 1; step <= 62; ++step) {
    clock.t = 1.0 + 0.025 * (step - 1);
    EXPECT_FALSE(bar.due(step, false));
    bar.update(step, {{"loss", 9.0}});
  }
  EXPECT_EQ(out.str(), "");
  clock.t = 1.0 + 0.025 * 62;  // 2.55 s since start; 25 ms per step after the first
  EXPECT_TRUE(bar.due(63, true));
  bar.update(63, {{"accuracy", 0.80214}, {"loss", 0.63119}});
  EXPECT_EQ(out.str(), "63/63 - 3s - 25ms/step - accuracy: 0.8021 - loss: 0.6312\n");
}

TEST(Progbar, DynamicBarRedrawsInPlaceWithEtaThenElapsed) {
  std::ostringstream out;
  FakeClock clock;
  Progbar bar(opts(out, clock, 1, 10, true));
  clock.t = 0.5;
  bar.update(1, {{"loss", 1.5}});
  const std::string bold = "\x1b[1m", green = "\x1b[32m", white = "\x1b[37m", reset = "\x1b[0m";
  auto bars = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "\u2501";
    return s;
  };
  // 1/10 done: 2 of 20 columns; ETA = 0.5 s/step * 9 steps.
  EXPECT_EQ(out.str(), "\r" + bold + " 1/10" + reset + " " + green + bars(2) + reset + white +
                           bars(18) + reset + " " + bold + "4s" + reset +
                           " 500ms/step - loss: 1.5000");
  out.str("");
  clock.t = 2.5;  // 4 steps after the first at 0.5 s each
  bar.update(5, {{"loss", 1.25}});
  EXPECT_NE(out.str().find(" 5/10"), std::string::npos);
  EXPECT_NE(out.str().find(bold + "2s" + reset + " 500ms/step - loss: 1.2500"), std::string::npos);
  out.str("");
  clock.t = 5.0;
  bar.update(10, {});  // finalize: elapsed time, a newline, and spaces over the longer line
  const std::string s = out.str();
  EXPECT_EQ(s.substr(0, 1), "\r");
  EXPECT_NE(s.find(bold + "5s" + reset + " 500ms/step"), std::string::npos);
  EXPECT_EQ(s.back(), '\n');
  EXPECT_NE(s.find("step" + std::string(15, ' ') + "\n"), std::string::npos);  // erases " - loss: 1.2500"
}

TEST(Progbar, ThrottlesRedrawsToTheInterval) {
  std::ostringstream out;
  FakeClock clock;
  Progbar bar(opts(out, clock, 1, 100, false));
  clock.t = 0.01;
  EXPECT_TRUE(bar.due(1, false));
  bar.update(1, {});
  clock.t = 0.02;
  EXPECT_FALSE(bar.due(2, false));
  bar.advance(2);
  clock.t = 0.07;
  EXPECT_TRUE(bar.due(3, false));
  bar.update(3, {});
  // Non-dynamic display: each redraw is a new line, without colour codes.
  EXPECT_EQ(out.str().find('\x1b'), std::string::npos);
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  EXPECT_NE(out.str().find("\n  1/100 "), std::string::npos);
  EXPECT_NE(out.str().find("\n  3/100 "), std::string::npos);
}

TEST(Progbar, UnknownTargetShowsCountAndElapsed) {
  std::ostringstream out;
  FakeClock clock;
  Progbar bar(opts(out, clock, 1, -1, false));
  clock.t = 1.2;
  bar.update(12, {{"loss", 0.5}});
  EXPECT_EQ(out.str(), "\n     12/Unknown 1s 100ms/step - loss: 0.5000");
}

TEST(Progbar, SilentPrintsNothing) {
  std::ostringstream out;
  FakeClock clock;
  Progbar bar(opts(out, clock, 0, 3, false));
  for (int i = 1; i <= 3; ++i) bar.update(i, {{"loss", 1.0}});
  EXPECT_FALSE(bar.due(3, true));
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace kiln

// Learning-rate schedules against Keras 3's formulas evaluated by hand (Python floats),
// argument checks, and serialize / deserialize.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"
#include "kiln/training/schedules.h"

namespace kiln {
namespace {

using namespace kiln::schedules;

void expect_values(const LearningRateSchedule& s, const std::vector<std::int64_t>& steps,
                   const std::vector<double>& want) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    EXPECT_NEAR(s(steps[i]), want[i], 1e-15) << s.class_name() << " at step " << steps[i];
  }
}

TEST(Schedules, ExponentialDecayWithAndWithoutStaircase) {
  expect_values(ExponentialDecay(0.1, 10, 0.5), {0, 5, 10, 25}, {0.1, 0.07071067811865477, 0.05, 0.01767766952966369});
  expect_values(ExponentialDecay(0.1, 10, 0.5, true), {0, 5, 10, 25}, {0.1, 0.1, 0.05, 0.025});
  EXPECT_THROW(ExponentialDecay(0.1, 0, 0.5), ValueError);
}

TEST(Schedules, PiecewiseConstantDecayBoundariesAreInclusiveBelow) {
  const PiecewiseConstantDecay s({10, 20}, {1.0, 0.5, 0.1});
  expect_values(s, {0, 10, 11, 20, 21, 1000}, {1.0, 1.0, 0.5, 0.5, 0.1, 0.1});
  EXPECT_THROW(PiecewiseConstantDecay({10}, {1.0}), ValueError);
  EXPECT_THROW(PiecewiseConstantDecay({20, 10}, {1.0, 0.5, 0.1}), ValueError);
}

TEST(Schedules, CosineDecayWithAlphaAndWithWarmup) {
  expect_values(CosineDecay(1.0, 100, {.alpha = 0.1}), {0, 25, 50, 100, 150},
                {1.0, 0.8681980515339464, 0.55, 0.1, 0.1});
  const CosineDecay warm(0.0, 100, {.warmup_target = 1.0, .warmup_steps = 10});
  expect_values(warm, {0, 5, 10, 60, 110, 200}, {0.0, 0.5, 1.0, 0.5, 0.0, 0.0});
  EXPECT_THROW(CosineDecay(1.0, -1), ValueError);
}

TEST(Schedules, InverseTimeAndPolynomialDecay) {
  expect_values(InverseTimeDecay(0.1, 10, 0.5), {0, 5, 10, 25}, {0.1, 0.08, 0.06666666666666667, 0.044444444444444446});
  expect_values(PolynomialDecay(0.1, 10, {.end_learning_rate = 0.01, .power = 2.0}), {0, 5, 10, 25},
                {0.1, 0.0325, 0.01, 0.01});
  expect_values(PolynomialDecay(0.1, 10, {.end_learning_rate = 0.01, .power = 2.0, .cycle = true}), {0, 5, 10, 25},
                {0.1, 0.0325, 0.01, 0.012499999999999999});
}

TEST(Schedules, SerializeRoundTripsEverySchedule) {
  const std::vector<std::shared_ptr<const LearningRateSchedule>> all = {
      std::make_shared<ExponentialDecay>(0.1, 10, 0.5, true),
      std::make_shared<PiecewiseConstantDecay>(std::vector<double>{10, 20}, std::vector<double>{1.0, 0.5, 0.1}),
      std::make_shared<CosineDecay>(1.0, 100, CosineDecayOptions{.alpha = 0.1, .warmup_target = 2.0, .warmup_steps = 5}),
      std::make_shared<InverseTimeDecay>(0.1, 10, 0.5),
      std::make_shared<PolynomialDecay>(0.1, 10, PolynomialDecayOptions{.power = 3.0, .cycle = true})};
  for (const auto& s : all) {
    const nlohmann::json j = serialize(*s);
    EXPECT_EQ(j["class_name"], s->class_name());
    const auto back = deserialize(j);
    EXPECT_EQ(back->get_config(), s->get_config()) << s->class_name();
    for (std::int64_t step : {0, 3, 17, 400}) EXPECT_DOUBLE_EQ((*back)(step), (*s)(step)) << s->class_name();
  }
  EXPECT_THROW(deserialize(nlohmann::json{{"class_name", "CosineDecayRestarts"}, {"config", {}}}), ValueError);
}

TEST(Schedules, LearningRateHoldsANumberOrASchedule) {
  const LearningRate constant = 0.25;
  EXPECT_FALSE(constant.is_schedule());
  EXPECT_DOUBLE_EQ(constant.at(1000), 0.25);
  EXPECT_EQ(constant.to_json(), nlohmann::json(0.25));
  const LearningRate scheduled = ExponentialDecay(1.0, 1, 0.5);
  EXPECT_TRUE(scheduled.is_schedule());
  EXPECT_DOUBLE_EQ(scheduled.at(3), 0.125);
  EXPECT_DOUBLE_EQ(LearningRate::from_json(scheduled.to_json()).at(2), 0.25);
}

}  // namespace
}  // namespace kiln

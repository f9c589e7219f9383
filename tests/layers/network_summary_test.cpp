// Network::summary against Keras 3's text (model.summary() captured, 76 columns): the
// sequential table, a graph with "Connected to" and wrapped cells, parameter totals with
// sizes, non-trainable counts, the Trainable column, unbuilt layers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/network.h"

namespace kiln::layers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Summary, SequentialMatchesKeras) {
  clear_session();
  Network net({Dense(64, {.activation = "relu", .input_shape = {32}}), Dense(10)});
  const char* expected =
      R"(Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 64)             │         2,112 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 2,762 (10.79 KB)
 Trainable params: 2,762 (10.79 KB)
 Non-trainable params: 0 (0.00 B)
)";
  EXPECT_EQ(net.summary(), expected);
  std::ostringstream os;
  net.print_summary(os);
  EXPECT_EQ(os.str(), expected);
}

TEST(Summary, BranchingGraphShowsConnectionsAndWrapsCells) {
  clear_session();
  auto in = Input({8});
  auto a = Dense(4)(in);
  auto b = Dense(4)(in);
  Network net(in, Add()({a, b}));
  const char* expected =
      R"(Model: "functional"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ input_layer         │ (None, 8)         │          0 │ -                 │
│ (InputLayer)        │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense (Dense)       │ (None, 4)         │         36 │ input_layer[0][0] │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense_1 (Dense)     │ (None, 4)         │         36 │ input_layer[0][0] │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ add (Add)           │ (None, 4)         │          0 │ dense[0][0],      │
│                     │                   │            │ dense_1[0][0]     │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 72 (288.00 B)
 Trainable params: 72 (288.00 B)
 Non-trainable params: 0 (0.00 B)
)";
  EXPECT_EQ(net.summary(), expected);
}

TEST(Summary, SharedLayerListsEachCallAndChainsPrintWithoutConnections) {
  clear_session();
  auto in = Input({3});
  auto shared = Dense(3);
  Network net(in, shared(shared(in)));
  const std::string s = net.summary();
  EXPECT_THAT(s, HasSubstr("Connected to"));
  // "input_layer[0][0]," is one word wider than the 17-column cell: cut with "…" as rich does.
  EXPECT_THAT(s, HasSubstr("│ dense (Dense)       │ (None, 3)         │         12 │ input_layer[0][0… │\n"
                           "│                     │                   │            │ dense[0][0]       │"));
  // A functional chain prints like a Sequential model (Keras' sequential_like).
  auto in2 = Input({3});
  Network chain(in2, Dense(2)(Dense(3)(in2)));
  EXPECT_THAT(chain.summary(), Not(HasSubstr("Connected to")));
  EXPECT_THAT(chain.summary(), HasSubstr("│ input_layer_1 (InputLayer)      │ (None, 3)              │             0 │"));
}

TEST(Summary, LongShapesWrapAndFrozenWeightsCountAsNonTrainable) {
  clear_session();
  auto in = Input({30, 30, 32}, {.name = "img"});
  auto branch = Dense(16, {.trainable = false})(in);
  auto other = Dense(16)(in);
  Network net(in, Concatenate()({branch, other}));
  const std::string s = net.summary();
  EXPECT_THAT(s, HasSubstr("│ img (InputLayer)    │ (None, 30, 30,    │          0 │ -                 │\n"
                           "│                     │ 32)               │            │                   │"));
  EXPECT_THAT(s, HasSubstr(" Total params: 1,056 (4.12 KB)\n Trainable params: 528 (2.06 KB)\n"
                           " Non-trainable params: 528 (2.06 KB)\n"));
  const std::string t = net.summary({.show_trainable = true});
  EXPECT_THAT(t, HasSubstr("Trainable"));
  EXPECT_THAT(t, HasSubstr(" N "));
  EXPECT_THAT(t, HasSubstr(" Y "));
}

TEST(Summary, UnbuiltSequentialShowsUnbuiltLayers) {
  clear_session();
  Network net({Dense(3)});
  const std::string s = net.summary();
  EXPECT_THAT(s, HasSubstr("│ dense (Dense)                   │ ?                      │   0 (unbuilt) │"));
  EXPECT_THAT(s, HasSubstr(" Total params: 0 (0.00 B)"));
}

}  // namespace
}  // namespace kiln::layers

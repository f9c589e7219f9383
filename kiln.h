// kiln: one include for users. #include <kiln/kiln.h> and link kiln::kiln.
#pragma once

#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/random.h"
#include "kiln/core/shape.h"
#include "kiln/core/tensor.h"
#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/autograd_meta.h"

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/dropout.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/softmax.h"
#include "kiln/kernels/unary.h"

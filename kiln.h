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

// The taps of a convolution seen from an input pixel: shared by the gathers of the native
// cuda path (conv.cu's col2im and conv_depthwise.cuh's backward-data), which visit, for one
// input pixel (ih, iw), every (output pixel, kernel tap) that reads it, and so write each
// input gradient once without atomics. S is any geometry struct with the fields below.
#pragma once

namespace kiln::cuda {

// Calls f(oh, ow, kh, kw) for every tap (kh, kw) of an output pixel (oh, ow) that reads
// input pixel (ih, iw): oh·stride_h - pad_top + kh·dil_h == ih (likewise w), 0 <= oh < out_h.
template <class I, class S, class F>
__device__ void for_each_reading_tap(const S& s, I ih, I iw, F&& f) {
  for (I kh = 0; kh < s.k_h; ++kh) {
    const I th = ih + s.pad_top - kh * s.dil_h;
    if (th < 0 || th % s.stride_h != 0 || th / s.stride_h >= s.out_h) continue;
    for (I kw = 0; kw < s.k_w; ++kw) {
      const I tw = iw + s.pad_left - kw * s.dil_w;
      if (tw < 0 || tw % s.stride_w != 0 || tw / s.stride_w >= s.out_w) continue;
      f(th / s.stride_h, tw / s.stride_w, kh, kw);
    }
  }
}

}  // namespace kiln::cuda

// Type dispatch for the reference quantization routines (quant.h).
#include "quant/quant.h"

#include <cstring>

#include "quant/quant_impl.h"
#include "util/error.h"
#include "util/fp16.h"

namespace pocket::quant {

namespace {

using Dequantizer = void (*)(const uint8_t*, float*, int64_t);
using Quantizer = void (*)(const float*, uint8_t*, int64_t);
using DotProduct = float (*)(const uint8_t*, const uint8_t*, int64_t);

Dequantizer block_dequantizer(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return detail::dequantize_q4_0;
    case TensorType::Q4_1:
      return detail::dequantize_q4_1;
    case TensorType::Q5_0:
      return detail::dequantize_q5_0;
    case TensorType::Q5_1:
      return detail::dequantize_q5_1;
    case TensorType::Q8_0:
      return detail::dequantize_q8_0;
    case TensorType::Q8_1:
      return detail::dequantize_q8_1;
    case TensorType::Q2_K:
      return detail::dequantize_q2_k;
    case TensorType::Q3_K:
      return detail::dequantize_q3_k;
    case TensorType::Q4_K:
      return detail::dequantize_q4_k;
    case TensorType::Q5_K:
      return detail::dequantize_q5_k;
    case TensorType::Q6_K:
      return detail::dequantize_q6_k;
    case TensorType::Q8_K:
      return detail::dequantize_q8_k;
    case TensorType::IQ4_NL:
      return detail::dequantize_iq4_nl;
    case TensorType::IQ4_XS:
      return detail::dequantize_iq4_xs;
    default:
      return nullptr;
  }
}

Quantizer block_quantizer(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return detail::quantize_q4_0;
    case TensorType::Q4_1:
      return detail::quantize_q4_1;
    case TensorType::Q5_0:
      return detail::quantize_q5_0;
    case TensorType::Q5_1:
      return detail::quantize_q5_1;
    case TensorType::Q8_0:
      return detail::quantize_q8_0;
    case TensorType::Q8_1:
      return detail::quantize_q8_1;
    case TensorType::Q2_K:
      return detail::quantize_q2_k;
    case TensorType::Q3_K:
      return detail::quantize_q3_k;
    case TensorType::Q4_K:
      return detail::quantize_q4_k;
    case TensorType::Q5_K:
      return detail::quantize_q5_k;
    case TensorType::Q6_K:
      return detail::quantize_q6_k;
    case TensorType::Q8_K:
      return detail::quantize_q8_k;
    case TensorType::IQ4_NL:
      return detail::quantize_iq4_nl;
    case TensorType::IQ4_XS:
      return detail::quantize_iq4_xs;
    default:
      return nullptr;
  }
}

DotProduct block_dot(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return detail::vec_dot_q4_0_q8_0;
    case TensorType::Q5_0:
      return detail::vec_dot_q5_0_q8_0;
    case TensorType::Q8_0:
      return detail::vec_dot_q8_0_q8_0;
    case TensorType::IQ4_NL:
      return detail::vec_dot_iq4_nl_q8_0;
    case TensorType::Q4_1:
      return detail::vec_dot_q4_1_q8_1;
    case TensorType::Q5_1:
      return detail::vec_dot_q5_1_q8_1;
    case TensorType::Q2_K:
      return detail::vec_dot_q2_k_q8_k;
    case TensorType::Q3_K:
      return detail::vec_dot_q3_k_q8_k;
    case TensorType::Q4_K:
      return detail::vec_dot_q4_k_q8_k;
    case TensorType::Q5_K:
      return detail::vec_dot_q5_k_q8_k;
    case TensorType::Q6_K:
      return detail::vec_dot_q6_k_q8_k;
    case TensorType::IQ4_XS:
      return detail::vec_dot_iq4_xs_q8_k;
    default:
      return nullptr;
  }
}

bool is_float_type(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
}

// Number of blocks in n elements of type t; throws if n is not a whole number of blocks.
int64_t block_count(const char* what, TensorType t, int64_t n) {
  const auto traits = gguf::type_traits(t);
  if (!traits) fail(what, ": invalid tensor type ", uint32_t(t));
  if (n < 0 || n % traits->block_size != 0)
    fail(what, ": ", n, " elements is not a multiple of the ", traits->name, " block size ",
         traits->block_size);
  return n / traits->block_size;
}

}  // namespace

bool can_dequantize(TensorType t) {
  return is_float_type(t) || block_dequantizer(t) != nullptr;
}

bool can_quantize(TensorType t) {
  return is_float_type(t) || block_quantizer(t) != nullptr;
}

void dequantize_row(TensorType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count("dequantize_row", t, n);
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (t) {
    case TensorType::F32:
      if (n > 0) std::memcpy(dst, src, size_t(n) * 4);
      return;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    default:
      break;
  }
  const Dequantizer f = block_dequantizer(t);
  if (!f) fail("dequantize_row: type ", gguf::type_name(t), " is not supported");
  f(bytes, dst, nb);
}

void quantize_row(TensorType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count("quantize_row", t, n);
  auto* bytes = static_cast<uint8_t*>(dst);
  switch (t) {
    case TensorType::F32:
      if (n > 0) std::memcpy(dst, src, size_t(n) * 4);
      return;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    default:
      break;
  }
  const Quantizer f = block_quantizer(t);
  if (!f) fail("quantize_row: type ", gguf::type_name(t), " is not supported");
  f(src, bytes, nb);
}

TensorType activation_type(TensorType weight) {
  switch (weight) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
      return weight;
    case TensorType::Q4_0:
    case TensorType::Q5_0:
    case TensorType::Q8_0:
    case TensorType::IQ4_NL:
      return TensorType::Q8_0;
    case TensorType::Q4_1:
    case TensorType::Q5_1:
      return TensorType::Q8_1;
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
    case TensorType::IQ4_XS:
      return TensorType::Q8_K;
    default:
      fail("activation_type: ", gguf::type_name(weight), " is not a supported weight type");
  }
}

float vec_dot(TensorType t, const void* weight_row, const void* act_row, int64_t n) {
  const int64_t nb = block_count("vec_dot", t, n);
  const auto* w = static_cast<const uint8_t*>(weight_row);
  const auto* a = static_cast<const uint8_t*>(act_row);
  if (is_float_type(t)) {
    // Products are exact in double; one double accumulator, rounded once at the end.
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      float wv, av;
      if (t == TensorType::F32) {
        std::memcpy(&wv, w + 4 * i, 4);
        std::memcpy(&av, a + 4 * i, 4);
      } else {
        uint16_t wh, ah;
        std::memcpy(&wh, w + 2 * i, 2);
        std::memcpy(&ah, a + 2 * i, 2);
        wv = t == TensorType::F16 ? f16_to_f32(wh) : bf16_to_f32(wh);
        av = t == TensorType::F16 ? f16_to_f32(ah) : bf16_to_f32(ah);
      }
      sum += double(wv) * double(av);
    }
    return float(sum);
  }
  const DotProduct f = block_dot(t);
  if (!f) fail("vec_dot: type ", gguf::type_name(t), " is not a supported weight type");
  return f(w, a, nb);
}

}  // namespace pocket::quant

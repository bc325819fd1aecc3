// The ggml tensor types as GGUF files name them (spec/gguf.md §4.1): ids, block sizes, bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pocket::gguf {

enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

struct TypeTraits {
  std::string_view name;  // "q4_K" style names as ggml prints them
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t type_size;     // bytes per block
  bool supported;         // Pocket can compute with it (else rejected at model load)
};

// Traits of a valid type id, or nullopt for an unknown / removed id.
std::optional<TypeTraits> type_traits(uint32_t id);
inline std::optional<TypeTraits> type_traits(TensorType t) { return type_traits(uint32_t(t)); }

// Name for messages; "type#N" for ids that are not valid.
std::string_view type_name(uint32_t id);
inline std::string_view type_name(TensorType t) { return type_name(uint32_t(t)); }

// Parses a case-insensitive type name ("q4_k", "Q8_0", "f16"); nullopt if unknown.
std::optional<TensorType> parse_type_name(std::string_view name);

// Bytes of one row of n elements (n must be a multiple of the block size).
inline uint64_t row_bytes(TensorType t, uint64_t n) {
  auto tr = type_traits(t);
  return n / tr->block_size * tr->type_size;
}

}  // namespace pocket::gguf

// GGUF v3 files: a validating, memory-mapped reader and a streaming writer
// (spec/gguf.md §3). The reader checks every count, length, type, dimension and
// offset before use and throws pocket::Error naming the file and the field or
// tensor; it never allocates more than a small multiple of the file size.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gguf/types.h"
#include "util/mmap.h"
#include "util/mmap.h"

namespace pocket::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);

// A metadata value: a scalar, a string, or an array (of scalars, strings or arrays).
// Arrays of scalars keep their raw little-endian bytes, so a 248k-entry token-type
// array is one allocation.
class Value {
 public:
  Value() = default;
  static Value u8(uint8_t v) { return scalar(ValueType::UINT8, v); }
  static Value i8(int8_t v) { return scalar(ValueType::INT8, v); }
  static Value u16(uint16_t v) { return scalar(ValueType::UINT16, v); }
  static Value i16(int16_t v) { return scalar(ValueType::INT16, v); }
  static Value u32(uint32_t v) { return scalar(ValueType::UINT32, v); }
  static Value i32(int32_t v) { return scalar(ValueType::INT32, v); }
  static Value u64(uint64_t v) { return scalar(ValueType::UINT64, v); }
  static Value i64(int64_t v) { return scalar(ValueType::INT64, v); }
  static Value f32(float v) { return scalar(ValueType::FLOAT32, v); }
  static Value f64(double v) { return scalar(ValueType::FLOAT64, v); }
  static Value boolean(bool v) { return scalar(ValueType::BOOL, uint8_t(v ? 1 : 0)); }
  static Value string(std::string v);
  static Value strings(std::vector<std::string> v);
  static Value arrays(std::vector<Value> v);  // nested arrays: each element must be an array
  static Value i32s(const std::vector<int32_t>& v) { return raw_array(ValueType::INT32, v); }
  static Value u32s(const std::vector<uint32_t>& v) { return raw_array(ValueType::UINT32, v); }
  static Value f32s(const std::vector<float>& v) { return raw_array(ValueType::FLOAT32, v); }
  static Value i64s(const std::vector<int64_t>& v) { return raw_array(ValueType::INT64, v); }
  // An array of fixed-size scalars of type elem from its little-endian bytes.
  static Value raw(ValueType elem, std::vector<uint8_t> bytes);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::ARRAY; }
  bool is_string() const { return type_ == ValueType::STRING; }
  bool is_integer() const;  // any of the 8 integer types (not bool)
  bool is_float() const { return type_ == ValueType::FLOAT32 || type_ == ValueType::FLOAT64; }

  // Scalar accessors. They convert between integer widths when the value fits and
  // throw pocket::Error otherwise (callers add the key to the message).
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_f64() const;  // floats and integers
  bool as_bool() const;
  const std::string& as_string() const;

  // Array accessors.
  ValueType elem_type() const { return elem_; }
  size_t size() const;
  const std::vector<std::string>& string_items() const { return strs_; }
  const std::vector<Value>& array_items() const { return items_; }
  const std::vector<uint8_t>& raw_bytes() const { return bytes_; }  // scalar arrays
  Value item(size_t i) const;  // element i of a scalar or string array as a scalar Value
  std::vector<int64_t> as_ints() const;    // integer (or bool) array
  std::vector<double> as_floats() const;   // float or integer array

  // A short human-readable rendering; arrays longer than max_items are summarised.
  std::string to_string(size_t max_items = 8) const;

  friend bool operator==(const Value& a, const Value& b);

 private:
  template <typename T>
  static Value scalar(ValueType t, T v) {
    Value r;
    r.type_ = t;
    r.bytes_.resize(sizeof(T));
    std::memcpy(r.bytes_.data(), &v, sizeof(T));
    return r;
  }
  template <typename T>
  static Value raw_array(ValueType elem, const std::vector<T>& v) {
    std::vector<uint8_t> b(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return raw(elem, std::move(b));
  }
  friend class Parser;

  ValueType type_ = ValueType::UINT32;
  ValueType elem_ = ValueType::UINT8;  // arrays only
  std::vector<uint8_t> bytes_;         // scalar bytes, or scalar-array bytes
  std::string str_;                    // STRING
  std::vector<std::string> strs_;      // array of STRING
  std::vector<Value> items_;           // array of ARRAY
};

size_t value_type_size(ValueType t);  // bytes of a fixed-size scalar type, 0 for string/array

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] fastest; missing trailing dims are 1
  TensorType type = TensorType::F32;
  uint64_t offset = 0;           // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapped file (reader only)

  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  uint64_t row_bytes() const { return gguf::row_bytes(type, uint64_t(ne[0])); }
  std::string shape_string() const;  // "[128, 2007]"
};

// A parsed GGUF file. Owns its mapping (when opened from a path); tensor data
// pointers stay valid for the File's lifetime.
class File {
 public:
  // Maps (or copies, util/mmap.h) and parses a file. Throws
  // pocket::Error("PATH: ...") on any problem.
  static File open(const std::string& path, FileBacking backing = FileBacking::kMap);
  // Parses bytes already in memory (not copied; they must outlive the File).
  // `name` is used in error messages.
  static File parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_start_; }
  uint64_t file_size() const { return size_; }
  const uint8_t* bytes() const { return base_; }

  const std::vector<KeyValue>& metadata() const { return kvs_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: throw an error naming the file and key if the key is missing
  // or has an incompatible type / out-of-range value.
  uint64_t get_u64(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  double get_f64(std::string_view key) const;
  float get_f32(std::string_view key) const { return float(get_f64(key)); }
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const Value& get_array(std::string_view key) const;
  // Optional forms: default when absent, error when present with a bad type.
  uint32_t get_u32_or(std::string_view key, uint32_t dflt) const;
  float get_f32_or(std::string_view key, float dflt) const;
  bool get_bool_or(std::string_view key, bool dflt) const;
  std::string get_string_or(std::string_view key, const std::string& dflt) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws if missing

  // "general.architecture", or "" when absent.
  std::string architecture() const;

 private:
  friend class Parser;
  std::shared_ptr<MappedFile> map_;
  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<KeyValue> kvs_;
  std::vector<TensorInfo> tensors_;
};

// Limits applied while parsing (a hostile file cannot make the reader allocate
// more than it must).
constexpr uint64_t kMaxStringLength = 1ull << 30;
constexpr uint64_t kMaxArrayLength = 1ull << 30;
constexpr uint32_t kMaxArrayDepth = 8;
constexpr uint32_t kMaxTensorNameLength = 256;

// Writes a GGUF v3 file. Tensor data is produced by a callback at write time, so
// a model never needs to be in memory twice; the writer checks each tensor
// produces exactly its byte size.
class Writer {
 public:
  // Callback that must call sink(bytes, n) any number of times with n summing to
  // the tensor's byte size.
  using Sink = std::function<void(const void* bytes, size_t n)>;
  using Producer = std::function<void(const Sink& sink)>;

  Writer() = default;
  void set_alignment(uint32_t alignment);  // also writes general.alignment (u32)
  void add(std::string key, Value value);  // keys must be unique
  // Adds a tensor; ne has 1..4 dims (ne[0] fastest). data_size is checked.
  void add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, Producer producer);
  // Convenience: tensor data copied from memory at write time (pointer must stay valid).
  void add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, const void* data);
  // Writes everything to path (through a temporary file renamed at the end).
  void write(const std::string& path) const;
  // Serialises to memory (tests, fuzz seeds).
  std::vector<uint8_t> to_bytes() const;

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    uint64_t n_bytes;
    Producer producer;
  };
  void write_to(const Sink& out) const;
  uint32_t alignment_ = 32;
  std::vector<KeyValue> kvs_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace pocket::gguf

#include "gguf/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>

#include "util/error.h"

namespace pocket::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian

bool valid_value_type(uint32_t t) { return t <= 12; }

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "uint8";
    case ValueType::INT8: return "int8";
    case ValueType::UINT16: return "uint16";
    case ValueType::INT16: return "int16";
    case ValueType::UINT32: return "uint32";
    case ValueType::INT32: return "int32";
    case ValueType::FLOAT32: return "float32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "uint64";
    case ValueType::INT64: return "int64";
    case ValueType::FLOAT64: return "float64";
  }
  return "invalid";
}

size_t value_type_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64: return 8;
    default: return 0;
  }
}

// ---------------------------------------------------------------------------
// Value

Value Value::string(std::string v) {
  Value r;
  r.type_ = ValueType::STRING;
  r.str_ = std::move(v);
  return r;
}

Value Value::strings(std::vector<std::string> v) {
  Value r;
  r.type_ = ValueType::ARRAY;
  r.elem_ = ValueType::STRING;
  r.strs_ = std::move(v);
  return r;
}

Value Value::arrays(std::vector<Value> v) {
  for (const auto& x : v)
    if (!x.is_array()) fail("gguf: nested array element is not an array");
  Value r;
  r.type_ = ValueType::ARRAY;
  r.elem_ = ValueType::ARRAY;
  r.items_ = std::move(v);
  return r;
}

Value Value::raw(ValueType elem, std::vector<uint8_t> bytes) {
  size_t es = value_type_size(elem);
  if (es == 0) fail("gguf: raw array of non-scalar type ", value_type_name(elem));
  if (bytes.size() % es) fail("gguf: raw array byte size not a multiple of the element size");
  Value r;
  r.type_ = ValueType::ARRAY;
  r.elem_ = elem;
  r.bytes_ = std::move(bytes);
  return r;
}

bool Value::is_integer() const {
  switch (type_) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64: return true;
    default: return false;
  }
}

namespace {

// Reads a scalar of type t from little-endian bytes as a signed/unsigned pair.
// Returns false for non-integer types.
bool read_integer(ValueType t, const uint8_t* p, bool* is_signed, uint64_t* u, int64_t* s) {
  switch (t) {
    case ValueType::UINT8: *u = p[0]; *is_signed = false; return true;
    case ValueType::BOOL: *u = p[0] != 0; *is_signed = false; return true;
    case ValueType::INT8: *s = int8_t(p[0]); *is_signed = true; return true;
    case ValueType::UINT16: { uint16_t v; std::memcpy(&v, p, 2); *u = v; *is_signed = false; return true; }
    case ValueType::INT16: { int16_t v; std::memcpy(&v, p, 2); *s = v; *is_signed = true; return true; }
    case ValueType::UINT32: { uint32_t v; std::memcpy(&v, p, 4); *u = v; *is_signed = false; return true; }
    case ValueType::INT32: { int32_t v; std::memcpy(&v, p, 4); *s = v; *is_signed = true; return true; }
    case ValueType::UINT64: { uint64_t v; std::memcpy(&v, p, 8); *u = v; *is_signed = false; return true; }
    case ValueType::INT64: { int64_t v; std::memcpy(&v, p, 8); *s = v; *is_signed = true; return true; }
    default: return false;
  }
}

double read_number(ValueType t, const uint8_t* p) {
  if (t == ValueType::FLOAT32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  if (t == ValueType::FLOAT64) {
    double d;
    std::memcpy(&d, p, 8);
    return d;
  }
  bool sg = false;
  uint64_t u = 0;
  int64_t s = 0;
  if (!read_integer(t, p, &sg, &u, &s)) fail("value of type ", value_type_name(t), " is not a number");
  return sg ? double(s) : double(u);
}

}  // namespace

uint64_t Value::as_u64() const {
  bool sg = false;
  uint64_t u = 0;
  int64_t s = 0;
  if (type_ == ValueType::BOOL || !read_integer(type_, bytes_.data(), &sg, &u, &s))
    fail("expected an integer, found ", value_type_name(type_));
  if (sg) {
    if (s < 0) fail("expected a non-negative integer, found ", s);
    return uint64_t(s);
  }
  return u;
}

int64_t Value::as_i64() const {
  bool sg = false;
  uint64_t u = 0;
  int64_t s = 0;
  if (type_ == ValueType::BOOL || !read_integer(type_, bytes_.data(), &sg, &u, &s))
    fail("expected an integer, found ", value_type_name(type_));
  if (sg) return s;
  if (u > uint64_t(std::numeric_limits<int64_t>::max())) fail("integer ", u, " out of range");
  return int64_t(u);
}

double Value::as_f64() const {
  if (type_ == ValueType::BOOL || type_ == ValueType::STRING || type_ == ValueType::ARRAY)
    fail("expected a number, found ", value_type_name(type_));
  return read_number(type_, bytes_.data());
}

bool Value::as_bool() const {
  if (type_ != ValueType::BOOL) fail("expected a bool, found ", value_type_name(type_));
  return bytes_[0] != 0;
}

const std::string& Value::as_string() const {
  if (type_ != ValueType::STRING) fail("expected a string, found ", value_type_name(type_));
  return str_;
}

size_t Value::size() const {
  if (type_ != ValueType::ARRAY) fail("expected an array, found ", value_type_name(type_));
  if (elem_ == ValueType::STRING) return strs_.size();
  if (elem_ == ValueType::ARRAY) return items_.size();
  return bytes_.size() / value_type_size(elem_);
}

Value Value::item(size_t i) const {
  if (i >= size()) fail("array index ", i, " out of range (size ", size(), ")");
  if (elem_ == ValueType::STRING) return string(strs_[i]);
  if (elem_ == ValueType::ARRAY) return items_[i];
  Value r;
  r.type_ = elem_;
  size_t es = value_type_size(elem_);
  r.bytes_.assign(bytes_.begin() + i * es, bytes_.begin() + (i + 1) * es);
  return r;
}

std::vector<int64_t> Value::as_ints() const {
  if (type_ != ValueType::ARRAY) fail("expected an array, found ", value_type_name(type_));
  size_t es = value_type_size(elem_);
  if (es == 0 || elem_ == ValueType::FLOAT32 || elem_ == ValueType::FLOAT64)
    fail("expected an integer array, found an array of ", value_type_name(elem_));
  std::vector<int64_t> out(bytes_.size() / es);
  for (size_t i = 0; i < out.size(); i++) {
    bool sg = false;
    uint64_t u = 0;
    int64_t s = 0;
    read_integer(elem_, bytes_.data() + i * es, &sg, &u, &s);
    if (!sg && u > uint64_t(std::numeric_limits<int64_t>::max()))
      fail("array element ", i, " out of range");
    out[i] = sg ? s : int64_t(u);
  }
  return out;
}

std::vector<double> Value::as_floats() const {
  if (type_ != ValueType::ARRAY) fail("expected an array, found ", value_type_name(type_));
  size_t es = value_type_size(elem_);
  if (es == 0 || elem_ == ValueType::BOOL)
    fail("expected a numeric array, found an array of ", value_type_name(elem_));
  std::vector<double> out(bytes_.size() / es);
  for (size_t i = 0; i < out.size(); i++) out[i] = read_number(elem_, bytes_.data() + i * es);
  return out;
}

namespace {

std::string quote(const std::string& s, size_t max_len = 80) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_len; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "\"";
}

std::string scalar_string(const Value& v) {
  if (v.type() == ValueType::BOOL) return v.as_bool() ? "true" : "false";
  if (v.type() == ValueType::STRING) return quote(v.as_string());
  if (v.is_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v.as_f64());
    return buf;
  }
  // Integer: print signed or unsigned as stored.
  if (v.type() == ValueType::INT8 || v.type() == ValueType::INT16 || v.type() == ValueType::INT32 ||
      v.type() == ValueType::INT64)
    return std::to_string(v.as_i64());
  return std::to_string(v.as_u64());
}

}  // namespace

std::string Value::to_string(size_t max_items) const {
  if (type_ != ValueType::ARRAY) return scalar_string(*this);
  size_t n = size();
  std::string out = "[";
  size_t shown = std::min(n, max_items);
  for (size_t i = 0; i < shown; i++) {
    if (i) out += ", ";
    out += item(i).to_string(max_items);
  }
  if (shown < n) out += str(", ... (", n, " ", value_type_name(elem_), " items)");
  return out + "]";
}

bool operator==(const Value& a, const Value& b) {
  return a.type_ == b.type_ && a.elem_ == b.elem_ && a.bytes_ == b.bytes_ && a.str_ == b.str_ &&
         a.strs_ == b.strs_ && a.items_ == b.items_;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (uint32_t i = 0; i < std::max<uint32_t>(n_dims, 1); i++) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

// ---------------------------------------------------------------------------
// Parser: a bounds-checked cursor over the file bytes.

class Parser {
 public:
  Parser(const uint8_t* data, size_t size, const std::string& name)
      : p_(data), size_(size), name_(name) {}

  void parse(File& f);

 private:
  [[noreturn]] void error(const std::string& what) const { fail(name_, ": ", what); }
  void need(uint64_t n, const char* what) {
    if (n > size_ - pos_)
      error(str("file truncated while reading ", what, " at byte ", pos_, " (need ", n,
                " bytes, ", size_ - pos_, " left)"));
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    uint64_t len = read<uint64_t>(what.c_str());
    if (len > kMaxStringLength) error(str(what, ": string length ", len, " exceeds the limit"));
    need(len, what.c_str());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  Value read_value(ValueType t, const std::string& key, uint32_t depth);
  Value read_array(const std::string& key, uint32_t depth);

  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string name_;
};

Value Parser::read_value(ValueType t, const std::string& key, uint32_t depth) {
  if (t == ValueType::STRING) return Value::string(read_string("metadata key '" + key + "' value"));
  if (t == ValueType::ARRAY) return read_array(key, depth + 1);
  size_t es = value_type_size(t);
  need(es, "metadata value");
  Value v;
  v.type_ = t;
  v.bytes_.assign(p_ + pos_, p_ + pos_ + es);
  pos_ += es;
  return v;
}

Value Parser::read_array(const std::string& key, uint32_t depth) {
  if (depth > kMaxArrayDepth) error(str("metadata key '", key, "': arrays nested too deeply"));
  uint32_t et = read<uint32_t>("array element type");
  if (!valid_value_type(et))
    error(str("metadata key '", key, "': invalid array element type ", et));
  uint64_t n = read<uint64_t>("array length");
  if (n > kMaxArrayLength) error(str("metadata key '", key, "': array length ", n, " exceeds the limit"));
  ValueType elem = ValueType(et);
  Value v;
  v.type_ = ValueType::ARRAY;
  v.elem_ = elem;
  size_t es = value_type_size(elem);
  if (es) {
    if (n > (size_ - pos_) / es)
      error(str("metadata key '", key, "': array of ", n, " ", value_type_name(elem),
                " runs past the end of the file"));
    v.bytes_.assign(p_ + pos_, p_ + pos_ + n * es);
    pos_ += n * es;
  } else if (elem == ValueType::STRING) {
    // Each string takes at least 8 bytes: reject impossible counts before reserving.
    if (n > (size_ - pos_) / 8)
      error(str("metadata key '", key, "': array of ", n, " strings runs past the end of the file"));
    v.strs_.reserve(n);
    for (uint64_t i = 0; i < n; i++)
      v.strs_.push_back(read_string(str("metadata key '", key, "' item ", i)));
  } else {  // nested arrays: each at least 12 bytes
    if (n > (size_ - pos_) / 12)
      error(str("metadata key '", key, "': array of ", n, " arrays runs past the end of the file"));
    v.items_.reserve(n);
    for (uint64_t i = 0; i < n; i++) v.items_.push_back(read_array(key, depth));
  }
  return v;
}

void Parser::parse(File& f) {
  f.base_ = p_;
  f.size_ = size_;
  uint32_t magic = read<uint32_t>("magic");
  if (magic != kMagic) error("not a GGUF file (bad magic)");
  uint32_t version = read<uint32_t>("version");
  if ((version & 0xFFFF) == 0 && version != 0)
    error(str("big-endian GGUF (version field 0x", std::hex, version, ") is not supported"));
  if (version != 2 && version != 3)
    error(str("unsupported GGUF version ", version, " (expected 3)"));
  f.version_ = version;
  uint64_t n_tensors = read<uint64_t>("tensor count");
  uint64_t n_kv = read<uint64_t>("metadata count");
  if (n_tensors >= (1ull << 63)) error("negative tensor count");
  if (n_kv >= (1ull << 63)) error("negative metadata count");
  // Every KV needs >= 12 bytes and every tensor record >= 24: reject impossible counts early.
  if (n_kv > (size_ - pos_) / 12) error(str("metadata count ", n_kv, " is larger than the file allows"));
  if (n_tensors > (size_ - pos_) / 24)
    error(str("tensor count ", n_tensors, " is larger than the file allows"));

  std::unordered_set<std::string> keys;
  f.kvs_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; i++) {
    std::string key = read_string(str("metadata key #", i));
    if (!keys.insert(key).second) error(str("duplicate metadata key '", key, "'"));
    uint32_t t = read<uint32_t>("metadata value type");
    if (!valid_value_type(t)) error(str("metadata key '", key, "': invalid value type ", t));
    Value v = read_value(ValueType(t), key, 0);
    f.kvs_.push_back({std::move(key), std::move(v)});
  }

  if (const Value* a = f.find("general.alignment")) {
    if (a->type() != ValueType::UINT32)
      error(str("general.alignment must be uint32, found ", value_type_name(a->type())));
    uint32_t al = uint32_t(a->as_u64());
    if (al == 0 || (al & (al - 1))) error(str("general.alignment ", al, " is not a power of two"));
    f.alignment_ = al;
  }

  std::unordered_set<std::string> names;
  f.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; i++) {
    TensorInfo t;
    t.name = read_string(str("tensor #", i, " name"));
    if (t.name.size() > kMaxTensorNameLength)
      error(str("tensor #", i, ": name longer than ", kMaxTensorNameLength, " bytes"));
    if (!names.insert(t.name).second) error(str("duplicate tensor name '", t.name, "'"));
    const std::string ctx = "tensor '" + t.name + "'";
    t.n_dims = read<uint32_t>("tensor dimension count");
    if (t.n_dims > 4) error(str(ctx, ": ", t.n_dims, " dimensions (at most 4)"));
    uint64_t n_el = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < t.n_dims; d++) {
      int64_t ne = read<int64_t>("tensor dimension");
      if (ne < 0) error(str(ctx, ": negative dimension ", ne));
      t.ne[d] = ne;
      if (ne != 0 && n_el > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(ne)) overflow = true;
      n_el *= uint64_t(ne);
    }
    if (overflow) error(str(ctx, ": element count overflows"));
    uint32_t type = read<uint32_t>("tensor type");
    auto traits = type_traits(type);
    if (!traits) error(str(ctx, ": invalid tensor type id ", type));
    t.type = TensorType(type);
    if (t.ne[0] % traits->block_size)
      error(str(ctx, ": first dimension ", t.ne[0], " is not a multiple of the ", traits->name,
                " block size ", traits->block_size));
    uint64_t blocks = n_el / traits->block_size;
    if (blocks > std::numeric_limits<uint64_t>::max() / traits->type_size)
      error(str(ctx, ": byte size overflows"));
    t.n_elements = n_el;
    t.n_bytes = blocks * traits->type_size;
    t.offset = read<uint64_t>("tensor offset");
    f.tensors_.push_back(std::move(t));
  }

  f.data_start_ = align_up(pos_, f.alignment_);
  // Tensor data must lie inside the file, aligned, and must not overlap.
  std::vector<const TensorInfo*> order;
  for (auto& t : f.tensors_) {
    const std::string ctx = "tensor '" + t.name + "'";
    if (t.offset % f.alignment_)
      error(str(ctx, ": data offset ", t.offset, " is not a multiple of the alignment ", f.alignment_));
    if (t.offset > size_ || f.data_start_ > size_ - t.offset || t.n_bytes > size_ - f.data_start_ - t.offset)
      error(str(ctx, ": data [", t.offset, ", +", t.n_bytes, ") runs past the end of the file (",
                size_, " bytes, data section at ", f.data_start_, ")"));
    t.data = p_ + f.data_start_ + t.offset;
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); i++) {
    const TensorInfo* a = order[i - 1];
    const TensorInfo* b = order[i];
    if (a->n_bytes > 0 && b->n_bytes > 0 && a->offset + a->n_bytes > b->offset)
      error(str("tensors '", a->name, "' and '", b->name, "' overlap"));
  }
}

// ---------------------------------------------------------------------------
// File

File File::open(const std::string& path, FileBacking backing) {
  auto map = std::make_shared<MappedFile>(path, backing);
  File f = parse(map->data(), map->size(), path);
  f.map_ = std::move(map);
  return f;
}

File File::parse(const uint8_t* data, size_t size, const std::string& name) {
  File f;
  f.path_ = name;
  static const uint8_t empty = 0;
  Parser(data ? data : &empty, data ? size : 0, name).parse(f);
  return f;
}

const Value* File::find(std::string_view key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

namespace {
template <typename F>
auto with_key(const File& f, std::string_view key, F fn) -> decltype(fn(std::declval<const Value&>())) {
  const Value* v = f.find(key);
  if (!v) fail(f.path(), ": metadata key '", key, "' is missing");
  try {
    return fn(*v);
  } catch (const Error& e) {
    fail(f.path(), ": metadata key '", key, "': ", e.what());
  }
}
}  // namespace

uint64_t File::get_u64(std::string_view key) const {
  return with_key(*this, key, [](const Value& v) { return v.as_u64(); });
}
uint32_t File::get_u32(std::string_view key) const {
  return with_key(*this, key, [](const Value& v) {
    uint64_t x = v.as_u64();
    if (x > 0xFFFFFFFFull) fail("value ", x, " does not fit in 32 bits");
    return uint32_t(x);
  });
}
int64_t File::get_i64(std::string_view key) const {
  return with_key(*this, key, [](const Value& v) { return v.as_i64(); });
}
double File::get_f64(std::string_view key) const {
  return with_key(*this, key, [](const Value& v) { return v.as_f64(); });
}
bool File::get_bool(std::string_view key) const {
  return with_key(*this, key, [](const Value& v) { return v.as_bool(); });
}
const std::string& File::get_string(std::string_view key) const {
  return *with_key(*this, key, [](const Value& v) { return &v.as_string(); });
}
const Value& File::get_array(std::string_view key) const {
  return *with_key(*this, key, [](const Value& v) {
    if (!v.is_array()) fail("expected an array, found ", value_type_name(v.type()));
    return &v;
  });
}
uint32_t File::get_u32_or(std::string_view key, uint32_t dflt) const {
  return has(key) ? get_u32(key) : dflt;
}
float File::get_f32_or(std::string_view key, float dflt) const {
  return has(key) ? get_f32(key) : dflt;
}
bool File::get_bool_or(std::string_view key, bool dflt) const {
  return has(key) ? get_bool(key) : dflt;
}
std::string File::get_string_or(std::string_view key, const std::string& dflt) const {
  return has(key) ? get_string(key) : dflt;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) fail(path_, ": tensor '", name, "' is missing");
  return *t;
}

std::string File::architecture() const { return get_string_or("general.architecture", ""); }

// ---------------------------------------------------------------------------
// Writer

void Writer::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1))) fail("gguf writer: alignment ", alignment, " is not a power of two");
  alignment_ = alignment;
  add("general.alignment", Value::u32(alignment));
}

void Writer::add(std::string key, Value value) {
  for (const auto& kv : kvs_)
    if (kv.key == key) fail("gguf writer: duplicate metadata key '", key, "'");
  kvs_.push_back({std::move(key), std::move(value)});
}

void Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, Producer producer) {
  auto traits = type_traits(type);
  if (!traits) fail("gguf writer: tensor '", name, "': invalid type");
  if (ne.empty() || ne.size() > 4) fail("gguf writer: tensor '", name, "': 1 to 4 dimensions needed");
  for (const auto& t : tensors_)
    if (t.name == name) fail("gguf writer: duplicate tensor '", name, "'");
  uint64_t n = 1;
  for (int64_t d : ne) {
    if (d < 0) fail("gguf writer: tensor '", name, "': negative dimension");
    n *= uint64_t(d);
  }
  if (ne[0] % traits->block_size)
    fail("gguf writer: tensor '", name, "': first dimension ", ne[0], " is not a multiple of ",
         traits->block_size);
  tensors_.push_back({std::move(name), type, std::move(ne), n / traits->block_size * traits->type_size,
                      std::move(producer)});
}

void Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, const void* data) {
  uint64_t n = 1;
  for (int64_t d : ne) n *= uint64_t(d);
  auto traits = type_traits(type);
  uint64_t bytes = traits ? n / traits->block_size * traits->type_size : 0;
  add_tensor(std::move(name), type, std::move(ne),
             [data, bytes](const Sink& sink) { sink(data, bytes); });
}

namespace {

class ByteWriter {
 public:
  explicit ByteWriter(const Writer::Sink& sink) : sink_(sink) {}
  template <typename T>
  void put(T v) { bytes(&v, sizeof v); }
  void bytes(const void* p, size_t n) {
    sink_(p, n);
    pos_ += n;
  }
  void string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t alignment) {
    static const uint8_t zeros[256] = {};
    while (pos_ % alignment) bytes(zeros, std::min<uint64_t>(sizeof zeros, align_up(pos_, alignment) - pos_));
  }
  uint64_t pos() const { return pos_; }

 private:
  const Writer::Sink& sink_;
  uint64_t pos_ = 0;
};

void write_array_body(ByteWriter& w, const Value& v) {
  w.put<uint32_t>(uint32_t(v.elem_type()));
  w.put<uint64_t>(v.size());
  if (v.elem_type() == ValueType::STRING) {
    for (const auto& s : v.string_items()) w.string(s);
  } else if (v.elem_type() == ValueType::ARRAY) {
    for (const auto& a : v.array_items()) write_array_body(w, a);
  } else {
    w.bytes(v.raw_bytes().data(), v.raw_bytes().size());
  }
}

}  // namespace

void Writer::write_to(const Sink& out) const {
  ByteWriter w(out);
  w.put<uint32_t>(kMagic);
  w.put<uint32_t>(3);
  w.put<uint64_t>(tensors_.size());
  w.put<uint64_t>(kvs_.size());
  for (const auto& kv : kvs_) {
    w.string(kv.key);
    w.put<uint32_t>(uint32_t(kv.value.type()));
    if (kv.value.type() == ValueType::STRING) {
      w.string(kv.value.as_string());
    } else if (kv.value.is_array()) {
      write_array_body(w, kv.value);
    } else {
      w.bytes(kv.value.raw_bytes().data(), kv.value.raw_bytes().size());
    }
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    w.string(t.name);
    w.put<uint32_t>(uint32_t(t.ne.size()));
    for (int64_t d : t.ne) w.put<int64_t>(d);
    w.put<uint32_t>(uint32_t(t.type));
    w.put<uint64_t>(offset);
    offset += align_up(t.n_bytes, alignment_);
  }
  w.pad(alignment_);
  for (const auto& t : tensors_) {
    uint64_t written = 0;
    t.producer([&](const void* p, size_t n) {
      written += n;
      if (written > t.n_bytes) fail("gguf writer: tensor '", t.name, "': producer wrote too many bytes");
      w.bytes(p, n);
    });
    if (written != t.n_bytes)
      fail("gguf writer: tensor '", t.name, "': producer wrote ", written, " bytes, expected ", t.n_bytes);
    w.pad(alignment_);
  }
}

void Writer::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, ": cannot create: ", std::strerror(errno));
  std::vector<uint8_t> buf;
  buf.reserve(1 << 20);
  auto flush = [&] {
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), f) != buf.size())
      fail(path, ": write failed: ", std::strerror(errno));
    buf.clear();
  };
  try {
    write_to([&](const void* p, size_t n) {
      const uint8_t* b = static_cast<const uint8_t*>(p);
      if (n >= (1 << 20)) {
        flush();
        if (std::fwrite(b, 1, n, f) != n) fail(path, ": write failed: ", std::strerror(errno));
        return;
      }
      buf.insert(buf.end(), b, b + n);
      if (buf.size() >= (1 << 20)) flush();
    });
    flush();
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail(path, ": cannot rename from ", tmp, ": ", std::strerror(e));
  }
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  write_to([&](const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

}  // namespace pocket::gguf

// Minimal FlexBuffers map writer for the CondComp custom ops' options (test side).
//
// Writes the same kind of buffer the TFLite converter puts in a custom op's
// `custom_options`: a root map of string / int / float / bool values, keys
// sorted. The byte width of the map (1, 2, 4 or 8) and whether scalars are
// stored inline or indirectly can be chosen, so the op's parser sees more than
// one valid encoding. Independent of tflite/ops/flexbuffer_map.c (the reader
// under test).
#ifndef CONDCOMP_DRIVER_FLEXBUF_WRITER_H_
#define CONDCOMP_DRIVER_FLEXBUF_WRITER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ccfx {

enum Type : uint8_t {
  kNull = 0,
  kInt = 1,
  kUInt = 2,
  kFloat = 3,
  kKey = 4,
  kString = 5,
  kIndirectInt = 6,
  kIndirectUInt = 7,
  kIndirectFloat = 8,
  kMap = 9,
  kVectorKey = 14,
  kBool = 26,
};

struct Value {
  enum Kind { kI, kF, kS, kB } kind = kI;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  bool indirect = false;  // scalars only
};

struct Entry {
  std::string key;
  Value value;
};

inline Value Int(int64_t v, bool indirect = false) {
  Value x;
  x.kind = Value::kI;
  x.i = v;
  x.indirect = indirect;
  return x;
}
inline Value Float(double v, bool indirect = false) {
  Value x;
  x.kind = Value::kF;
  x.f = v;
  x.indirect = indirect;
  return x;
}
inline Value Str(const std::string& v) {
  Value x;
  x.kind = Value::kS;
  x.s = v;
  return x;
}
inline Value Bool(bool v) {
  Value x;
  x.kind = Value::kB;
  x.i = v ? 1 : 0;
  return x;
}

class Writer {
 public:
  std::vector<uint8_t> buf;

  void Align(size_t w) {
    while (buf.size() % w) buf.push_back(0);
  }
  void PutUInt(uint64_t v, size_t w) {
    for (size_t k = 0; k < w; ++k) buf.push_back(static_cast<uint8_t>(v >> (8 * k)));
  }
  void PutFloat(double v, size_t w) {
    if (w == 4) {
      float f = static_cast<float>(v);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      PutUInt(u, 4);
    } else {
      uint64_t u;
      std::memcpy(&u, &v, 8);
      PutUInt(u, 8);
    }
  }
};

inline int Log2(size_t w) { return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3; }

// Whether `entries` can be written with map width `width`: inline floats need
// 4 bytes or more, and inline integers must fit.
inline bool Fits(const std::vector<Entry>& entries, size_t width) {
  for (const Entry& e : entries) {
    const Value& v = e.value;
    if (v.kind == Value::kF && !v.indirect && width < 4) return false;
    if (v.kind == Value::kF && !v.indirect && width == 4 &&
        static_cast<double>(static_cast<float>(v.f)) != v.f && v.f == v.f)
      return false;
    if ((v.kind == Value::kI || v.kind == Value::kB) && !v.indirect && width < 8) {
      const int64_t lim = int64_t{1} << (8 * width - 1);
      if (v.i < -lim || v.i >= lim) return false;
    }
  }
  return true;
}

// Serializes `entries` (keys need not be sorted; duplicates are kept as given)
// as a root map of byte width `width`. Returns false (and leaves *out empty)
// when an offset or inline value does not fit in `width` bytes.
inline bool BuildMap(std::vector<Entry> entries, size_t width, bool sort_keys,
                     std::vector<uint8_t>* out) {
  out->clear();
  const uint64_t limit = width >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * width)) - 1;
  bool fits = true;
  auto off = [&](uint64_t v) {
    if (v > limit) fits = false;
    return v;
  };
  if (sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.key < b.key; });
  }
  Writer w;
  const size_t n = entries.size();
  std::vector<size_t> key_at(n), val_at(n, 0);
  std::vector<uint8_t> packed(n);
  // Keys (NUL-terminated).
  for (size_t i = 0; i < n; ++i) {
    key_at[i] = w.buf.size();
    w.buf.insert(w.buf.end(), entries[i].key.begin(), entries[i].key.end());
    w.buf.push_back(0);
  }
  // Out-of-line values: strings and indirect scalars.
  for (size_t i = 0; i < n; ++i) {
    const Value& v = entries[i].value;
    if (v.kind == Value::kS) {
      const size_t sw = v.s.size() < 256 ? 1 : v.s.size() < 65536 ? 2 : 4;
      w.Align(sw);
      w.PutUInt(v.s.size(), sw);
      val_at[i] = w.buf.size();
      w.buf.insert(w.buf.end(), v.s.begin(), v.s.end());
      w.buf.push_back(0);
      packed[i] = static_cast<uint8_t>((kString << 2) | Log2(sw));
    } else if (v.indirect && v.kind != Value::kB) {
      const size_t cw = v.kind == Value::kF ? 8 : 8;
      w.Align(cw);
      val_at[i] = w.buf.size();
      if (v.kind == Value::kF) {
        w.PutFloat(v.f, cw);
        packed[i] = static_cast<uint8_t>((kIndirectFloat << 2) | Log2(cw));
      } else {
        w.PutUInt(static_cast<uint64_t>(v.i), cw);
        packed[i] = static_cast<uint8_t>((kIndirectInt << 2) | Log2(cw));
      }
    }
  }
  // Keys vector: [count][offsets...], typed vector of keys.
  w.Align(width);
  w.PutUInt(n, width);
  const size_t keys_vec = w.buf.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = w.buf.size();
    w.PutUInt(off(at - key_at[i]), width);
  }
  // Map: [keys offset][keys width][count] values... types...
  w.Align(width);
  const size_t keys_off_at = w.buf.size();
  w.PutUInt(off(keys_off_at - keys_vec), width);
  w.PutUInt(width, width);
  w.PutUInt(n, width);
  const size_t map_at = w.buf.size();
  for (size_t i = 0; i < n; ++i) {
    const Value& v = entries[i].value;
    const size_t at = w.buf.size();
    if (v.kind == Value::kS || (v.indirect && v.kind != Value::kB)) {
      w.PutUInt(off(at - val_at[i]), width);
    } else if (v.kind == Value::kF) {
      // Inline floats need a 4- or 8-byte slot; narrower maps store them indirectly.
      w.PutFloat(v.f, width >= 8 ? 8 : 4);
      if (width > 8) w.PutUInt(0, width - 8);
      packed[i] = static_cast<uint8_t>((kFloat << 2) | Log2(width));
    } else if (v.kind == Value::kB) {
      w.PutUInt(static_cast<uint64_t>(v.i), width);
      packed[i] = static_cast<uint8_t>((kBool << 2) | Log2(width));
    } else {
      w.PutUInt(static_cast<uint64_t>(v.i), width);
      packed[i] = static_cast<uint8_t>((kInt << 2) | Log2(width));
    }
  }
  for (size_t i = 0; i < n; ++i) w.buf.push_back(packed[i]);
  // Root: [offset to map][packed type][root width].
  const size_t root_w = 8;
  w.Align(root_w);
  const size_t root_at = w.buf.size();
  w.PutUInt(root_at - map_at, root_w);
  w.buf.push_back(static_cast<uint8_t>((kMap << 2) | Log2(width)));
  w.buf.push_back(static_cast<uint8_t>(root_w));
  if (!fits || !Fits(entries, width)) return false;
  *out = std::move(w.buf);
  return true;
}

// Width 8 always fits.
inline std::vector<uint8_t> BuildMap(const std::vector<Entry>& entries) {
  std::vector<uint8_t> out;
  BuildMap(entries, 8, true, &out);
  return out;
}

}  // namespace ccfx

#endif  // CONDCOMP_DRIVER_FLEXBUF_WRITER_H_

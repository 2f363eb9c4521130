// Reading layer files (layer_file.h).

#include "layer_file.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "reference.h"

namespace ccdrv {

namespace {

bool read_exact(FILE* f, void* p, size_t n) { return std::fread(p, 1, n, f) == n; }
bool read_i32(FILE* f, int* v) { return read_exact(f, v, 4); }
// True if the file holds at least n more bytes (so that a damaged size
// fails the read instead of allocating gigabytes).
bool has_bytes(FILE* f, size_t n) {
  const long at = std::ftell(f);
  if (at < 0 || std::fseek(f, 0, SEEK_END) != 0) return false;
  const long end = std::ftell(f);
  std::fseek(f, at, SEEK_SET);
  return end >= at && static_cast<size_t>(end - at) >= n;
}
bool read_floats(FILE* f, std::vector<float>* v, size_t n) {
  if (!has_bytes(f, n * 4)) return false;
  v->resize(n);
  return n == 0 || read_exact(f, v->data(), n * 4);
}

// Attributes the reference can compute with, and arrays of at most 2^31
// elements.
bool attributes_ok(const Layer& L) {
  if (L.K < 1 || L.bs < 1 || L.D < 1 || L.ibs_opt < 0 || L.D % L.ibs() != 0) return false;
  if (L.top_k < 0 || L.top_k > L.K) return false;
  if (L.op == 1 && (L.KH < 1 || L.KW < 1 || L.sh < 1 || L.sw < 1 || L.dh < 1 || L.dw < 1))
    return false;
  const double limit = 2147483648.0;
  const double nx =
      static_cast<double>(L.B) * L.D * (L.op == 1 ? static_cast<double>(L.H) * L.W : 1.0);
  const double nk =
      static_cast<double>(L.K) * L.bs * L.D * (L.op == 1 ? static_cast<double>(L.KH) * L.KW : 1.0);
  const double ny =
      static_cast<double>(L.B) * L.units() * (L.op == 1 ? static_cast<double>(L.H) * L.W : 1.0);
  return nx < limit && nk < limit && ny < limit && static_cast<double>(L.D) * L.K < limit;
}

// One layer; version 1 or 2 of the format.
bool read_layer(FILE* f, int version, Layer* out, std::string* why) {
  Layer& L = *out;
  int nl = 0, al = 0, has_bias = 0;
  bool ok =
      read_i32(f, &L.op) && (L.op == 0 || L.op == 1) && read_i32(f, &nl) && nl >= 0 && nl < 256;
  if (!ok) return false;
  L.name.resize(nl);
  ok = (nl == 0 || read_exact(f, &L.name[0], nl)) && read_i32(f, &al) && al > 0 && al < 64;
  if (!ok) return false;
  std::string act(al, ' ');
  if (!read_exact(f, &act[0], al)) return false;
  L.act = act_from_name(act);
  if (L.act < 0) {
    *why = "unknown activation '" + act + "'";
    return false;
  }
  ok = read_exact(f, &L.thr, 4) && read_i32(f, &has_bias);
  L.has_bias = has_bias != 0;
  int* fields[] = {&L.B, &L.D, &L.H, &L.W, &L.K, &L.bs, &L.KH, &L.KW, &L.sh, &L.sw, &L.dh, &L.dw};
  for (int* p : fields) ok = ok && read_i32(f, p) && *p >= 0 && *p < (1 << 24);
  int same = 0;
  ok = ok && read_i32(f, &same) && read_i32(f, &L.ibs_opt);
  L.same = same != 0;
  int scale_by_gate = 0, quant = 0, n_input_scale = 0;
  if (ok && version >= 2)
    ok = read_i32(f, &L.top_k) && read_i32(f, &scale_by_gate) && read_i32(f, &quant) &&
         read_i32(f, &n_input_scale) && n_input_scale >= 0 && n_input_scale <= L.D;
  L.scale_by_gate = scale_by_gate != 0;
  L.quant = quant != 0;
  if (!ok) return false;
  if (!attributes_ok(L) || (n_input_scale != 0 && n_input_scale != L.D / L.ibs())) {
    *why = "attributes out of range";
    return false;
  }
  int OH = 0, OW = 0, pt, pl;
  if (L.op == 1) {
    conv_geometry(L.H, L.KH, L.sh, L.dh, L.same, &OH, &pt);
    conv_geometry(L.W, L.KW, L.sw, L.dw, L.same, &OW, &pl);
  }
  const size_t nx =
      L.op == 0 ? static_cast<size_t>(L.B) * L.D : static_cast<size_t>(L.B) * L.H * L.W * L.D;
  const size_t nk = L.op == 0 ? static_cast<size_t>(L.K) * L.D * L.bs
                              : static_cast<size_t>(L.K) * L.KH * L.KW * L.D * L.bs;
  ok = read_floats(f, &L.x, nx);
  if (ok && L.quant) {
    ok = has_bytes(f, nk);
    if (ok) L.kernel_q.resize(nk);
    ok = ok && (nk == 0 || read_exact(f, L.kernel_q.data(), nk)) &&
         read_floats(f, &L.kernel_scale, L.units());
  } else {
    ok = ok && read_floats(f, &L.kernel, nk);
  }
  ok = ok && (!L.has_bias || read_floats(f, &L.bias, L.units())) &&
       read_floats(f, &L.wp, static_cast<size_t>(L.D) * L.K) && read_floats(f, &L.bp, L.K) &&
       read_floats(f, &L.input_scale, n_input_scale);
  if (!ok) return false;
  if (version == 1) {
    L.y_shape =
        L.op == 0 ? std::vector<int>{L.B, L.units()} : std::vector<int>{L.B, OH, OW, L.units()};
  } else {
    int rank = 0;
    if (!read_i32(f, &rank) || rank < 0 || rank > 8) return false;
    L.y_shape.resize(rank);
    for (int& d : L.y_shape)
      if (!read_i32(f, &d) || d < 0) return false;
  }
  double ny = 1.0;
  for (int d : L.y_shape) ny *= d;
  if (ny >= 2147483648.0) return false;
  return read_floats(f, &L.y_expected, static_cast<size_t>(ny));
}

}  // namespace

bool load_layers(const char* path, std::vector<Layer>* layers, std::string* err) {
  FILE* f = std::fopen(path, "rb");
  if (!f) {
    *err = std::string("cannot open ") + path;
    return false;
  }
  char magic[8];
  int n = 0, version = 0;
  bool ok = read_exact(f, magic, 8);
  if (ok && std::memcmp(magic, "CCLAYER1", 8) == 0) version = 1;
  if (ok && std::memcmp(magic, "CCLAYER2", 8) == 0) version = 2;
  ok = version > 0 && read_i32(f, &n) && n >= 0 && n < (version == 1 ? 1000 : 1 << 20);
  std::string why;
  for (int l = 0; ok && l < n; ++l) {
    Layer L;
    ok = read_layer(f, version, &L, &why);
    if (ok)
      layers->push_back(std::move(L));
    else if (!why.empty())
      why = "layer " + std::to_string(l) + ": " + why;
  }
  std::fclose(f);
  if (!ok)
    *err = std::string("malformed layer file ") + path + (why.empty() ? "" : " (" + why + ")");
  return ok;
}

}  // namespace ccdrv

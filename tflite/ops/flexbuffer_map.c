/* Bounds-checked FlexBuffers map reader, see flexbuffer_map.h.
 *
 * FlexBuffers layout (https://flatbuffers.dev/flexbuffers/): the buffer ends
 * with [root value][root packed type][root byte width]. A packed type byte is
 * (type << 2) | log2(child byte width). Offset-typed values (strings, keys,
 * maps, vectors, indirect scalars) are unsigned distances *backwards* from the
 * location of the value. A map at `p` with byte width W is preceded by
 * [keys vector offset][keys byte width][count], each W bytes, and followed by
 * `count` packed type bytes after its `count` values; keys are sorted.
 */
#include "flexbuffer_map.h"

#include <string.h>

enum {
  FXB_NULL = 0,
  FXB_INT = 1,
  FXB_UINT = 2,
  FXB_FLOAT = 3,
  FXB_KEY = 4,
  FXB_STRING = 5,
  FXB_INDIRECT_INT = 6,
  FXB_INDIRECT_UINT = 7,
  FXB_INDIRECT_FLOAT = 8,
  FXB_MAP = 9,
  FXB_BOOL = 26,
};

static int valid_width(unsigned w) { return w == 1 || w == 2 || w == 4 || w == 8; }

static int in_bounds(const uint8_t* buf, size_t size, size_t off, size_t len) {
  (void)buf;
  return off <= size && len <= size - off;
}

static uint64_t read_uint(const uint8_t* p, unsigned w) {
  uint64_t v = 0;
  for (unsigned i = 0; i < w; ++i) v |= (uint64_t)p[i] << (8 * i); /* little endian */
  return v;
}

static int64_t read_int(const uint8_t* p, unsigned w) {
  uint64_t u = read_uint(p, w);
  if (w < 8) {
    uint64_t sign = (uint64_t)1 << (8 * w - 1);
    if (u & sign) u |= ~((sign << 1) - 1);
  }
  return (int64_t)u;
}

static int read_float(const uint8_t* p, unsigned w, double* out) {
  if (w == 4) {
    float f;
    memcpy(&f, p, 4);
    *out = f;
    return 1;
  }
  if (w == 8) {
    double d;
    memcpy(&d, p, 8);
    *out = d;
    return 1;
  }
  return 0; /* 1- and 2-byte floats are not valid FlexBuffers */
}

/* Follows a backwards offset stored at `at` (width w). */
static int follow(const uint8_t* buf, size_t size, size_t at, unsigned w, size_t* target) {
  if (!in_bounds(buf, size, at, w)) return 0;
  uint64_t off = read_uint(buf + at, w);
  if (off > at) return 0;
  *target = (size_t)(at - off);
  return *target < size;
}

cc_fxb_status cc_fxb_open_map(const void* data, size_t size, cc_fxb_map* map) {
  memset(map, 0, sizeof(*map));
  map->buf = (const uint8_t*)data;
  map->size = size;
  if (size == 0) return CC_FXB_OK; /* no options at all: empty map */
  if (data == NULL || size < 3) return CC_FXB_MALFORMED;
  const uint8_t* buf = map->buf;
  unsigned root_width = buf[size - 1];
  uint8_t root_type = buf[size - 2];
  if (!valid_width(root_width) || size < 2 + (size_t)root_width) return CC_FXB_MALFORMED;
  if ((root_type >> 2) != FXB_MAP) return CC_FXB_MALFORMED;
  size_t root_at = size - 2 - root_width;
  size_t p;
  if (!follow(buf, size, root_at, root_width, &p)) return CC_FXB_MALFORMED;
  unsigned w = 1u << (root_type & 3);
  if (p < 3 * (size_t)w) return CC_FXB_MALFORMED;
  uint64_t count = read_uint(buf + p - w, w);
  unsigned kw64 = (unsigned)read_uint(buf + p - 2 * w, w);
  size_t keys;
  if (!valid_width(kw64)) return CC_FXB_MALFORMED;
  if (!follow(buf, size, p - 3 * w, w, &keys)) return CC_FXB_MALFORMED;
  if (count > size) return CC_FXB_MALFORMED;
  /* values + their type bytes, and the key offsets, must fit. */
  if (!in_bounds(buf, size, p, (size_t)count * (w + 1))) return CC_FXB_MALFORMED;
  if (!in_bounds(buf, size, keys, (size_t)count * kw64)) return CC_FXB_MALFORMED;
  map->values = p;
  map->keys = keys;
  map->count = count;
  map->width = w;
  map->key_width = kw64;
  return CC_FXB_OK;
}

cc_fxb_status cc_fxb_key_at(const cc_fxb_map* map, uint64_t i, const char** key) {
  if (i >= map->count) return CC_FXB_MISSING;
  size_t at = map->keys + (size_t)i * map->key_width;
  size_t k;
  if (!follow(map->buf, map->size, at, map->key_width, &k)) return CC_FXB_MALFORMED;
  /* must be NUL-terminated inside the buffer */
  if (memchr(map->buf + k, 0, map->size - k) == NULL) return CC_FXB_MALFORMED;
  *key = (const char*)(map->buf + k);
  return CC_FXB_OK;
}

/* Finds `key`; returns its value location and packed type. Linear scan: the
 * maps here have a handful of entries. */
static cc_fxb_status find(const cc_fxb_map* map, const char* key, size_t* at, uint8_t* packed) {
  for (uint64_t i = 0; i < map->count; ++i) {
    const char* k;
    cc_fxb_status s = cc_fxb_key_at(map, i, &k);
    if (s != CC_FXB_OK) return s;
    if (strcmp(k, key) == 0) {
      *at = map->values + (size_t)i * map->width;
      *packed = map->buf[map->values + (size_t)map->count * map->width + (size_t)i];
      return CC_FXB_OK;
    }
  }
  return CC_FXB_MISSING;
}

static cc_fxb_status scalar(const cc_fxb_map* map, const char* key, int want_float, int64_t* iout,
                            double* dout, int* is_float) {
  size_t at;
  uint8_t packed;
  cc_fxb_status s = find(map, key, &at, &packed);
  if (s != CC_FXB_OK) return s;
  int type = packed >> 2;
  unsigned w = map->width;
  const uint8_t* buf = map->buf;
  if (type == FXB_INDIRECT_INT || type == FXB_INDIRECT_UINT || type == FXB_INDIRECT_FLOAT) {
    size_t target;
    if (!follow(buf, map->size, at, w, &target)) return CC_FXB_MALFORMED;
    w = 1u << (packed & 3);
    at = target;
    type = type == FXB_INDIRECT_INT ? FXB_INT : type == FXB_INDIRECT_UINT ? FXB_UINT : FXB_FLOAT;
  }
  if (!in_bounds(buf, map->size, at, w)) return CC_FXB_MALFORMED;
  switch (type) {
    case FXB_INT:
      *iout = read_int(buf + at, w);
      *is_float = 0;
      return CC_FXB_OK;
    case FXB_UINT:
    case FXB_BOOL: {
      uint64_t u = read_uint(buf + at, w);
      if (u > (uint64_t)INT64_MAX) return CC_FXB_BAD_TYPE;
      *iout = (int64_t)u;
      *is_float = 0;
      return CC_FXB_OK;
    }
    case FXB_FLOAT:
      if (!want_float) return CC_FXB_BAD_TYPE;
      if (!read_float(buf + at, w, dout)) return CC_FXB_MALFORMED;
      *is_float = 1;
      return CC_FXB_OK;
    default:
      return CC_FXB_BAD_TYPE;
  }
}

cc_fxb_status cc_fxb_get_int(const cc_fxb_map* map, const char* key, int64_t* out) {
  double unused;
  int is_float;
  return scalar(map, key, 0, out, &unused, &is_float);
}

cc_fxb_status cc_fxb_get_double(const cc_fxb_map* map, const char* key, double* out) {
  int64_t i;
  int is_float;
  cc_fxb_status s = scalar(map, key, 1, &i, out, &is_float);
  if (s == CC_FXB_OK && !is_float) *out = (double)i;
  return s;
}

cc_fxb_status cc_fxb_get_string(const cc_fxb_map* map, const char* key, const char** out,
                                size_t* len) {
  size_t at;
  uint8_t packed;
  cc_fxb_status s = find(map, key, &at, &packed);
  if (s != CC_FXB_OK) return s;
  if ((packed >> 2) != FXB_STRING) return CC_FXB_BAD_TYPE;
  size_t str;
  if (!follow(map->buf, map->size, at, map->width, &str)) return CC_FXB_MALFORMED;
  unsigned sw = 1u << (packed & 3);
  if (str < sw) return CC_FXB_MALFORMED;
  uint64_t n = read_uint(map->buf + str - sw, sw);
  if (!in_bounds(map->buf, map->size, str, (size_t)n + 1) || n >= map->size) {
    return CC_FXB_MALFORMED;
  }
  if (map->buf[str + n] != 0) return CC_FXB_MALFORMED;
  *out = (const char*)(map->buf + str);
  *len = (size_t)n;
  return CC_FXB_OK;
}

/* A small, bounds-checked reader for the FlexBuffers map that the TFLite
 * converter writes as a custom op's `custom_options` (the `tfl_fusable_op`
 * route serializes the function's attributes as a map of scalars/strings).
 *
 * Only what the CondComp ops need: look up a key and read it as an integer,
 * float or string. Every offset is checked against the buffer, so malformed
 * options produce an error code instead of a crash.
 */
#ifndef CONDCOMP_FLEXBUFFER_MAP_H_
#define CONDCOMP_FLEXBUFFER_MAP_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CC_FXB_OK = 0,
  CC_FXB_MISSING = 1,   /* key not in the map */
  CC_FXB_BAD_TYPE = 2,  /* key present, value of another type */
  CC_FXB_MALFORMED = 3, /* buffer is not a valid FlexBuffers map */
} cc_fxb_status;

typedef struct {
  const uint8_t* buf;
  size_t size;
  size_t values;  /* offset of the first value */
  size_t keys;    /* offset of the first key offset */
  uint64_t count; /* number of entries */
  unsigned width; /* byte width of the values */
  unsigned key_width;
} cc_fxb_map;

/* Parses the root of `buf` as a map. An empty buffer (size 0) is an empty map. */
cc_fxb_status cc_fxb_open_map(const void* buf, size_t size, cc_fxb_map* map);

/* Number of entries and the i-th key (NUL-terminated, inside buf), for
 * rejecting unknown attributes. */
cc_fxb_status cc_fxb_key_at(const cc_fxb_map* map, uint64_t i, const char** key);

/* Integer value (INT/UINT/BOOL or their indirect forms). */
cc_fxb_status cc_fxb_get_int(const cc_fxb_map* map, const char* key, int64_t* out);
/* Float value (FLOAT, INT or UINT, widened). */
cc_fxb_status cc_fxb_get_double(const cc_fxb_map* map, const char* key, double* out);
/* String value; *out points into the buffer, *len excludes the NUL. */
cc_fxb_status cc_fxb_get_string(const cc_fxb_map* map, const char* key, const char** out,
                                size_t* len);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_FLEXBUFFER_MAP_H_ */

/* zstd.h for gateway/_speedups/_inflate.pyx, or stubs when setup.py builds without libzstd.
 *
 * setup.py defines GATEWAY_WITHOUT_ZSTD when zstd.h or libzstd cannot be found (GATEWAY_BUILD_SPEEDUPS=auto):
 * the module then still compiles its zlib inflater, exposes HAVE_ZSTD = False, and its ZstdStreamInflater
 * raises NotImplementedError; gateway/_inflate.py takes the pure zstd twin instead.
 */
#ifndef GATEWAY_ZSTD_OR_STUB_H
#define GATEWAY_ZSTD_OR_STUB_H

#ifndef GATEWAY_WITHOUT_ZSTD
#include <zstd.h>
#define GATEWAY_HAVE_ZSTD 1
#else
#include <stddef.h>
#define GATEWAY_HAVE_ZSTD 0
typedef struct GatewayNoZstdDCtx ZSTD_DCtx;
typedef struct { const void* src; size_t size; size_t pos; } ZSTD_inBuffer;
typedef struct { void* dst; size_t size; size_t pos; } ZSTD_outBuffer;
typedef enum { ZSTD_reset_session_only = 1 } ZSTD_ResetDirective;
static ZSTD_DCtx* ZSTD_createDCtx(void) { return NULL; }
static size_t ZSTD_freeDCtx(ZSTD_DCtx* dctx) { (void)dctx; return 0; }
static size_t ZSTD_DCtx_reset(ZSTD_DCtx* dctx, ZSTD_ResetDirective reset) { (void)dctx; (void)reset; return (size_t)-1; }
static size_t ZSTD_decompressStream(ZSTD_DCtx* dctx, ZSTD_outBuffer* output, ZSTD_inBuffer* input) {
    (void)dctx; (void)output; (void)input; return (size_t)-1;
}
static unsigned ZSTD_isError(size_t code) { return code == (size_t)-1; }
static const char* ZSTD_getErrorName(size_t code) { (void)code; return "built without libzstd"; }
#endif

#endif

/* The zlib API for gateway/_speedups/_inflate.pyx: the system zlib, or zlib-ng's native API when setup.py defines
 * GATEWAY_WITH_ZLIB_NG (GATEWAY_ZLIB=zlib-ng, or auto and zlib-ng.h + libz-ng are found).
 *
 * zlib-ng's native API has its own names (zng_*), so a zlib-ng linked statically into the module never clashes with
 * the libz that the interpreter or another extension loads. Both produce the same stream semantics; zlib-ng inflates
 * the gateway's small sync-flushed messages ~20 % faster (README "Performance").
 */
#ifndef GATEWAY_ZLIB_OR_NG_H
#define GATEWAY_ZLIB_OR_NG_H

#ifdef GATEWAY_WITH_ZLIB_NG
#include <zlib-ng.h>
typedef zng_stream gw_z_stream;
#define gw_inflateInit(strm) zng_inflateInit(strm)
#define gw_inflate(strm, flush) zng_inflate((strm), (flush))
#define gw_inflateEnd(strm) zng_inflateEnd(strm)
#define gw_inflateReset(strm) zng_inflateReset(strm)
#define GATEWAY_ZLIB_LIBRARY "zlib-ng"
#define gw_zlib_version() zlibng_version()
#else
#include <zlib.h>
typedef z_stream gw_z_stream;
#define gw_inflateInit(strm) inflateInit(strm)
#define gw_inflate(strm, flush) inflate((strm), (flush))
#define gw_inflateEnd(strm) inflateEnd(strm)
#define gw_inflateReset(strm) inflateReset(strm)
#define GATEWAY_ZLIB_LIBRARY "zlib"
#define gw_zlib_version() zlibVersion()
#endif

#endif

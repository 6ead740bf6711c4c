// SPDX-License-Identifier: MIT
// Symbol visibility: the library is built with -fvisibility=hidden and only
// what carries AIOLOOP_EXPORT is part of the ABI.
#pragma once

#if defined(AIOLOOP_BUILDING_LIBRARY)
#define AIOLOOP_EXPORT __attribute__((visibility("default")))
#else
#define AIOLOOP_EXPORT
#endif

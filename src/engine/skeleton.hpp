// SPDX-License-Identifier: MIT
// skeleton.hpp: engine.skel.h, the skeleton of engine.bpf.c that bpftool generates at build time.
#ifndef PYMEMTRACE_ENGINE_SKELETON_HPP
#define PYMEMTRACE_ENGINE_SKELETON_HPP

// It is generated C; the warnings of a C++ build are not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#include "engine.skel.h"
#pragma GCC diagnostic pop

#endif // PYMEMTRACE_ENGINE_SKELETON_HPP

// SPDX-License-Identifier: MIT
// skeleton.hpp: the BPF skeleton of engine.bpf.c (bpftool gen skeleton), for the C++ files that
// attach its programs or read its maps.
#ifndef PYMEMTRACE_ENGINE_SKELETON_HPP
#define PYMEMTRACE_ENGINE_SKELETON_HPP

// The skeleton is generated C; the warnings of a C++ build are not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#include "engine.skel.h"
#pragma GCC diagnostic pop

#endif // PYMEMTRACE_ENGINE_SKELETON_HPP

/* SPDX-License-Identifier: MIT */
#ifndef C_TRANSLATION_UNIT_H
#define C_TRANSLATION_UNIT_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int c_unit_roundtrip(size_t size);
int c_unit_any_probe_enabled(void);
uintptr_t c_unit_semaphores(void);
#ifdef __cplusplus
}
#endif
#endif

// SPDX-License-Identifier: MIT
#include <pymemtrace/pymemtrace.hpp>

#include <vector>

#include "fifty_call_sites.h"

using traced_ints = std::vector<int, pymemtrace::allocator<int>>;

int FIFTY(cxx_calls)(void)
{
    int blocks = 0;
    FIFTY_TIMES_50({
        traced_ints v(4);
        void *p = pymemtrace_calloc(2, 8);
        blocks += p != nullptr && v.size() == 4;
        pymemtrace_free(p);
    })
    return blocks;
}

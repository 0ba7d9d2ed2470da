// SPDX-License-Identifier: MIT
#include "depth.hpp"

#include <cstring> // strnlen
#include <string>  // std::string

#include "engine.h" // struct engine_stack_key, engine_stack_names
#include "json.hpp"
#include "maps.hpp"
#include "output.hpp"

namespace engine {

namespace {

std::string name_of(const char *name, size_t most)
{
    return quote(std::string(name, strnlen(name, most)));
}

} // namespace

void write_stacks(int fd, int stack_names_fd)
{
    std::string lines; // written 64 KB at a time
    for_each_entry<engine_stack_key, engine_stack_names>(
        stack_names_fd, [&](const engine_stack_key &key, const engine_stack_names &names) {
            lines += "{\"event\":\"stack\",\"pid\":" + std::to_string(key.pid) + ",\"stack\":"
                     + std::to_string(key.stack) + ",\"frames\":[";
            for (uint32_t i = 0; i < names.depth && i < ENGINE_STACK_FRAMES; ++i) {
                const engine_frame_names &frame = names.frames[i];
                lines += std::string(i ? "," : "") + "{\"file\":"
                         + name_of(frame.file, sizeof frame.file) + ",\"function\":"
                         + name_of(frame.function, sizeof frame.function)
                         + ",\"line\":" + std::to_string(frame.line)
                         + (frame.truncated ? ",\"truncated\":true" : "") + "}";
            }
            lines += "]}\n";
            if (lines.size() >= 65536) {
                write_all(fd, lines);
                lines.clear();
            }
        });
    write_all(fd, lines);
}

} // namespace engine

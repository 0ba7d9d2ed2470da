// SPDX-License-Identifier: MIT
#include "depth.hpp"

#include <cstring> // strnlen

#include "engine.h" // struct engine_stack_key, engine_stack_names
#include "json.hpp"
#include "maps.hpp"

namespace engine {

std::string stacks_json(int stack_names_fd)
{
    std::string out;
    for_each_entry<engine_stack_key, engine_stack_names>(
        stack_names_fd, [&](const engine_stack_key &key, const engine_stack_names &names) {
            out += out.empty() ? ",\"stacks\":[" : ",";
            out += "{\"pid\":" + std::to_string(key.pid) + ",\"stack\":"
                   + std::to_string(key.stack) + ",\"frames\":[";
            for (uint32_t i = 0; i < names.depth && i < ENGINE_STACK_FRAMES; ++i) {
                const engine_frame_names &frame = names.frames[i];
                out += std::string(i ? "," : "") + "{\"file\":"
                       + quote(std::string(frame.file, strnlen(frame.file, sizeof frame.file)))
                       + ",\"function\":"
                       + quote(std::string(frame.function,
                                           strnlen(frame.function, sizeof frame.function)))
                       + ",\"line\":" + std::to_string(frame.line)
                       + (frame.truncated ? ",\"truncated\":true" : "") + "}";
            }
            out += "]}";
        });
    return out.empty() ? out : out + "]";
}

} // namespace engine

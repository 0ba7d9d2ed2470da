// SPDX-License-Identifier: MIT
#include "output.hpp"

#include <cerrno> // errno, EINTR

#include <unistd.h> // write

namespace engine {

bool write_all(int fd, const std::string &text)
{
    for (size_t done = 0; done < text.size();) {
        const ssize_t wrote = write(fd, text.data() + done, text.size() - done);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            return false;
        done += static_cast<size_t>(wrote);
    }
    return true;
}

} // namespace engine

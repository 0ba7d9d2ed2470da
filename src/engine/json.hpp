// SPDX-License-Identifier: MIT
// json.hpp: JSON text of the engine's output. Names come from traced processes: they are data,
// written as JSON strings whatever their bytes (see quote()).
#ifndef PYMEMTRACE_ENGINE_JSON_HPP
#define PYMEMTRACE_ENGINE_JSON_HPP

#include <string> // std::string

namespace engine {

// `bytes` as a JSON string, quotes included. Valid UTF-8 is kept; control characters, '"' and
// '\' are escaped; a byte that is not part of valid UTF-8 becomes \udcXX (a lone surrogate, as
// Python's surrogateescape decodes it), so that a reader in Python gets the original bytes back
// with .encode("utf-8", "surrogateescape").
std::string quote(const std::string &bytes);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_JSON_HPP

# SPDX-License-Identifier: MIT
"""Names that come from a target (Python file and function names, library paths) shown safely."""

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shown(text):
    """`text` (a name that came from a target) fit for a terminal: control characters and other
    unprintables escaped, so a name can neither move the cursor nor forge a row. Bytes that were
    not UTF-8 (surrogate escapes, as os.fsdecode and the session make them) show as \\xNN."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x100:
            out.append(_NAMED.get(char, f"\\x{code:02x}"))
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)

# SPDX-License-Identifier: MIT
"""Which line of a workload allocates: tests name a line by what it carries (a marker comment, a
call inside a function), never by its number, so that editing a workload cannot leave a test
expecting a stale line. Each lookup insists on exactly one match."""
import re


def line_of(text, marker):
    """The number (from 1) of the one line of `text` that contains `marker`."""
    numbers = [number for number, line in enumerate(text.splitlines(), 1) if marker in line]
    if len(numbers) != 1:
        raise LookupError(f"{marker!r} is on {len(numbers)} lines of the source, not one: "
                          f"{numbers}")
    return numbers[0]


def line_in_function(text, function, call):
    """The number of the first line that contains `call` in the top-level function `function`
    (from its `def` to the next top-level `def`)."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(f"def {function}(")]
    if len(starts) != 1:
        raise LookupError(f"def {function}( is on {len(starts)} lines of the source, not one")
    for number in range(starts[0] + 1, len(lines)):
        if lines[number].startswith("def "):
            break
        if call in lines[number]:
            return number + 1
    raise LookupError(f"{call} not found in {function}")


def tagged_lines(text, pattern=r"# ALLOC: (\w+)"):
    """{tag: line number} for every line of `text` where `pattern` (one group: the tag) matches;
    a tag on two lines is an error."""
    tags = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = re.search(pattern, line)
        if match:
            if match.group(1) in tags:
                raise LookupError(f"tag {match.group(1)!r} on lines {tags[match.group(1)]} and "
                                  f"{number}")
            tags[match.group(1)] = number
    return tags

# SPDX-License-Identifier: MIT
"""The place a file to write as the report's user is named: its path walked by path_walk, with
links of root and of the caller (the effective user, the report's user) trusted, and only a
file name accepted at its end."""
import os

from . import path_walk
from .errors import Failure
from .names import shown

Place = path_walk.Place


def resolve(path, shown_as):
    """The Place `path` names for the calling process, trusting links of root and of its own
    effective user only. `shown_as` names the path in errors (e.g. "-o FILE")."""
    parts = path_walk.components(path)
    if path.endswith("/") or not parts or parts[-1] == "..":
        raise Failure(f"{shown_as} is a directory", "give a file name")
    try:
        place = path_walk.walk(path, trusted={0, os.geteuid()})
    except path_walk.Refused as refused:
        raise Failure(f"{shown_as}: {shown(str(refused))}",
                      "give a path that no other user's link or directory leads through (the "
                      "link's target itself)") from None
    if place.name is None:  # a link's target ended on a directory
        os.close(place.directory)
        raise Failure(f"{shown_as} is a link to a directory", "give a file name")
    return place

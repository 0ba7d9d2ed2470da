# SPDX-License-Identifier: MIT
"""The runner's one kind of error: something the user can fix."""


class Failure(Exception):
    """An error the user can fix: printed with its fix, exit status 2."""

    def __init__(self, message, fix):
        super().__init__(message)
        self.fix = fix

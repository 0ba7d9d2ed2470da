# SPDX-License-Identifier: MIT
"""The runner's one kind of error: something the user can fix."""

LOSS = 3  # the exit status of a run whose report lost data (unless --allow-loss)


class Failure(Exception):
    """An error the user can fix: printed with its fix, exit status 2."""

    def __init__(self, message, fix):
        super().__init__(message)
        self.fix = fix

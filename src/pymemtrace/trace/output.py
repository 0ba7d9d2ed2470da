# SPDX-License-Identifier: MIT
"""The report file of -o: written safely, replaced only by a finished report."""
import os
import stat

from .errors import Failure
from .names import shown


class ReportFile:
    """-o FILE. The report is written to an unnamed file in FILE's directory (O_TMPFILE, so even
    a SIGKILL leaves nothing behind) and put in place by a rename only when it is complete: an
    existing report is replaced only by a finished one, and a symbolic link planted at FILE is
    replaced, never written through. A FIFO or a device (or a link to one, such as /dev/stdout)
    is written directly."""

    def __init__(self, path):
        self.path, self.replace, self.directory = path, False, None
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError as error:
            raise Failure(f"-o {shown(path)}: {error.strerror}", "give -o a writable path") from None
        try:
            if info is None or stat.S_ISREG(info.st_mode):
                mode = stat.S_IMODE(info.st_mode) if info else 0o666 & ~_umask()
                self.directory = os.open(os.path.dirname(os.path.abspath(path)),
                                         os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode,
                             dir_fd=self.directory)
                if info is not None:
                    os.fchown(fd, info.st_uid, info.st_gid)  # a replaced report keeps its owner
                self.replace = True
            elif stat.S_ISDIR(info.st_mode):
                raise Failure(f"-o {shown(path)} is a directory", "give -o a file name")
            else:
                fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)  # no O_TRUNC
                kind = os.fstat(fd).st_mode
                if stat.S_ISREG(kind) or stat.S_ISDIR(kind):
                    os.close(fd)
                    raise Failure(f"-o {shown(path)} is a symbolic link to a file",
                                  "give the file's own path: reports are never written "
                                  "through a link")
        except OSError as error:
            raise Failure(f"-o {shown(path)}: {error.strerror}", "give -o a writable path") from None
        self.stream = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")

    def commit(self):
        """The report is complete: name it, then rename it over FILE in one step."""
        self.stream.flush()
        if self.replace:
            final = os.path.basename(self.path)
            for _attempt in range(100):
                name = f".pymemtrace-report-{os.urandom(6).hex()}"
                try:  # dst_dir_fd makes this linkat(AT_SYMLINK_FOLLOW): it names the open file
                    os.link(f"/proc/self/fd/{self.stream.fileno()}", name,
                            dst_dir_fd=self.directory)
                    break
                except FileExistsError:
                    continue
            try:
                os.replace(name, final, src_dir_fd=self.directory, dst_dir_fd=self.directory)
            except OSError:
                os.unlink(name, dir_fd=self.directory)
                raise
        self.stream.close()

    def close(self):
        if not self.stream.closed:
            try:
                self.stream.close()
            except OSError:
                pass  # commit() has said why the report could not be written
        if self.directory is not None:
            os.close(self.directory)
            self.directory = None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

# SPDX-License-Identifier: MIT
"""A step run with the rights of another user: in a forked child that has dropped to that user
for good, so the kernel checks every path it touches as it would for that user. Descriptors the
step opens come back over a socket (SCM_RIGHTS); its Failure or OSError is raised here."""
import array
import json
import os
import signal
import socket

from .errors import Failure


def with_rights_of(user, step, what):
    """step() returns (a JSON value, [descriptors]); this returns the same, the descriptors
    now the caller's (close-on-exec). user None: the runner's own user, the step runs here.
    `user` has become(), which drops a process to that user (groups, gid, uid), and a name;
    `what` names the step in errors."""
    if user is None:
        return step()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            ours.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a step stuck on a FIFO
            _answer(theirs, user, step)
        finally:
            os._exit(0)
    theirs.close()
    try:
        data, fds = _received(ours)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        ours.close()
        os.waitpid(pid, 0)
    if not data:
        raise Failure(f"{what}: the process acting as {user.name} ended without an answer",
                      "run it again; if it fails again, report it")
    answer = json.loads(data)
    if "failure" in answer:
        raise Failure(*answer["failure"])
    if "error" in answer:
        raise OSError(*answer["error"])
    return answer["value"], fds


def _answer(channel, user, step):
    fds = []
    try:
        user.become()
        value, fds = step()
        answer = {"value": value}
    except Failure as failure:
        answer = {"failure": [str(failure), failure.fix]}
    except OSError as error:
        answer = {"error": [error.errno, error.strerror]}
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.sendmsg([json.dumps(answer).encode()], rights)


def _received(channel, most=8):
    """One answer and its descriptors, close-on-exec (socket.recv_fds is Python 3.9+)."""
    fds = array.array("i")
    data, ancillary, _flags, _address = channel.recvmsg(
        1 << 16, socket.CMSG_SPACE(most * fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)

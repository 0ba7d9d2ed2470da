# SPDX-License-Identifier: MIT
"""safe_open (what root reads) and trusted_paths (-o, written as the report's user) walk paths
with one walker, path_walk, and so one rule: a link, or '..', is followed only out of a
directory no untrusted user can change, and a link only if a trusted user owns it. A second,
unprivileged account plants them. Run through tests/support/run_pytest.py as root."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from other_user import other_user  # noqa: E402
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import path_walk, safe_open, trusted_paths  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402


@pytest.fixture(scope="module")
def user():
    with other_user() as account:
        yield account


@pytest.fixture
def users_dir(user, tmp_path):
    """`tmp_path/theirs`, the other user's directory, beside root's file `tmp_path/mine`."""
    os.chmod(tmp_path, 0o755)
    (tmp_path / "mine").write_text("root's\n")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, user.uid, user.gid)
    return theirs


def test_dot_dot_out_of_another_users_directory_is_refused_by_both(users_dir):
    through = str(users_dir / ".." / "mine")
    with pytest.raises(safe_open.Refused, match="'..' leaves a directory another user can"):
        safe_open.walked(through)
    with pytest.raises(Failure, match="'..' leaves a directory another user can"):
        trusted_paths.resolve(through, "-o FILE")


def test_another_users_link_is_refused_by_both_and_followed_once_trusted(users_dir, user):
    link = users_dir / "link"
    link.symlink_to(users_dir.parent / "mine")
    os.chown(link, user.uid, user.gid, follow_symlinks=False)
    with pytest.raises(safe_open.Refused, match=f"owned by uid {user.uid}"):
        safe_open.walked(str(link))
    with pytest.raises(Failure, match=f"owned by uid {user.uid}"):
        trusted_paths.resolve(str(link), "-o FILE")
    place = path_walk.walk(str(link), trusted={0, user.uid})  # the rule, trusting that user
    try:
        assert place.name == "mine" and place.via_link
    finally:
        os.close(place.directory)

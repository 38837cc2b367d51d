"""Where hyprof writes files of its own choosing, and how.

Traces hold command lines, paths and SQL shapes: those hyprof names itself
(the sampler's stream, the Django middleware's default directory) go in
one directory per user, 0700, created safely and
refused when it is a symlink, not a directory or someone else's. Files are
created there exclusively (tempfile's O_EXCL, 0600); the C writer replaces a
trace by renaming a file it created exclusively, never by opening the name.
"""

import os
import stat
import tempfile

from .errors import PrivateDirError


def private_dir():
    """The per-user directory for hyprof's files: $XDG_RUNTIME_DIR/hyprof
    (already the user's own), else <tmp>/hyprof-<uid>; made 0700 if absent.
    Raises PrivateDirError naming the problem when what is there is a
    symlink, not a directory, or belongs to another user."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        path = os.path.join(runtime, "hyprof")
    else:
        path = os.path.join(tempfile.gettempdir(), f"hyprof-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PrivateDirError(f"{path} is not a directory (a symlink or a file): hyprof will not"
                              " write traces there; remove it, or give an output path")
    if st.st_uid != uid:
        raise PrivateDirError(f"{path} belongs to uid {st.st_uid}, not to you (uid {uid}):"
                              " hyprof will not write traces there; remove it, or give an"
                              " output path")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours, but open to others: close it
    return path


def private_subdir(name):
    """A directory of its own inside private_dir(), 0700."""
    path = os.path.join(private_dir(), name)
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PrivateDirError(f"{path} is not a directory of yours: hyprof will not write"
                              " traces there")
    return path


def private_temp(prefix, suffix):
    """A new file in private_dir(), created exclusively, 0600: (fd, path)."""
    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=private_dir())

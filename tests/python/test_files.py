"""The files hyprof writes of its own choosing: a private per-user
directory, created safely; traces that replace a name rather than follow
it; stream files that do not outlive their process."""

import os
import stat
import subprocess
import sys
import tempfile

import hyprof
import pytest
from hyprof import _files


@pytest.fixture
def tmpdir_only(tmp_path, monkeypatch):
    """tempfile's directory is tmp_path, and no XDG_RUNTIME_DIR."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"hyprof-{os.getuid()}"


def test_private_dir_is_made_0700(tmpdir_only):
    assert _files.private_dir() == str(tmpdir_only)
    assert stat.S_IMODE(os.lstat(tmpdir_only).st_mode) == 0o700
    os.chmod(tmpdir_only, 0o755)  # ours but open: closed again
    _files.private_dir()
    assert stat.S_IMODE(os.lstat(tmpdir_only).st_mode) == 0o700
    sub = _files.private_subdir("django")
    assert stat.S_IMODE(os.lstat(sub).st_mode) == 0o700


def test_private_dir_planted_by_someone_else_is_refused(tmpdir_only, tmp_path):
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmpdir_only)
    with pytest.raises(_files.PrivateDirError, match="is not a directory"):
        _files.private_dir()
    os.unlink(tmpdir_only)
    tmpdir_only.write_text("")
    with pytest.raises(_files.PrivateDirError, match="is not a directory"):
        _files.private_dir()
    os.unlink(tmpdir_only)
    if os.getuid() != 0:
        pytest.skip("making a directory another user owns needs root")
    tmpdir_only.mkdir()
    os.chown(tmpdir_only, 54321, 54321)
    with pytest.raises(_files.PrivateDirError, match="belongs to uid 54321"):
        _files.private_dir()


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_a_trace_replaces_a_planted_symlink_instead_of_following_it(tmp_path, mode):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "out.hyprof"
    os.symlink(victim, target)
    p = hyprof.Profiler(mode=mode) if mode == "deterministic" else \
        hyprof.Profiler(mode="sampling", frequency=1000)
    with p:
        sum(range(10000))
    p.write(target)
    assert victim.read_text() == "precious\n"
    st = os.lstat(target)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077 == 0
    assert hyprof.load(target).mode == mode
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_django_default_directory_is_private(tmpdir_only, monkeypatch):
    pytest.importorskip("django")
    from django.conf import settings
    if not settings.configured:
        settings.configure()
    from hyprof.contrib import django as hd
    setting = hd._setting
    # The default, whatever another test configured.
    monkeypatch.setattr(hd, "_setting",
                        lambda name: None if name == "HYPROF_PROFILE_DIR" else setting(name))
    d = hd._profile_dir()
    assert d == str(tmpdir_only / "django")
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700


@pytest.mark.parametrize("leave", ["", "sys.exit(3)"])
def test_stream_file_of_a_kept_profiler_is_removed_at_exit(tmp_path, leave):
    """A sampling profiler kept in a module global, stopped or not: its
    temporary stream file goes when the process exits, and was made in the
    private directory."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("XDG_RUNTIME_DIR", None)
    code = ("import sys, hyprof\n"
            "p = hyprof.Profiler(mode='sampling', frequency=1000)\n"
            "p.start()\nsum(range(100000))\n"
            "print(p._engine._path, flush=True)\n" + leave + "\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=60)
    path = r.stdout.strip()
    assert os.path.dirname(path) == str(tmp_path / f"hyprof-{os.getuid()}"), r.stderr
    assert not os.path.exists(path)

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


def test_a_stream_replaces_a_planted_symlink_instead_of_following_it(tmp_path):
    # The stream of `hyprof run --mode sampling` (output=) is at its path
    # from the start, so a killed program leaves its samples: it too takes
    # the name's place rather than write through a link planted there.
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "out.hyprof"
    os.symlink(victim, target)
    with hyprof.Profiler(mode="sampling", frequency=1000, output=target):
        st = os.lstat(target)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077 == 0
        sum(range(10000))
    assert victim.read_text() == "precious\n"
    assert hyprof.load(target).mode == "sampling"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_a_link_of_another_user_never_points_a_trace_at_a_fifo(tmp_path):
    # A FIFO or device the user names is written to (a link of the user's or
    # root's, like /dev/stdout, too); another user's link to one is a name
    # to replace, not a way in.
    if os.getuid() != 0:
        pytest.skip("making a symlink another user owns needs root")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "out.hyprof"
    os.symlink(fifo, target)
    os.lchown(target, 54321, 54321)
    import threading
    got = []
    # Drains the FIFO should the trace go there (so a wrong write fails the
    # test rather than hang it); released below when nothing came.
    drain = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    drain.start()
    p = hyprof.Profiler()
    with p:
        sum(range(1000))
    p.write(target)
    if not got:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    drain.join(10)
    assert got == [b""]
    assert stat.S_ISREG(os.lstat(target).st_mode) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert hyprof.load(target).mode == "deterministic"


def test_a_trace_is_written_to_a_fifo_the_user_names(tmp_path):
    import threading
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    p = hyprof.Profiler()
    with p:
        sum(range(1000))
    p.write(fifo)
    reader.join(10)
    copy = tmp_path / "copy.hyprof"
    copy.write_bytes(got[0])
    assert hyprof.load(copy).mode == "deterministic"


def test_pytest_plugin_makes_its_directory_private(tmp_path):
    d = tmp_path / "traces" / "run"
    (tmp_path / "test_one.py").write_text("def test_one():\n    sum(range(100))\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "hyprof.pytest_plugin",
                        "--hyprof-dir", str(d), str(tmp_path / "test_one.py")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700
    assert any(n.endswith(".hyprof") for n in os.listdir(d))


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

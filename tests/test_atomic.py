"""siamdiag.atomic.replacing: the target holds its old content or the whole new one, never a part;
no temporary is left behind; permissions and symlinks survive. Oracles: the bytes and modes set up
by each test."""
import os
import stat

import pytest

from siamdiag.atomic import TEMP_PREFIX, replacing


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with replacing(str(target)) as fh:
            fh.write("half of the new")
            assert target.read_text() == "old"  # nothing reaches the target while writing
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]


def test_new_content_replaces_the_file_keeping_its_permissions(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    with replacing(str(target), "wb") as fh:
        fh.write(b"new\n")
    assert target.read_bytes() == b"new\n" and _mode(target) == 0o640
    assert not [p for p in os.listdir(tmp_path) if p.startswith(TEMP_PREFIX)]


def test_a_new_file_gets_the_umask_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        with replacing(str(tmp_path / "plot.png"), "wb") as fh:
            fh.write(b"png")
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "plot.png") == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600


def test_a_symlink_keeps_pointing_at_the_rewritten_file(tmp_path):
    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "summary.md"
    link.symlink_to(real)
    with replacing(str(link)) as fh:
        fh.write("new")
    assert link.is_symlink() and real.read_text() == "new"

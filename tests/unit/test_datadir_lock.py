"""The data dir lock: exclusive, refused at once while held, released with its holder."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from server.datadir_lock import DataDirLocked, acquire


def test_a_held_lock_is_refused_at_once_and_names_its_holder(tmp_path: Path) -> None:
    held = acquire(tmp_path / "data")
    try:
        with pytest.raises(DataDirLocked, match=r"another gateway \(pid \d+\) is serving"):
            acquire(tmp_path / "data")
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "data" / "gateway.lock").stat().st_mode) == 0o600
    finally:
        held.release()
    acquire(tmp_path / "data").release()  # free again once released


def test_a_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    code = "import sys; from pathlib import Path; from server.datadir_lock import acquire; acquire(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)  # exits holding it
    acquire(tmp_path).release()

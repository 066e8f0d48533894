"""Build dist/gatewayctl.pyz: the package and its dependencies for this platform in one file (shiv).

    python packaging/build_pyz.py [--out dist/gatewayctl.pyz]

pip installs this checkout (not editable) with its dependencies into a scratch folder, the git revision
is written beside the package (`gatewayctl --version` shows it), and shiv zips the folder behind a
`#!/usr/bin/env python3` line with `gatewayctl.main:app` as the entry point. At its first run the file
unpacks its dependencies into ~/.shiv (or $SHIV_ROOT: the systemd unit points it at /var/cache/gateway)
and later runs start from there. Why shiv and not pex: README, "One file".

Fails (exit 1) when pip cannot resolve the dependencies (it needs the package index) or shiv fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def revision() -> str:
    """The checkout's commit (short), marked -dirty when the tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def build(out: Path) -> float:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site-packages"
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--target", str(site), str(ROOT)], check=True)
        (site / "gatewayctl" / "REVISION").write_text(revision() + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        shiv = [sys.executable, "-m", "shiv", "--site-packages", str(site), "--entry-point", "gatewayctl.main:app"]
        shiv += ["--python", "/usr/bin/env python3", "--output-file", str(out), "--compressed", "--reproducible"]
        subprocess.run(shiv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "gatewayctl.pyz")
    args = parser.parse_args()
    try:
        took = build(args.out)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: {' '.join(exc.cmd[:4])} … failed ({exc.returncode})")
    size = args.out.stat().st_size / (1 << 20)
    print(f"built {args.out} ({size:.1f} MiB, revision {revision()}) in {took:.0f} s")


if __name__ == "__main__":
    main()

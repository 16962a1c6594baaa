"""mypy --strict on the Pico-only firmware files, against micropython-rp2-stubs.

The stubs are single-file modules (``machine.pyi``, ``rp2/``) that mypy does not take from
site-packages (no PEP 561 marker), and they are not clean under --strict themselves; so they
are linked into a temporary folder on MYPYPATH, followed silently, and only errors in our own
files count. Run by ``make typecheck``.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["firmware_bridge/firmware/hal_rp2.py", "firmware_bridge/firmware/main.py"]
STUBS = ["machine.pyi", "micropython.pyi", "rp2", "_mpy_shed"]


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    missing = [s for s in STUBS if not (site / s).exists()]
    if missing:
        print(f"typecheck_firmware: micropython-rp2-stubs not installed ({missing})",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        for name in STUBS:
            (Path(tmp) / name).symlink_to(site / name)
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
             "--no-incremental", *FILES],
            cwd=ROOT, env={"MYPYPATH": tmp, "PATH": ""}, capture_output=True, text=True,
            check=False)
    ours = [line for line in result.stdout.splitlines() if line.startswith("firmware_bridge/")]
    for line in ours:
        print(line)
    if ours:
        return 1
    print(f"typecheck_firmware: {len(FILES)} Pico files clean against micropython-rp2-stubs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

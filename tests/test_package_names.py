"""The simulator and the exporter install as adapt_robot.sim and adapt_robot.export, only."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_importing_everything_never_imports_a_top_level_sim_or_export() -> None:
    # The repository root (where sim/ and export/ sit) is on sys.path here, as in a checkout:
    # any leftover `import sim` would load a second copy of the simulator under another name.
    code = (
        "import importlib, pkgutil, sys\n"
        "import adapt_robot\n"
        "for info in pkgutil.walk_packages(adapt_robot.__path__, 'adapt_robot.'):\n"
        "    if info.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(info.name)\n"
        "    except ImportError as err:  # an optional extra (ray) that is not installed\n"
        "        assert 'pip install' in str(err), (info.name, err)\n"
        "import adapt_robot.sim.envs.vector_gym, adapt_robot.export.bundle\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sim', 'export'))\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"

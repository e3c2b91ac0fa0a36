"""Make the source tree importable when pytest runs from a checkout without installing Ward.

``proto/`` goes on the path (not the repo root's ``proto`` package, which must never exist) so
``import wardpb`` finds the generated stubs, as the installed package would.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent

for _path in (_ROOT, _ROOT / "proto"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

"""Regenerate Ward's protobuf and gRPC stubs from the .proto files under proto/wardpb/.

Usage::

    python tools/genproto.py              # rewrite the committed stubs in proto/wardpb/
    python tools/genproto.py --out DIR    # generate the same tree under DIR/wardpb/ instead
    python tools/genproto.py --check      # exit 1 if the committed stubs are stale

Protoc runs with ``-Iproto`` so generated modules import each other as ``wardpb.<pkg>.<mod>``
(``proto/`` itself must never become a Python package: another library owns that name).
The output depends only on the .proto files and the pinned grpcio-tools version.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PACKAGE = "wardpb"

# Suffixes protoc writes for each .proto; anything else under wardpb/ is left alone.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


class GenprotoError(Exception):
    """Protoc failed, or the generated tree is not what it should be."""


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Return every .proto under ``proto_root/wardpb``, relative to ``proto_root``, sorted."""
    return sorted(p.relative_to(proto_root) for p in (proto_root / PACKAGE).rglob("*.proto"))


def generated_files(out_root: Path) -> list[Path]:
    """Return the generated stubs and ``__init__.py`` files under ``out_root/wardpb``, sorted."""
    base = out_root / PACKAGE
    if not base.is_dir():
        return []
    found = [
        p.relative_to(out_root)
        for p in base.rglob("*")
        if p.is_file() and (p.name == "__init__.py" or p.name.endswith(GENERATED_SUFFIXES))
    ]
    return sorted(found)


def generate(out_root: Path, *, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Generate stubs for every .proto into ``out_root/wardpb/...``; return the files written.

    Stubs left over from removed .proto files are deleted first, so the tree always matches the
    sources exactly.
    """
    # Imported here so that ``--help`` works without grpcio-tools installed.
    from grpc_tools import protoc  # type: ignore[import-untyped]

    sources = proto_files(proto_root)
    if not sources:
        raise GenprotoError(f"no .proto files under {proto_root / PACKAGE}")

    for stale in generated_files(out_root):
        if stale.name != "__init__.py":
            (out_root / stale).unlink()

    out_root.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(proto_root / s) for s in sources),
    ]
    status = protoc.main(args)
    if status != 0:
        raise GenprotoError(f"protoc exited with status {status}")

    # An empty __init__.py in wardpb/ and every folder below it (never in proto/ itself).
    for folder in sorted({(out_root / s).parent for s in sources} | {out_root / PACKAGE}):
        current = folder
        while current != out_root:
            (current / "__init__.py").write_bytes(b"")
            current = current.parent

    return generated_files(out_root)


def stale_files(committed_root: Path = PROTO_ROOT) -> list[Path]:
    """Regenerate into a temporary tree and return the committed files that differ or are missing.

    Files present on only one side are reported too. An empty list means the stubs are current.
    """
    with tempfile.TemporaryDirectory(prefix="genproto-") as tmp:
        fresh_root = Path(tmp)
        fresh = set(generate(fresh_root, proto_root=committed_root))
        committed = set(generated_files(committed_root))
        differing = {
            rel
            for rel in fresh & committed
            if not filecmp.cmp(fresh_root / rel, committed_root / rel, shallow=False)
        }
        return sorted(differing | (fresh ^ committed))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--out", type=Path, help="generate into DIR/wardpb instead of proto/wardpb")
    mode.add_argument("--check", action="store_true", help="exit 1 if committed stubs are stale")
    opts = parser.parse_args(argv)

    try:
        if opts.check:
            stale = stale_files()
            for rel in stale:
                print(f"stale: proto/{rel}", file=sys.stderr)
            if stale:
                print("run python tools/genproto.py", file=sys.stderr)
                return 1
            return 0
        written = generate(opts.out.resolve() if opts.out else PROTO_ROOT)
    except GenprotoError as exc:
        print(f"genproto: {exc}", file=sys.stderr)
        return 2
    print(f"genproto: wrote {len(written)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

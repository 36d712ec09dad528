"""Put mlx.metallib beside every libmlx in a frozen Hearth, and check it.

    python packaging/fix_metallib.py DIST/Hearth.app [--verify]
    python packaging/fix_metallib.py DIST/hearth            (Linux: only reports)

Why: MLX finds its GPU kernels (mlx.metallib) first next to the libmlx.dylib that loaded, by asking
dladdr where its own code lives; after that only at a path compiled into the wheel, which does not
exist on the user's Mac. PyInstaller puts data files under Contents/Resources and binaries under
Contents/Frameworks, and can leave more than one copy of libmlx (one where mlx.core's dependency
analysis found it, one from collecting the mlx package). So, after the build (hearth.spec calls this
on macOS):

1. find the real mlx.metallib in the bundle (Contents/Resources/...); if PyInstaller collected none,
   copy the build environment's (from the installed mlx package) into Contents/Resources/mlx/lib/;
2. beside every libmlx.dylib in the bundle without one, make a relative symbolic link to it.
   Links, not copies: the file is 100-200 MB, and codesign wants only code in Contents/Frameworks,
   which a link to Contents/Resources is (PyInstaller links its own data files the same way);
3. with --verify, run the bundle's `Contents/MacOS/Hearth --selfcheck`, which loads MLX, runs one
   operation on the GPU and prints which libmlx loaded and whether mlx.metallib sits beside it.

On Linux (mlx[cpu]) there is no metallib; this lists the libmlx copies and changes nothing.
Exits 1 when a macOS bundle has no metallib at all, or the verification fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

METALLIB = "mlx.metallib"


def _walk(root: Path):
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            yield Path(folder) / name


def libmlx_copies(root: Path) -> list[Path]:
    """Every libmlx shared library under root, links included: the loader may open libmlx through a
    link (PyInstaller links a package's library into the top folder), and dladdr, which MLX asks
    where it lives, can then name the link's folder rather than the target's."""
    return sorted(p for p in _walk(root)
                  if p.name.startswith("libmlx.") and (p.suffix in (".dylib", ".so") or ".so." in p.name))


def real_metallibs(root: Path) -> list[Path]:
    return sorted(p for p in _walk(root) if p.name == METALLIB and not p.is_symlink())


def _installed_metallib() -> Path | None:
    """mlx.metallib from the mlx package this build used (mlx/lib/ in the wheel and mlx-metal's)."""
    try:
        import mlx.core as mx
    except ImportError:
        return None
    package = Path(mx.__file__).resolve().parent
    for candidate in (package / "lib" / METALLIB, package / METALLIB):
        if candidate.is_file():
            return candidate
    return None


def ensure_metallib(root: Path, log=print) -> int:
    libs = libmlx_copies(root)
    log(f"fix_metallib: libmlx copies in {root}:")
    for lib in libs:
        link = f" -> {os.readlink(lib)}" if lib.is_symlink() else ""
        log(f"  {lib.relative_to(root)}{link}")
    if not libs:
        log("fix_metallib: no libmlx found: was mlx collected?")
        return 1
    metallibs = real_metallibs(root)
    if sys.platform != "darwin" and not metallibs:
        log("fix_metallib: no mlx.metallib (a CPU build of MLX): nothing to place.")
        return 0
    if not metallibs:
        source = _installed_metallib()
        if source is None:
            log("fix_metallib: ERROR: no mlx.metallib in the bundle nor in the installed mlx "
                "(on macOS arm64, install mlx with its mlx-metal wheel)")
            return 1
        resources = root / "Contents" / "Resources" if (root / "Contents").is_dir() else root
        target = resources / "mlx" / "lib" / METALLIB
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        log(f"fix_metallib: copied {source} to {target.relative_to(root)}")
        metallibs = [target]
    real = metallibs[0]
    if len(metallibs) > 1:
        log(f"fix_metallib: note: {len(metallibs)} real copies of {METALLIB}; linking to {real.relative_to(root)}")
    for lib in libs:
        beside = lib.parent / METALLIB
        if beside.exists():  # a real file or a link that resolves
            log(f"  ok: {beside.relative_to(root)}")
            continue
        if beside.is_symlink():  # dangling
            beside.unlink()
        beside.symlink_to(os.path.relpath(real, lib.parent))
        log(f"  linked: {beside.relative_to(root)} -> {os.path.relpath(real, lib.parent)}")
    return 0


def verify(root: Path, log=print) -> int:
    """Run the frozen executable's --selfcheck: MLX loads, computes, and says what it loaded."""
    if (root / "Contents" / "MacOS").is_dir():
        exe = root / "Contents" / "MacOS" / root.stem
    else:
        exe = root / ("hearth" if sys.platform != "darwin" else "Hearth")
    done = subprocess.run([str(exe), "--selfcheck"], capture_output=True, text=True, timeout=120)
    log((done.stdout + done.stderr).rstrip())
    if done.returncode != 0:
        log(f"fix_metallib: verification FAILED ({exe} --selfcheck exited {done.returncode})")
        return 1
    if sys.platform == "darwin" and "metallib_beside_libmlx" in done.stdout and ": NO" in done.stdout:
        log("fix_metallib: verification FAILED: the libmlx that loaded has no mlx.metallib beside it")
        return 1
    log("fix_metallib: verified")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [a for a in args if not a.startswith("--")]
    if len(paths) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    root = Path(paths[0])
    if not root.is_dir():
        print(f"fix_metallib: {root} is not a folder", file=sys.stderr)
        return 2
    status = ensure_metallib(root)
    if status == 0 and "--verify" in args:
        status = verify(root)
    return status


if __name__ == "__main__":
    sys.exit(main())

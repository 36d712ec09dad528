"""Does MLX work here? One small operation on the default device, and a clear message when it fails.

    python -m app.selfcheck          (a frozen Hearth: `Hearth --selfcheck`)

prints what it found and exits 0 when MLX works, or prints one paragraph saying what failed and what
to do and exits 1. A packaged Hearth runs this at start-up so that a broken install (mlx.metallib
missing, a macOS too old for the bundled wheels, no Metal device) is a readable message rather than a
crash or a silent fall-back to the CPU.

`check_mlx()` runs the operation in this process, on the calling thread (MLX makes that thread a
stream on first use). `check_mlx_isolated()` runs it in a child process instead: nothing of MLX is
loaded into the caller, and a failure that aborts the process (an uncaught C++ exception in MLX)
still comes back as a message. No Qt here.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

MIN_MACOS = (14, 0)  # the mlx wheels Hearth ships are built for macOS 14 (macosx_14_0_arm64)
EXPECTED = [0, 2, 4, 6]
CHECK_TIMEOUT_S = 60.0


def _on_metal() -> bool:
    from engine.platform import on_metal

    return on_metal()


def check_mlx() -> str | None:
    """None when one small MLX operation on the default device gives the right answer; otherwise one
    paragraph for the user: what failed, that Hearth cannot run models, and what to do."""
    step = "importing MLX (mlx.core)"
    try:
        import mlx.core as mx

        if _on_metal():
            step = "finding the Mac's GPU (Metal)"
            if not mx.metal.is_available():
                return _message("MLX reports that Metal is not available, so it could only run on the "
                                "CPU, far too slowly to chat")
            if mx.default_device().type != mx.gpu:
                return _message(f"MLX chose {mx.default_device()} instead of the GPU")
        device = mx.default_device()
        step = f"running one small operation on {device}"
        result = mx.arange(4) * 2
        mx.eval(result)
        values = result.tolist()
    except (ImportError, OSError, RuntimeError) as exc:
        return _message(f"{step} failed: {type(exc).__name__}: {_one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - anything else from MLX is as fatal
        return _message(f"{step} failed unexpectedly: {type(exc).__name__}: {_one_line(exc)}")
    if values != EXPECTED:
        return _message(f"{step} gave {values} instead of {EXPECTED}")
    return None


def check_mlx_isolated(timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """check_mlx() in a child process (the frozen executable with --selfcheck, or this Python with
    -m app.selfcheck). A child that crashes or hangs is reported as a failure too."""
    if getattr(sys, "frozen", False):
        command = [sys.executable, "--selfcheck"]
    else:
        command = [sys.executable, "-m", "app.selfcheck"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return _message(f"the check did not finish within {timeout:.0f} seconds")
    except OSError as exc:
        return _message(f"the check could not be started: {exc}")
    if done.returncode == 0:
        return None
    stderr = done.stderr.strip()
    if done.returncode == 1 and stderr.startswith("Hearth cannot run models"):
        return stderr.split("\n\n")[0]
    how = _exit_description(done.returncode)
    tail = " | ".join(line for line in stderr.splitlines()[-3:] if line.strip())
    return _message(f"the check {how}" + (f" ({tail})" if tail else ""))


def details() -> dict[str, str]:
    """What a support request needs: versions, the device, where libmlx was loaded from."""
    info = {"python": platform.python_version(), "platform": f"{sys.platform} {platform.machine()}"}
    mac = platform.mac_ver()[0]
    if mac:
        info["macos"] = mac
    info["frozen"] = "yes" if getattr(sys, "frozen", False) else "no"
    try:
        import mlx.core as mx

        info["mlx"] = getattr(mx, "__version__", "?")
        info["default_device"] = str(mx.default_device())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        info["mlx"] = f"not importable ({type(exc).__name__})"
        return info
    libs = loaded_libmlx()
    info["libmlx"] = ", ".join(libs) if libs else "not found among loaded libraries"
    if sys.platform == "darwin":
        info["metallib_beside_libmlx"] = ", ".join(
            f"{lib}: {'yes' if (Path(lib).parent / 'mlx.metallib').exists() else 'NO'}" for lib in libs
        ) or "?"
    return info


def loaded_libmlx() -> list[str]:
    """Paths of the libmlx shared libraries loaded in this process (normally exactly one)."""
    names: list[str] = []
    if sys.platform == "darwin":
        try:
            import ctypes

            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
            libc._dyld_get_image_name.restype = ctypes.c_char_p
            libc._dyld_get_image_name.argtypes = [ctypes.c_uint32]
            for i in range(libc._dyld_image_count()):
                name = libc._dyld_get_image_name(i)
                if name:
                    names.append(name.decode("utf-8", "replace"))
        except (OSError, AttributeError):
            return []
    else:
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                names = [line.split(None, 5)[-1].strip() for line in maps if "/" in line]
        except OSError:
            return []
    found = [n for n in names if Path(n).name.startswith("libmlx.")]
    return sorted(set(found), key=found.index)


def _message(what: str) -> str:
    mac = platform.mac_ver()[0]
    frozen = getattr(sys, "frozen", False)
    advice = []
    if frozen:
        advice.append("reinstall Hearth (download it again and replace the copy in Applications)")
    else:
        advice.append("reinstall its Python packages (for example `pip install --force-reinstall mlx`, "
                      "or `make clean run`)")
    if sys.platform == "darwin":
        too_old = mac and tuple(int(x) for x in mac.split(".")[:2]) < MIN_MACOS
        needs = f"macOS {MIN_MACOS[0]} (Sonoma) or later on a Mac with Apple Silicon (M1 or newer)"
        advice.append(f"check that this Mac runs {needs}" + (f"; this one runs macOS {mac}" if too_old else ""))
        advice.append("if the message mentions mlx.metallib, the GPU kernels that come with MLX are missing "
                      "or damaged, which a fresh copy fixes")
    return (f"Hearth cannot run models: MLX, the library that runs them, failed its start-up check "
            f"({what}). Without it Hearth cannot load or chat with any model. To fix it, "
            + "; ".join(advice) + ".")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or repr(exc)


def _exit_description(code: int) -> str:
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"crashed ({name})"
    return f"ended with exit status {code}"


def main(argv: list[str] | None = None) -> int:
    error = check_mlx()
    if error:
        print(error, file=sys.stderr)
        print(file=sys.stderr)
        for key, value in details().items():
            print(f"  {key}: {value}", file=sys.stderr)
        return 1
    import mlx.core as mx

    print(f"MLX OK: {mx.default_device()} computed arange(4) * 2 = {EXPECTED}")
    for key, value in details().items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

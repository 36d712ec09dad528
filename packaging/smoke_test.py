"""Prove that a frozen Hearth starts and chats: run the PyInstaller build, not the source tree.

    python packaging/smoke_test.py DIST_DIR [--skip-gui] [--keep]

DIST_DIR is PyInstaller's --distpath (holding hearth/ on Linux, Hearth.app on macOS), or the onedir
folder, the .app or the executable itself. Needs this repository's Python environment only to build
the tiny test models (tests/tiny_models.py); everything else runs in the frozen executable, with
HEARTH_HOME and HF_HOME in a temporary folder, offline, and Qt's offscreen platform.

Checks, each judged on what the program reports and not only on its exit status (an exception on a
Qt thread can still end in status 0):
  version    `hearth --version` names the version in pyproject.toml (package metadata is bundled)
  selfcheck  `hearth --selfcheck` reports "MLX OK" (one operation on the default device)
  catalog    `hearth catalog` lists the bundled resources/catalog.json
  generate   `hearth generate MODEL --messages - --json --temp 0 --max-tokens 5`, for a sentencepiece
             (Llama 2) and a byte-level BPE (Llama 3) tiny model: 5 tokens, finish_reason "length"
  gguf       `hearth import FILE.gguf` (llama.cpp's format, converted with the gguf package), then
             generate with the imported model by name
  library    `hearth import MODEL` and `hearth default NAME` (the GUI then loads it by itself)
  gui        the real window starts (HEARTH_SMOKE_GUI=1, see packaging/hearth_main.py), loads the
             default model on its engine QThread, answers "Hello" through the chat controller,
             saves the answer to the history and quits: its HEARTH_SMOKE_REPORT must say ok
  gui-add    the window adds a GGUF file as File > Add Model… does: the acquisition pipeline in a
             child process started as the frozen Hearth itself; then it loads and answers with it
  gui-catalog  the window gets the catalog's Llama 2 7B Chat entry (a GGUF file, served by the
             test Hub on 127.0.0.1) as its Download buttons do: downloaded, converted and registered
             in the child process, then loaded and answering
  serve      `hearth serve MODEL --port 0` (Starlette on uvicorn, bundled): /v1/models lists the
             model and /v1/chat/completions answers; Ctrl-C stops it (status 130)
  broken     a hard-linked copy of the build without libmlx: --selfcheck exits 1 with the
             "Hearth cannot run models" paragraph, and the GUI shows the error dialog and exits 1
             instead of opening a window
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPORT_PREFIX = "HEARTH_SMOKE_REPORT "
MAX_TOKENS = 5


class SmokeFailure(Exception):
    pass


def find_executable(dist: Path) -> Path:
    candidates = [dist, dist / "Hearth.app" / "Contents" / "MacOS" / "Hearth",
                  dist / "Contents" / "MacOS" / "Hearth", dist / "hearth" / "hearth", dist / "hearth",
                  dist / "hearth" / "Hearth", dist / "Hearth"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SmokeFailure(f"no frozen hearth executable in {dist}")


def bundle_root(exe: Path) -> Path:
    """The folder to copy for the broken-build check: the .app, or the onedir folder."""
    if exe.parent.name == "MacOS" and exe.parent.parent.name == "Contents":
        return exe.parents[2]
    return exe.parent


def folder_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            p = Path(folder) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


class Runner:
    def __init__(self, exe: Path, home: Path) -> None:
        self.exe = exe
        self.cwd = home  # so a model name never matches a stray folder of that name
        self.env = {
            **os.environ,
            "HEARTH_HOME": str(home / "hearth-home"),
            "HF_HOME": str(home / "hf-home"),
            "HF_HUB_OFFLINE": "1",
            "QT_QPA_PLATFORM": "offscreen",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the frozen app must not need them
            self.env.pop(name, None)

    def run(self, *args: str, stdin: str | None = None, timeout: float = 180, exe: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        started = time.perf_counter()
        done = subprocess.run([str(exe or self.exe), *args], input=stdin, capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})}, cwd=self.cwd,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        done.seconds = time.perf_counter() - started
        return done


def _expect(condition: bool, message: str, done: subprocess.CompletedProcess | None = None) -> None:
    if not condition:
        detail = ""
        if done is not None:
            detail = f"\n--- exit status {done.returncode}\n--- stdout:\n{done.stdout[-3000:]}\n--- stderr:\n{done.stderr[-3000:]}"
        raise SmokeFailure(message + detail)


def check_version(r: Runner) -> str:
    from spec_config import version

    done = r.run("--version")
    _expect(done.returncode == 0 and done.stdout.strip() == f"hearth {version()}",
            f"--version should print 'hearth {version()}'", done)
    return f"{done.stdout.strip()} ({done.seconds:.1f} s)"


def check_catalog(r: Runner) -> str:
    shipped = json.loads((ROOT / "resources" / "catalog.json").read_text(encoding="utf-8"))["models"]
    done = r.run("catalog")
    _expect(done.returncode == 0 and shipped[0]["repo_id"] in done.stdout,
            "hearth catalog should list the bundled resources/catalog.json", done)
    return f"{len(shipped)} models listed from the bundled catalog.json ({done.seconds:.1f} s)"


def check_selfcheck(r: Runner) -> str:
    done = r.run("--selfcheck")
    _expect(done.returncode == 0 and done.stdout.startswith("MLX OK"), "--selfcheck should report MLX OK", done)
    _expect("frozen: yes" in done.stdout, "--selfcheck should run frozen", done)
    lib = next((line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                if line.strip().startswith("libmlx:")), "?")
    return f"{done.stdout.splitlines()[0]}; libmlx: {lib} ({done.seconds:.1f} s)"


def check_generate(r: Runner, model: Path) -> str:
    messages = json.dumps([{"role": "user", "content": "Hello"}])
    done = r.run("generate", str(model), "--messages", "-", "--json", "--temp", "0",
                 "--max-tokens", str(MAX_TOKENS), stdin=messages)
    _expect(done.returncode == 0, f"generate with {model.name} failed", done)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SmokeFailure(f"generate with {model.name} printed no JSON:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}") from None
    _expect(result.get("finish_reason") == "length", f"finish_reason should be length, not {result.get('finish_reason')!r}", done)
    _expect(result.get("generation_tokens") == MAX_TOKENS and len(result.get("token_ids", [])) == MAX_TOKENS,
            f"expected {MAX_TOKENS} tokens", done)
    _expect(isinstance(result.get("text"), str), "no text in the answer", done)
    return (f"{model.name}: {result['generation_tokens']} tokens, finish_reason {result['finish_reason']}, "
            f"prompt {result.get('prompt_tokens')} tokens, text {result['text']!r} ({done.seconds:.1f} s)")


def check_self_test(r: Runner, model: Path) -> str:
    """`hearth --self-test`: the app headless answers one message; its JSON report, not the exit
    code alone, must say so."""
    done = r.run("--self-test", "--model", str(model), timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    _expect(len(lines) == 1, "--self-test printed no single JSON line", done)
    report = json.loads(lines[0])
    _expect(done.returncode == 0 and report.get("ok") is True, f"--self-test reported {report}", done)
    _expect(report.get("saved_in_history") is True and report.get("generation_tokens", 0) > 0,
            f"--self-test answer not complete: {report}", done)
    return (f"self-test: window {report['shown_s']} s, load {report['load_s']} s, "
            f"{report['generation_tokens']} tokens, {report['finish_reason']} ({done.seconds:.1f} s)")


def check_library(r: Runner, model: Path) -> str:
    done = r.run("import", str(model))
    _expect(done.returncode == 0, "hearth import failed", done)
    done = r.run("default", model.name)
    _expect(done.returncode == 0, "hearth default failed", done)
    done = r.run("default")
    _expect(done.returncode == 0 and model.name in done.stdout + done.stderr, "the default model was not kept", done)
    return f"imported and made default: {model.name}"


def check_gguf(r: Runner, gguf_file: Path) -> str:
    done = r.run("import", str(gguf_file), "--name", "tiny-gguf")
    _expect(done.returncode == 0, "hearth import of a GGUF file failed", done)
    detail = check_generate(r, Path("tiny-gguf"))
    return f"imported {gguf_file.name} (converted with gguf); generate by name: {detail}"


def _report(done: subprocess.CompletedProcess) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    _expect(bool(lines), "the app printed no HEARTH_SMOKE_REPORT", done)
    return json.loads(lines[-1][len(REPORT_PREFIX):])


def check_gui(r: Runner) -> str:
    done = r.run("app", env={"HEARTH_SMOKE_GUI": "1", "HEARTH_SMOKE_MAX_TOKENS": str(MAX_TOKENS)}, timeout=240)
    report = _report(done)
    _expect(report.get("ok") is True, f"the GUI smoke run failed: {report.get('error')}", done)
    _expect(done.returncode == 0, "the GUI exited non-zero", done)
    _expect(report["window"] and report["window_title"] == "Hearth", "no Hearth window", done)
    _expect(report["finish_reason"] == "length" and report["generation_tokens"] == MAX_TOKENS,
            "the GUI's answer was not 5 tokens ending on length", done)
    _expect(report["saved_answer"] and report["saved_answer"][0] == "assistant", "the answer was not saved", done)
    seconds = report.get("seconds", {})
    icon = "set" if report.get("window_icon") else "NOT SET (the app does not call setWindowIcon yet)"
    check_line = next((line for line in done.stderr.splitlines() if "start-up MLX check took" in line), "")
    return (f"window shown at {seconds.get('window_shown')} s, model loaded at {seconds.get('model_loaded')} s, "
            f"answered ({report['generation_tokens']} tokens, {report['finish_reason']}) at "
            f"{seconds.get('answered')} s, exited at {seconds.get('exited')} s; total {done.seconds:.1f} s; "
            f"window icon {icon}; {check_line.replace('hearth: ', '')}")


def check_gui_add(r: Runner, gguf_file: Path) -> str:
    env = {"HEARTH_SMOKE_GUI": "1", "HEARTH_SMOKE_MAX_TOKENS": str(MAX_TOKENS),
           "HEARTH_SMOKE_ADD_MODEL": str(gguf_file)}
    done = r.run("app", env=env, timeout=300)
    report = _report(done)
    _expect(report.get("ok") is True, f"adding a model in the GUI failed: {report.get('error')}", done)
    added = report.get("added") or {}
    _expect(added.get("status") == "complete" and report.get("model") == added.get("ref"),
            f"the added model was not the one that answered: {added}", done)
    seconds = report.get("seconds", {})
    return (f"added {gguf_file.name} as {added['ref']} at {seconds.get('model_added')} s, answered "
            f"({report['generation_tokens']} tokens) at {seconds.get('answered')} s")


def check_gui_catalog(r: Runner, gguf_file: Path, scratch: Path) -> str:
    from hub_server import HubServer

    catalog = json.loads((ROOT / "resources" / "catalog.json").read_text(encoding="utf-8"))
    entry = next(e for e in catalog["models"] if e["id"] == "llama-2-7b-chat")
    repo = scratch / "hub-repo"
    repo.mkdir()
    shutil.copyfile(gguf_file, repo / entry["file"])
    with HubServer() as server:
        server.add_repo(entry["repo_id"], repo)
        env = {**server.client_env(scratch / "hf-catalog"), "HEARTH_SMOKE_GUI": "1",
               "HEARTH_SMOKE_MAX_TOKENS": str(MAX_TOKENS), "HEARTH_SMOKE_CATALOG": entry["id"]}
        done = r.run("app", env=env, timeout=300)
        served = [q.path for q in server.requests if q.method == "GET" and q.path.endswith(entry["file"])]
    report = _report(done)
    _expect(report.get("ok") is True, f"getting {entry['id']} in the GUI failed: {report.get('error')}", done)
    _expect(bool(served), f"the test Hub never served {entry['file']}", done)
    added = report.get("added") or {}
    seconds = report.get("seconds", {})
    return (f"{entry['id']}: downloaded {entry['file']} from the test Hub, converted as {added.get('ref')} at "
            f"{seconds.get('model_added')} s, answered ({report['generation_tokens']} tokens) at "
            f"{seconds.get('answered')} s")


def check_serve(r: Runner, model: Path) -> str:
    import re
    import signal
    import urllib.request

    process = subprocess.Popen([str(r.exe), "serve", str(model), "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=r.env, cwd=r.cwd,
                               stdin=subprocess.DEVNULL)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", line)
            url = found.group(1) if found else None
        _expect(url is not None, "hearth serve never said where it listens")
        with urllib.request.urlopen(f"{url}/v1/models", timeout=30) as reply:
            listed = [m["id"] for m in json.loads(reply.read())["data"]]
        body = json.dumps({"model": listed[0], "max_tokens": MAX_TOKENS, "temperature": 0,
                           "messages": [{"role": "user", "content": "Hello"}]}).encode()
        request = urllib.request.Request(f"{url}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            answer = json.loads(reply.read())
        _expect(answer["usage"]["completion_tokens"] == MAX_TOKENS, f"unexpected answer {answer}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = "killed"
    _expect(status == 130, f"hearth serve ended with status {status} after Ctrl-C (130 expected, as for every command)")
    return (f"served {listed[0]} at {url}: {answer['usage']['completion_tokens']} tokens, "
            f"finish_reason {answer['choices'][0]['finish_reason']}; Ctrl-C: status 130")


def _hardlink_copy(src: Path, dst: Path) -> None:
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=link)


def check_broken(r: Runner, exe: Path, scratch: Path) -> str:
    root = bundle_root(exe)
    copy = scratch / "broken" / root.name
    _hardlink_copy(root, copy)
    removed = [p for p in copy.rglob("libmlx.*") if p.is_file() or p.is_symlink()]
    _expect(bool(removed), "no libmlx in the build to remove")
    for p in removed:
        p.unlink()
    broken_exe = copy / exe.relative_to(root)
    done = r.run("--selfcheck", exe=broken_exe)
    _expect(done.returncode == 1 and done.stderr.startswith("Hearth cannot run models"),
            "--selfcheck without libmlx should exit 1 with the 'Hearth cannot run models' paragraph", done)
    first = done.stderr.split("\n\n")[0]
    gui = r.run("app", exe=broken_exe, env={"HEARTH_SMOKE_GUI": "1"}, timeout=120)
    report = _report(gui)
    _expect(gui.returncode == 1 and report.get("stage") == "start-up check" and report.get("dialog"),
            "the GUI without libmlx should show the start-up error dialog and exit 1", gui)
    shutil.rmtree(copy.parent, ignore_errors=True)
    return f"exit 1 with: {first[:220]}{'...' if len(first) > 220 else ''}; GUI: error dialog, exit 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=lambda text: Path(text).resolve())  # the checks run elsewhere
    parser.add_argument("--skip-gui", action="store_true", help="skip the window check")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    try:
        exe = find_executable(args.dist)
    except SmokeFailure as exc:
        print(f"smoke_test: {exc}", file=sys.stderr)
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="hearth-smoke-"))
    print(f"smoke_test: {exe} (build {folder_size(bundle_root(exe)) / 1e6:.0f} MB); scratch {scratch}")
    r = Runner(exe, scratch)
    results: list[tuple[str, bool, str]] = []

    def step(name: str, fn, *fn_args) -> None:
        started = time.perf_counter()
        try:
            detail = fn(*fn_args)
            results.append((name, True, detail))
            print(f"PASS {name}: {detail}", flush=True)
        except (SmokeFailure, subprocess.TimeoutExpired, OSError, json.JSONDecodeError) as exc:
            results.append((name, False, str(exc)))
            print(f"FAIL {name} (after {time.perf_counter() - started:.1f} s): {exc}", flush=True)

    import tiny_models

    started = time.perf_counter()
    models = {variant: tiny_models.build_model(scratch / "models" / f"tiny-{variant.replace('_', '-')}", variant)
              for variant in ("spm_legacy", "bpe_llama3")}
    import gguf_writer

    float_model = tiny_models.build_model(scratch / "models" / "tiny-float", "spm_legacy", quantize=False)
    gguf_file = gguf_writer.write_gguf(float_model, scratch / "models" / "tiny.Q8_0.gguf", tensor_type="Q8_0")
    print(f"built tiny models in {time.perf_counter() - started:.1f} s: "
          f"{', '.join(m.name for m in models.values())}, {gguf_file.name}")

    step("version", check_version, r)
    step("selfcheck", check_selfcheck, r)
    step("catalog", check_catalog, r)
    for model in models.values():
        step(f"generate {model.name}", check_generate, r, model)
    step("gguf", check_gguf, r, gguf_file)
    step("library", check_library, r, models["spm_legacy"])
    step("self-test", check_self_test, r, models["spm_legacy"])
    step("serve", check_serve, r, models["spm_legacy"])
    if not args.skip_gui:
        step("gui", check_gui, r)
        dropped = scratch / "models" / "dropped" / "tiny-dropped.Q8_0.gguf"
        dropped.parent.mkdir(parents=True)
        shutil.copyfile(gguf_file, dropped)
        step("gui-add", check_gui_add, r, dropped)
        step("gui-catalog", check_gui_catalog, r, gguf_file, scratch)
    step("broken", check_broken, r, exe, scratch)

    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"frozen build smoke test: {len(results) - failed} checks passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

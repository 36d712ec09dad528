"""A screen reader's view of the running app, through AT-SPI (run by the system's python3, which
has Debian's python3-pyatspi; not a test module).

It finds the application named Hearth on the accessibility bus, lists every element's role and name,
then works the window as a screen reader user would: it presses the Sidebar button by its accessible
action, types a message into the Message field through the editable-text interface, presses Send
message, and waits for "Answer finished." to be said. It prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

import pyatspi

TIMEOUT_S = 90


def find_app(name: str):
    end = time.monotonic() + TIMEOUT_S
    while time.monotonic() < end:
        for app in pyatspi.Registry.getDesktop(0):
            if app is not None and app.name == name:
                return app
        time.sleep(0.3)
    return None


def elements(node, depth: int = 0):
    if node is None or depth > 60:
        return
    yield node
    for child in node:
        yield from elements(child, depth + 1)


def showing(node) -> bool:
    return node.getState().contains(pyatspi.STATE_SHOWING)


def find(app, role: str, name: str):
    return next((n for n in elements(app) if n.getRoleName() == role and n.name == name), None)


def wait_for(condition, seconds: float = TIMEOUT_S) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def text_of(node) -> str:
    try:
        text = node.queryText()
    except NotImplementedError:
        return ""
    return text.getText(0, text.characterCount)


def labels(node) -> list[str]:
    """The names of the labels a screen reader says before this element (its label relation)."""
    return [relation.getTarget(i).name for relation in node.getRelationSet()
            if relation.getRelationType() == pyatspi.RELATION_LABELLED_BY
            for i in range(relation.getNTargets())]


def press(node) -> None:
    action = node.queryAction()
    names = [action.getName(i) for i in range(action.nActions)]
    action.doAction(names.index("Press") if "Press" in names else 0)


def main() -> None:
    try:
        pyatspi.Registry.getDesktop(0)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which says why it skips
        print(json.dumps({"bus_error": str(exc)}))
        return
    app = find_app("Hearth")
    if app is None:
        print(json.dumps({"app_missing": True}))
        return
    report: dict = {}
    wait_for(lambda: find(app, "label", "Loaded · 4,096-token context") is not None)
    report["controls"] = [{"role": n.getRoleName(), "name": n.name, "labels": labels(n),
                           "showing": showing(n)} for n in elements(app)]
    try:
        work_the_window(app, report)
    except Exception as exc:  # noqa: BLE001 - the test shows what went wrong, with the controls
        report["error"] = repr(exc)
    print(json.dumps(report))


def work_the_window(app, report: dict) -> None:
    toggle = find(app, "toggle button", "Sidebar") or find(app, "check box", "Sidebar")
    search = find(app, "text", "Search conversations")
    press(toggle)
    report["sidebar_hidden"] = wait_for(lambda: not showing(search), 10)
    press(toggle)
    report["sidebar_back"] = wait_for(lambda: showing(search), 10)
    message = find(app, "text", "Message")
    message.queryEditableText().setTextContents("Hello from a screen reader")
    press(find(app, "push button", "Send message"))
    report["announced"] = wait_for(lambda: find(app, "label", "Answer finished.") is not None)
    transcript = next((n for n in elements(app) if n.getRoleName() == "list" and n.name == "Conversation transcript"
                       and showing(n)), None)
    report["transcript"] = [{"role": n.getRoleName(), "name": n.name, "text": text_of(n)}
                            for n in elements(transcript)] if transcript else []


if __name__ == "__main__":
    sys.exit(main())

"""Draw Hearth's source icon, resources/icon.png (1024 x 1024), with Qt's QPainter.

    python packaging/make_icon.py [OUTPUT]

A flame over two crossed logs inside a stone-coloured hearth arch, on a rounded square laid out on
Apple's macOS icon grid (an 824-pixel body centred in the 1024 canvas, so the icon sits at the same
size as other apps' in the Dock). Only paths and gradients: no fonts, so the result is the same on
every machine with the same Qt. Runs headless (QT_QPA_PLATFORM=offscreen is set when no platform is
chosen). packaging/make_icns.sh turns the PNG into Hearth.icns on a Mac; the app also uses the PNG as
its window icon.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZE = 1024
BODY = 824  # macOS Big Sur and later: the icon body inside the 1024 canvas
RADIUS = 185  # the body's corner radius on that grid
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "resources" / "icon.png"


def _flame(cx: float, bottom: float, width: float, height: float, lean: float = 0.0):
    """A teardrop flame: a pointed tip leaning by `lean` (fraction of width), a round base."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QPainterPath

    half = width / 2
    tip = QPointF(cx + lean * width, bottom - height)
    path = QPainterPath(tip)
    path.cubicTo(QPointF(cx + half * 0.25 + lean * width * 0.6, bottom - height * 0.72),
                 QPointF(cx + half, bottom - height * 0.56),
                 QPointF(cx + half, bottom - height * 0.30))
    path.cubicTo(QPointF(cx + half, bottom - height * 0.06),
                 QPointF(cx + half * 0.55, bottom),
                 QPointF(cx, bottom))
    path.cubicTo(QPointF(cx - half * 0.55, bottom),
                 QPointF(cx - half, bottom - height * 0.06),
                 QPointF(cx - half, bottom - height * 0.30))
    path.cubicTo(QPointF(cx - half, bottom - height * 0.56),
                 QPointF(cx - half * 0.25 + lean * width * 0.6, bottom - height * 0.72),
                 tip)
    path.closeSubpath()
    return path


def draw(size: int = SIZE):
    """The icon as a QImage of size x size (ARGB, transparent outside the rounded body)."""
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import (
        QBrush,
        QColor,
        QImage,
        QLinearGradient,
        QPainter,
        QPainterPath,
        QPen,
        QRadialGradient,
    )

    image = QImage(SIZE, SIZE, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)

    inset = (SIZE - BODY) / 2
    body = QRectF(inset, inset, BODY, BODY)
    body_path = QPainterPath()
    body_path.addRoundedRect(body, RADIUS, RADIUS)

    # Night-time room: a deep warm gradient.
    room = QLinearGradient(body.topLeft(), body.bottomLeft())
    room.setColorAt(0.0, QColor("#3a2a2f"))
    room.setColorAt(1.0, QColor("#1c1418"))
    p.fillPath(body_path, QBrush(room))
    p.setClipPath(body_path)

    cx = SIZE / 2
    floor = inset + BODY * 0.80

    # The hearth: a stone arch (outer) and its dark opening (inner).
    arch_w, arch_h = BODY * 0.70, BODY * 0.66
    arch = QPainterPath()
    arch.moveTo(cx - arch_w / 2, floor)
    arch.lineTo(cx - arch_w / 2, floor - arch_h + arch_w / 2)
    arch.arcTo(QRectF(cx - arch_w / 2, floor - arch_h, arch_w, arch_w), 180, -180)
    arch.lineTo(cx + arch_w / 2, floor)
    arch.closeSubpath()
    stone = QLinearGradient(QPointF(cx, floor - arch_h), QPointF(cx, floor))
    stone.setColorAt(0.0, QColor("#a08a7c"))
    stone.setColorAt(1.0, QColor("#6e5a50"))
    p.fillPath(arch, QBrush(stone))

    open_w, open_h = arch_w * 0.72, arch_h * 0.80
    opening = QPainterPath()
    opening.moveTo(cx - open_w / 2, floor)
    opening.lineTo(cx - open_w / 2, floor - open_h + open_w / 2)
    opening.arcTo(QRectF(cx - open_w / 2, floor - open_h, open_w, open_w), 180, -180)
    opening.lineTo(cx + open_w / 2, floor)
    opening.closeSubpath()
    p.fillPath(opening, QBrush(QColor("#140d10")))

    # Glow of the fire inside the opening.
    p.save()
    p.setClipPath(opening, Qt.ClipOperation.IntersectClip)
    glow = QRadialGradient(QPointF(cx, floor - open_h * 0.18), open_w * 0.75)
    glow.setColorAt(0.0, QColor(255, 170, 60, 200))
    glow.setColorAt(0.55, QColor(220, 90, 30, 70))
    glow.setColorAt(1.0, QColor(0, 0, 0, 0))
    p.fillRect(body, QBrush(glow))
    p.restore()

    # Mortar lines on the stone arch, clipped to the stone ring.
    ring = arch.subtracted(opening)
    p.save()
    p.setClipPath(ring, Qt.ClipOperation.IntersectClip)
    p.setPen(QPen(QColor(60, 44, 40, 140), 7))
    rows = 7
    for i in range(1, rows):
        y = floor - arch_h * i / rows
        p.drawLine(QPointF(cx - arch_w, y), QPointF(cx + arch_w, y))
    p.restore()
    p.setPen(Qt.PenStyle.NoPen)

    # The floor ledge.
    ledge = QRectF(cx - arch_w * 0.62, floor - 8, arch_w * 1.24, BODY * 0.07)
    p.setBrush(QColor("#8a7466"))
    p.drawRoundedRect(ledge, 14, 14)

    # Two crossed logs.
    log_len, log_th = open_w * 0.86, BODY * 0.065
    for angle in (-11, 11):
        p.save()
        p.translate(cx, floor - log_th * 0.9)
        p.rotate(angle)
        wood = QLinearGradient(QPointF(0, -log_th / 2), QPointF(0, log_th / 2))
        wood.setColorAt(0.0, QColor("#9a5b34"))
        wood.setColorAt(1.0, QColor("#5a321d"))
        p.setBrush(QBrush(wood))
        p.drawRoundedRect(QRectF(-log_len / 2, -log_th / 2, log_len, log_th), log_th / 2, log_th / 2)
        p.setBrush(QColor("#d9a66f"))  # the cut ends
        p.drawEllipse(QPointF(log_len / 2 - log_th * 0.45, 0), log_th * 0.32, log_th * 0.42)
        p.restore()

    # The flame: red-orange outside, orange, then a yellow core; two small side tongues.
    base = floor - log_th * 1.1
    layers = [
        (open_w * 0.56, open_h * 0.74, 0.02, "#e8452c", "#f26b2a"),
        (open_w * 0.40, open_h * 0.56, -0.03, "#f7861f", "#fba94a"),
        (open_w * 0.22, open_h * 0.34, 0.02, "#ffd45c", "#fff1b0"),
    ]
    for dx, w, h, lean, top, bottom in [(-open_w * 0.22, open_w * 0.20, open_h * 0.36, -0.12,
                                         "#e8452c", "#f7861f"),
                                        (open_w * 0.22, open_w * 0.20, open_h * 0.30, 0.12,
                                         "#e8452c", "#f7861f")]:
        grad = QLinearGradient(QPointF(cx + dx, base - h), QPointF(cx + dx, base))
        grad.setColorAt(0.0, QColor(top))
        grad.setColorAt(1.0, QColor(bottom))
        p.fillPath(_flame(cx + dx, base, w, h, lean), QBrush(grad))
    for w, h, lean, top, bottom in layers:
        grad = QLinearGradient(QPointF(cx, base - h), QPointF(cx, base))
        grad.setColorAt(0.0, QColor(top))
        grad.setColorAt(1.0, QColor(bottom))
        p.fillPath(_flame(cx, base, w, h, lean), QBrush(grad))

    # A faint inner rim so the body reads on dark and light Docks alike.
    p.setClipping(False)
    p.setPen(QPen(QColor(255, 255, 255, 28), 4))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRoundedRect(body.adjusted(2, 2, -2, -2), RADIUS - 2, RADIUS - 2)
    p.end()

    if size != SIZE:
        image = image.scaled(size, size, Qt.AspectRatioMode.IgnoreAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841 - Qt needs one
    output.parent.mkdir(parents=True, exist_ok=True)
    if not draw().save(str(output), "PNG"):
        print(f"make_icon: could not write {output}", file=sys.stderr)
        return 1
    print(f"wrote {output} ({SIZE}x{SIZE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

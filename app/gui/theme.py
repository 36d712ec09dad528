"""Light and dark: the Appearance setting (System, Light, Dark), and the system's own dark mode
followed live.

Where the platform can switch its own look (macOS, Windows, some Linux themes with Qt 6.8+), Hearth
asks it to; where it cannot (the offscreen and plain X11 platforms ignore the request), Hearth sets a
palette of its own, so "Dark" always gives a dark window with readable text.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from .prefs import Prefs

THEME_KEY = "appearance/theme"
SCHEMES = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}

# Role -> (light, dark). Close to macOS's own window colours.
_COLORS = {
    QPalette.ColorRole.Window: ("#ececec", "#1e1e1e"),
    QPalette.ColorRole.WindowText: ("#1d1d1f", "#e8e8e8"),
    QPalette.ColorRole.Base: ("#ffffff", "#262626"),
    QPalette.ColorRole.AlternateBase: ("#f5f5f5", "#2c2c2c"),
    QPalette.ColorRole.Text: ("#1d1d1f", "#e8e8e8"),
    QPalette.ColorRole.PlaceholderText: ("#8a8a8e", "#8d8d92"),
    QPalette.ColorRole.Button: ("#f6f6f6", "#3a3a3c"),
    QPalette.ColorRole.ButtonText: ("#1d1d1f", "#e8e8e8"),
    QPalette.ColorRole.BrightText: ("#ffffff", "#ffffff"),
    QPalette.ColorRole.Highlight: ("#0a64d6", "#1f5fbf"),
    QPalette.ColorRole.HighlightedText: ("#ffffff", "#ffffff"),
    QPalette.ColorRole.ToolTipBase: ("#fffff0", "#3a3a3c"),
    QPalette.ColorRole.ToolTipText: ("#1d1d1f", "#e8e8e8"),
    QPalette.ColorRole.Link: ("#0a5bc4", "#6cb2ff"),
    QPalette.ColorRole.LinkVisited: ("#6a3cc4", "#c49bff"),
    QPalette.ColorRole.Light: ("#ffffff", "#4a4a4c"),
    QPalette.ColorRole.Midlight: ("#e3e3e3", "#3f3f41"),
    QPalette.ColorRole.Mid: ("#b8b8b8", "#5a5a5e"),
    QPalette.ColorRole.Dark: ("#9f9f9f", "#161616"),
    QPalette.ColorRole.Shadow: ("#767676", "#000000"),
}
_DISABLED = {
    QPalette.ColorRole.WindowText: ("#a0a0a0", "#6e6e72"),
    QPalette.ColorRole.Text: ("#a0a0a0", "#6e6e72"),
    QPalette.ColorRole.ButtonText: ("#a0a0a0", "#6e6e72"),
}


def palette(dark: bool) -> QPalette:
    """Hearth's own light or dark palette, for platforms that cannot switch theirs."""
    result = QPalette()
    for role, colors in _COLORS.items():
        result.setColor(role, QColor(colors[dark]))
    for role, colors in _DISABLED.items():
        result.setColor(QPalette.ColorGroup.Disabled, role, QColor(colors[dark]))
    return result


def palette_is_dark(pal: QPalette) -> bool:
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def is_dark() -> bool:
    """Whether the application looks dark now (what widgets drawing their own colours ask)."""
    return palette_is_dark(QGuiApplication.palette())


def request_color_scheme(scheme: Qt.ColorScheme | None) -> None:
    """Ask the platform for light or dark, or to follow the system (None). Platforms without the
    feature ignore the request."""
    hints = QGuiApplication.styleHints()
    if scheme is not None:
        hints.setColorScheme(scheme)
    else:
        hints.unsetColorScheme()


def apply_theme(theme: str) -> bool:
    """Make the application light or dark as `theme` ("system", "light", "dark") says; True when
    the result is dark."""
    request_color_scheme(SCHEMES.get(theme))
    app = QGuiApplication.instance()
    app.setPalette(QPalette())  # the platform's own, which may already be right
    if theme in SCHEMES:
        dark = theme == "dark"
    else:
        system = QGuiApplication.styleHints().colorScheme()
        dark = system == Qt.ColorScheme.Dark if system != Qt.ColorScheme.Unknown else is_dark()
    if is_dark() != dark:
        app.setPalette(palette(dark))
    return dark


class ThemeFollower(QObject):
    """Keeps the application's look on the Appearance setting and, with "System", on the system's
    dark mode as it changes.

    Signals:
        changed(bool): the look was applied again; True when dark.
    """

    changed = Signal(bool)

    def __init__(self, prefs: Prefs, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self._applying = False
        self.dark = False
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_scheme)
        prefs.changed.connect(self._on_pref)
        self.apply()

    def apply(self) -> None:
        if self._applying:  # our own request to the platform announces a change too
            return
        self._applying = True
        try:
            self.dark = apply_theme(self.prefs.get(THEME_KEY))
        finally:
            self._applying = False
        self.changed.emit(self.dark)

    def _on_system_scheme(self, _scheme: Qt.ColorScheme) -> None:
        if self.prefs.get(THEME_KEY) not in SCHEMES:
            self.apply()

    def _on_pref(self, key: str) -> None:
        if key == THEME_KEY:
            self.apply()

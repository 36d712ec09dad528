"""Hearth's desktop app (PySide6). Everything Qt lives in this package."""

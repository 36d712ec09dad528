"""The Hugging Face Token tab: a masked entry, checked with the Hub before it is stored."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from engine.library import hub

from ..background import run_in_background
from ..plain_text import plain
from ..prefs import Prefs
from .widgets import Section, named, push_button

TOKEN_USER_KEY = "hub/token_user"


class TokenSection(Section):
    """The Hugging Face token: masked entry, checked with the Hub before it is stored."""

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__("Token message", parent)
        self.prefs = prefs
        self.status = named(plain(QLabel()), "Stored token")  # names the Hub's user
        self.status.setWordWrap(True)
        self.entry = named(QLineEdit(), "Hugging Face token", "Hidden while typed; checked with the Hub on Save")
        self.entry.setEchoMode(QLineEdit.EchoMode.Password)
        self.entry.setPlaceholderText("hf_…")
        self.entry.returnPressed.connect(self.save)
        self.save_button = push_button("Save Token", "Save Hugging Face token", self.save)
        help_text = QLabel("Gated models (such as Meta's Llama) need a read token from "
                           "huggingface.co/settings/tokens, after accepting the model's license there.")
        help_text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(self.save_button)
        layout.addLayout(row)
        layout.addWidget(self.banner)
        layout.addWidget(help_text)
        layout.addStretch(1)

    def refresh(self) -> None:
        self.run(hub.get_token, self._show_stored, "Could not read the stored token")

    def _show_stored(self, token: str | None) -> None:
        user = self.prefs.get(TOKEN_USER_KEY) or ""
        if token is None:
            self.status.setText("No token stored.")
        elif user:
            self.status.setText(f"A token is stored for {user}.")
        else:
            self.status.setText("A token is stored (its user is shown once it has been saved here).")

    def save(self) -> None:
        token = self.entry.text()  # stays in this closure; never logged or shown
        self.save_button.setEnabled(False)
        self.banner.show_info("Checking the token with the Hugging Face Hub…")
        run_in_background(lambda: hub.save_token(token), self._saved, self._failed, parent=self)

    def _saved(self, user: str) -> None:
        self.save_button.setEnabled(True)
        self.entry.clear()
        self.prefs.set(TOKEN_USER_KEY, user)
        self.status.setText(f"A token is stored for {user}.")
        self.banner.show_info(f"Token saved for {user}.")

    def _failed(self, exc: Exception) -> None:
        self.save_button.setEnabled(True)
        self.banner.show_error(f"The token was not saved: {exc}")

"""Hearth's front ends: the Qt desktop app and the `hearth` command."""

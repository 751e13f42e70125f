"""Rendering only: results JSON -> self-contained HTML cards and a static site."""

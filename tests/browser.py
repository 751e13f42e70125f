"""Headless Chromium for page tests: find (or, as root on Debian, install) it and load pages.

The test set-up installs Debian's ``chromium`` with apt-get when it is missing and we are root (as on
a fresh machine of this project's kind and in CI); set ``GENAUDIT_INSTALL_CHROMIUM=0`` to forbid that.
Playwright drives it through ``executable_path``; no browser is ever downloaded.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_or_install_chromium() -> tuple[str | None, str]:
    """Return (path, '') or (None, reason it is unavailable)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found, ""
    if os.environ.get("GENAUDIT_INSTALL_CHROMIUM", "1") == "0":
        return None, "chromium not installed and GENAUDIT_INSTALL_CHROMIUM=0"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium not installed; install Debian's chromium package (needs root and apt-get)"
    log.warning("installing Debian's chromium for the browser tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            return None, f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    found = shutil.which("chromium")
    return (found, "") if found else (None, "apt-get installed chromium but it is not on PATH")


@dataclass
class PageCheck:
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    screenshot: np.ndarray | None = None
    visible_text: str = ""


def check_pages(chromium: str, pages: list[Path], *, javascript: bool = True) -> list[PageCheck]:
    """Load each page in one headless Chromium; record console and page errors, non-local requests,
    the full-page screenshot and the visible text."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1200, "height": 900})
            for path in pages:
                check = PageCheck(url=path.resolve().as_uri())
                page = context.new_page()
                page.on("console", lambda m, c=check: c.console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, c=check: c.page_errors.append(str(e)))
                page.on(
                    "request",
                    lambda r, c=check: (
                        None if r.url.startswith(("file:", "data:")) else c.foreign_requests.append(r.url)
                    ),
                )
                page.goto(check.url, wait_until="load")
                check.screenshot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
                check.visible_text = page.inner_text("body")
                page.close()
                results.append(check)
        finally:
            browser.close()
    return results

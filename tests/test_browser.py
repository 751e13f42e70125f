"""Every page of a published site renders in headless Chromium: non-blank, no console errors, no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.results import write_results
from reports.publish import publish
from tests.browser import check_pages, find_or_install_chromium
from tests.conftest import HOSTILE
from tests.test_reports import hostile_doc

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def chromium() -> str:
    path, reason = find_or_install_chromium()
    if path is None:
        pytest.skip(f"browser tests need Chromium: {reason}")
    return path


def assert_renders(chromium: str, site: Path) -> list[Path]:
    pages = [site / "index.html", *sorted((site / "cards").glob("*.html"))]
    assert len(pages) >= 2
    for javascript in (True, False):  # readable without JavaScript too
        for check in check_pages(chromium, pages, javascript=javascript):
            assert check.console_errors == [] and check.page_errors == [], check.url
            assert check.foreign_requests == [], check.url
            shot = check.screenshot
            assert shot is not None and shot.shape[0] >= 300
            assert shot.std() > 10 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 50, f"blank page: {check.url}"
            assert check.visible_text.strip()
    return pages


def test_site_with_hostile_strings_renders(chromium: str, tmp_path: Path) -> None:
    write_results(tmp_path / "results" / "a.json", hostile_doc("a"))
    write_results(tmp_path / "results" / "b.json", hostile_doc("b"))
    site = tmp_path / "site"
    publish([tmp_path / "results"], site)
    assert_renders(chromium, site)
    (check,) = check_pages(chromium, [site / "cards" / "a.html"])
    assert "title " + HOSTILE in check.visible_text  # shown as text, not executed


@pytest.mark.slow
def test_demo_site_renders(chromium: str, demo_site: Path) -> None:
    pages = assert_renders(chromium, demo_site)
    assert len(pages) == 9  # index, a card per zoo model (4), the benchmark, the audit, its review, detection

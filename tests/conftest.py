"""Shared fixtures. Tests never touch the network: the hub is forced offline before anything imports it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["GENAUDIT_CACHE_DIR"] = "off"  # no test reads or writes ~/.cache; the store's tests set their own

import contextlib
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

HOSTILE = "<script>alert(\"x\")</script> & 'quotes' \u00e9\u4e2d\u6587 \U0001f600 <img src=x onerror=alert(1)>"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def png_bytes(array: np.ndarray, **save_kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save_kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``genaudit demo`` run once per session (the real command, embedded defaults)."""
    from audit.cli import main

    out = tmp_path_factory.mktemp("demo") / "site"
    assert main(["demo", "--out", str(out)]) == 0
    return out


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging CI) if the block runs longer than ``seconds``."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

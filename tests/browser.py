"""Headless Chromium for tests: take a real screenshot of a page and judge it not blank."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from matplotlib import image as mpimg

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
T = TypeVar("T")


def chromium() -> str | None:
    """Path of a Chromium binary, or None (Debian package `chromium`)."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def screenshot(url: str, out: Path, width: int = 1280, height: int = 1600,
               wait_ms: int = 4000) -> Path:
    """Render `url` headless and write a PNG to `out`; `wait_ms` of virtual time lets
    scripts (the dashboard's) fetch and draw before the picture is taken."""
    _headless(url, f"--screenshot={out}", width, height, wait_ms)
    return out


def dom(url: str, width: int = 1280, height: int = 1600, wait_ms: int = 4000) -> str:
    """The page at `url` as HTML once its scripts have drawn it (text a person would read,
    such as a plot's legend, is in it)."""
    return _headless(url, "--dump-dom", width, height, wait_ms)


def dom_showing(url: str, texts: tuple[str, ...], attempts: int = 3, **size: int) -> str:
    """`dom(url)` rendered again, up to `attempts` times, until the page holds every one of
    `texts`: the scripts' requests take real time, which a loaded machine can stretch past
    the virtual-time budget. The last page if none held them all."""
    return _retried(lambda: dom(url, **size), lambda page: all(text in page for text in texts),
                    attempts)


def inked_screenshot(url: str, out: Path, min_ink: float, attempts: int = 3,
                     **size: int) -> float:
    """`screenshot(url, out)` taken again, up to `attempts` times (as `dom_showing`), until
    its ink fraction exceeds `min_ink`; that fraction, the last one if none did."""
    return _retried(lambda: ink_fraction(screenshot(url, out, **size)),
                    lambda ink: ink > min_ink, attempts)


def _retried(take: Callable[[], T], good: Callable[[T], bool], attempts: int) -> T:
    """`take()`, again up to `attempts` times in all until `good` holds of what it gave;
    the last result if it never did."""
    result = take()
    for _ in range(attempts - 1):
        if good(result):
            break
        result = take()
    return result


def _headless(url: str, action: str, width: int, height: int, wait_ms: int) -> str:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found")
    with tempfile.TemporaryDirectory(prefix="nnlab-chromium-") as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
             action, url],
            check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, text=True,
        ).stdout


def ink_fraction(png: Path) -> float:
    """Share of pixels that differ clearly from the page's most common colour: ~0 for a
    blank page, a few percent or more for text and figures."""
    pixels = mpimg.imread(png)[..., :3]
    flat = (pixels.reshape(-1, 3) * 255).astype(np.int16)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    background = values[counts.argmax()]
    return float((np.abs(flat - background).sum(axis=1) > 30).mean())

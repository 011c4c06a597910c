"""LivePlot in a real front end: JupyterLab on 127.0.0.1 driven by headless Chromium.

The test starts its own JupyterLab (a free port, a token it chose, a temp root
holding a copy of ``tests/browser/live_three_epochs.ipynb``, news and update
checks off so no popup covers the page), runs all cells from the command
palette and watches the page: the live image must change after every epoch
(at least four distinct images: the empty panels, then epochs 1, 2, 3), and
when training ends the widgets must hide and leave the final figure and the
final status line ("epoch 3 / 3 · … · done"), shown once. The screenshot goes
to ``$FITLAB_ARTIFACTS`` (default ``artifacts/``) and its path is printed.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright's
Python package; Playwright's own browser download is not used. Without them
the test skips, except under ``CI=true``, where it fails.

Run it with ``pytest -m browser tests/test_browser.py -s``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

CHROMIUM = Path("/usr/bin/chromium")
STATUS = "epoch 3 / 3 · "  # how the final status line starts
STDOUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'
NOTEBOOK = Path(__file__).parent / "browser" / "live_three_epochs.ipynb"
REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Records every src the live image takes (a MutationObserver sees each change as it
# happens; a poll backs it up) and a SHA-256 of the image behind each, fetched at
# once: ipywidgets gives every update a new blob URL, so srcs alone could count
# an unchanged image twice.
WATCH_IMAGE = """() => {
  window.__fitlabSrcs = [];
  window.__fitlabHashes = [];
  const hash = async (src) => {
    try {
      const bytes = await (await fetch(src)).arrayBuffer();
      const digest = await crypto.subtle.digest('SHA-256', bytes);
      window.__fitlabHashes.push(
        [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join(''));
    } catch (e) {
      window.__fitlabHashes.push('unreadable: ' + e);
    }
  };
  const record = () => {
    for (const img of document.querySelectorAll('img.fitlab-live-image')) {
      const src = img.getAttribute('src');
      const seen = window.__fitlabSrcs;
      if (src && seen[seen.length - 1] !== src) {
        seen.push(src);
        hash(src);
      }
    }
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  setInterval(record, 50);
}"""


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test may not skip)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _settings_dir(root: Path) -> Path:
    """User settings with news and update checks off (the popup would cover the figure)."""
    folder = root / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return root / "user-settings"


def _start_lab(root: Path, port: int, token: str, log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        f"--LabApp.user_settings_dir={_settings_dir(root)}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(root / "runtime"), FITLAB_LIVE="auto")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_until_up(proc: subprocess.Popen, base: str, token: str, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            _get(f"{base}/api/status?token={token}")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within 120 s:\n{log_path.read_text()}")


def _stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
    try:  # shut the kernels down first so none outlives the server
        for kernel in _get(f"{base}/api/kernels?token={token}") or []:
            request = urllib.request.Request(
                f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE"
            )
            urllib.request.urlopen(request, timeout=10).close()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        pass  # the server is gone already; terminating it below is all that is left
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _artifact_dir() -> Path:
    folder = Path(os.environ.get("FITLAB_ARTIFACTS", REPO / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_live_plot_updates_in_jupyterlab(tmp_path):
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright's Python package is missing; pip install playwright")

    (tmp_path / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "notebooks" / NOTEBOOK.name)
    port, token = _free_port(), os.urandom(16).hex()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = _start_lab(tmp_path, port, token, log)
        try:
            _wait_until_up(proc, base, token, log_path)
            srcs, hashes, final, shot = _run_notebook_in_chromium(sync_playwright, base, token)
        finally:
            _stop_lab(proc, base, token)
    print(f"\nscreenshot: {shot}")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # no bytes
    images = [h for h in hashes if not h.startswith("unreadable") and h != empty]
    print(f"live image: {len(srcs)} sources, {len(set(images))} distinct images")
    print(f"at the end: {final}")
    assert not [h for h in hashes if h.startswith("unreadable")], hashes
    # the empty panels, then epochs 1, 2 and 3: three changes at least
    assert len(set(images)) >= 4, f"the live image changed {len(set(images)) - 1} times, not 3+"
    assert final["status"].startswith(STATUS) and " · done · " in final["status"], final
    assert final["times shown"] == 1 and final["figure above"], final


def _run_notebook_in_chromium(sync_playwright, base: str, token: str):
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            # loaded: the fit cell's code is on screen and the kernel is idle
            page.get_by_text("LivePlot(log_loss=True)").first.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => document.body.innerText.includes('| Idle')", timeout=120_000
            )
            page.evaluate(WATCH_IMAGE)
            _run_all_cells(page)
            # the end: the widgets hide; the final figure and status line stay below them
            printed = page.locator(STDOUT, has_text=STATUS)
            printed.wait_for(timeout=240_000)
            page.locator(".fitlab-live").wait_for(state="hidden", timeout=30_000)
            outputs = page.locator(".jp-OutputArea", has=printed)  # the fit cell's
            final_image = outputs.locator(".jp-RenderedImage img")
            printed.evaluate("e => e.scrollIntoView({block: 'end'})")  # the figure above it too
            final = {
                "status": printed.inner_text().strip(),
                "times shown": page.evaluate("() => document.body.innerText").count(STATUS),
                "figure above": final_image.bounding_box()["y"] < printed.bounding_box()["y"],
            }
            page.wait_for_function(
                "() => window.__fitlabHashes.length === window.__fitlabSrcs.length",
                timeout=30_000,
            )
            srcs, hashes = page.evaluate("() => [window.__fitlabSrcs, window.__fitlabHashes]")
            shot = _artifact_dir() / "live_three_epochs.png"
            page.screenshot(path=str(shot))
            return srcs, hashes, final, shot
        finally:
            browser.close()


def _run_all_cells(page) -> None:
    """Run All Cells from the command palette, as a user would."""
    palette = page.locator(".lm-CommandPalette-input")
    deadline = time.monotonic() + 60
    while not palette.is_visible():  # the shortcut works once the app has its keymap
        if time.monotonic() > deadline:
            raise AssertionError("the command palette (Ctrl+Shift+C) never opened")
        page.locator(".jp-NotebookPanel .jp-Cell").first.click(timeout=10_000)
        page.keyboard.press("Escape")  # command mode: the shortcut is the app's, not the editor's
        page.keyboard.press("Control+Shift+C")
        page.wait_for_timeout(500)
    palette.fill("Run All Cells")
    page.locator(".lm-CommandPalette-item", has_text="Run All Cells").first.click()

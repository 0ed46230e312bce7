"""Helpers for driving the Tutti web UI in Playwright: page setup and in-page checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

# Every interactive control must have an accessible name: aria-label, aria-labelledby,
# a <label>, its own text (buttons, links), a title, or an alt. Returns the unnamed ones.
UNNAMED_CONTROLS_JS = """
() => {
  const controls = document.querySelectorAll(
    'button, input:not([type=hidden]), select, textarea, a[href], [role=slider], [role=button], [tabindex]:not([tabindex="-1"])'
  );
  const text = (el) => (el ? (el.innerText || el.textContent || '').replace(/\\s+/g, ' ').trim() : '');
  const nameOf = (el) => {
    const aria = (el.getAttribute('aria-label') || '').trim();
    if (aria) return aria;
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = by.split(/\\s+/).map((id) => text(document.getElementById(id))).join(' ').trim();
      if (t) return t;
    }
    if (el.labels && el.labels.length) {
      const t = [...el.labels].map(text).join(' ').trim();
      if (t) return t;
    }
    if (['BUTTON', 'A'].includes(el.tagName) || el.getAttribute('role') === 'button') {
      const t = text(el);
      if (t) return t;
    }
    const title = (el.getAttribute('title') || '').trim();
    if (title) return title;
    return (el.getAttribute('alt') || '').trim();
  };
  return [...controls]
    .filter((el) => !nameOf(el))
    .map((el) => el.outerHTML.slice(0, 160));
}
"""

OVERFLOW_JS = """
() => ({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  bodyScrollWidth: document.body.scrollWidth,
  wide: [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && el.getClientRects().length)
    .slice(0, 5)
    .map((el) => el.tagName + '.' + el.className),
})
"""


def open_page(browser: Browser, url: str, *, width: int = 1280, height: int = 800) -> tuple[BrowserContext, Page]:
    ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    page.wait_for_selector("#conn-status[data-status=open]")
    return ctx, page


def open_session(page: Page, session_id: str) -> None:
    page.evaluate("id => { location.hash = '#/s/' + id; }", session_id)
    page.wait_for_selector("#view[data-ready=true]")


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last value {last!r})")


def section_names(page: Page) -> list[str]:
    names: list[str] = page.eval_on_selector_all(".lane .block .block-name", "els => els.map(e => e.textContent)")
    return names

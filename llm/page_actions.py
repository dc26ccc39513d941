"""PageActions: the computer-use input API (livekit's browser PageActions) on a Playwright page.

Coordinates are viewport CSS pixels, at device scale factor 1 (ComputerTool maps the model's
coordinates onto them when the model is shown a scaled-down display). A mouse action given no
point acts where the cursor is. Actions do not wait after themselves: call `settle()` before
taking the screenshot that shows their effect.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, get_args

from livekit.agents.llm import ToolError
from playwright.async_api import (
    Browser,
    CDPSession,
    FloatRect,
    Page,
    Playwright,
    Request,
    Response,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from .keys import parse_key_sequence, parse_modifiers

ImageFormat = Literal["png", "jpeg", "webp"]
ScrollDirection = Literal["up", "down", "left", "right"]

MEDIA_TYPES: dict[ImageFormat, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # a wheel scroll then lands in one frame, so the settled screenshot shows where it ends
    "--disable-smooth-scrolling",
    # Chromium's own calls home (autofill, translate, safe browsing, ...): the page did not
    # make them, and the model should not be told that they were blocked
    "--disable-features=AutofillServerCommunication,Translate,OptimizationHints,MediaRouter,"
    "DialMediaRouteProvider,InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-default-apps",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
)

SCROLL_CLICK_PX = 100
DEFAULT_SCROLL_AMOUNT = 3
DEFAULT_HOLD_S = 0.5
MAX_DURATION_S = 60.0
MAX_KEY_REPEAT = 100
DRAG_STEPS = 10

# Long-lived streams never finish; waiting for them would always hit the settle cap.
_UNSETTLING_RESOURCE_TYPES = frozenset({"eventsource", "websocket"})
_BLOCKED_NAVIGATION_ERRORS = ("net::ERR_BLOCKED_BY_CLIENT", "net::ERR_ACCESS_DENIED")
_API_PREFIX = re.compile(r"^\w+\.\w+: ")
_TWO_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def chromium_executable() -> str | None:
    """`RELAYQ_CHROMIUM`, else Debian's /usr/bin/chromium, else None (Playwright's bundled one)."""
    configured = os.environ.get("RELAYQ_CHROMIUM")
    if configured:
        return configured
    return DEFAULT_CHROMIUM if os.path.exists(DEFAULT_CHROMIUM) else None


async def launch_chromium(
    playwright: Playwright, *, headless: bool = True, extra_args: Sequence[str] = ()
) -> Browser:
    """Launch the Chromium relayq uses: no network side traffic, no sandbox, no GPU."""
    return await playwright.chromium.launch(
        executable_path=chromium_executable(),
        headless=headless,
        args=[*CHROMIUM_ARGS, *extra_args],
    )


class PageActionError(ToolError):
    """An action that could not be carried out; the message is written for the model."""


class PageActions:
    """Mouse, keyboard, navigation and capture on one Playwright page.

    `last_frame` is the most recent `screenshot()`; `last_settle_ms` the duration of the most
    recent `settle()`. `aclose()` detaches from the page but leaves it open: its owner closes it.
    """

    def __init__(
        self,
        *,
        page: Page,
        image_format: ImageFormat = "png",
        image_quality: int | None = None,
        settle_timeout: float = 0.5,
        navigation_timeout: float = 30.0,
    ) -> None:
        if image_format not in get_args(ImageFormat):
            raise ValueError(f"image_format must be one of {get_args(ImageFormat)}")
        if image_quality is not None and not 0 <= image_quality <= 100:
            raise ValueError("image_quality must be between 0 and 100")
        self._page = page
        self.image_format: ImageFormat = image_format
        self.image_quality = image_quality
        self.settle_timeout = settle_timeout
        self.navigation_timeout = navigation_timeout
        self.last_settle_ms = 0.0
        self._last_frame: bytes | None = None
        self._cursor = (0, 0)
        self._cdp: CDPSession | None = None

        self._inflight: set[Request] = set()
        self._navigation: Request | None = None
        self._requests_seen = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[tuple[str, Any]] = [
            ("request", self._on_request),
            ("requestfinished", self._on_request_done),
            ("requestfailed", self._on_request_done),
            ("response", self._on_response),
            ("load", self._on_navigation_end),
            ("download", self._on_navigation_end),
        ]
        for event, listener in self._listeners:
            page.on(event, listener)  # type: ignore[call-overload]

    @property
    def page(self) -> Page:
        return self._page

    @property
    def last_frame(self) -> bytes | None:
        return self._last_frame

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.image_format]

    @property
    def cursor_position(self) -> tuple[int, int]:
        return self._cursor

    @property
    def display_size(self) -> tuple[int, int]:
        viewport = self._page.viewport_size
        if viewport is None:
            raise PageActionError("the page has no fixed viewport, so it has no display size")
        return viewport["width"], viewport["height"]

    # -- mouse ---------------------------------------------------------------

    async def left_click(
        self, x: int | None = None, y: int | None = None, *, modifiers: str | None = None
    ) -> None:
        """Click at (x, y), or where the cursor is; `modifiers` ("shift", "ctrl+alt") are held."""
        await self._click(x, y, button="left", count=1, modifiers=modifiers)

    async def right_click(
        self, x: int | None = None, y: int | None = None, *, modifiers: str | None = None
    ) -> None:
        await self._click(x, y, button="right", count=1, modifiers=modifiers)

    async def middle_click(
        self, x: int | None = None, y: int | None = None, *, modifiers: str | None = None
    ) -> None:
        await self._click(x, y, button="middle", count=1, modifiers=modifiers)

    async def double_click(
        self, x: int | None = None, y: int | None = None, *, modifiers: str | None = None
    ) -> None:
        await self._click(x, y, button="left", count=2, modifiers=modifiers)

    async def triple_click(
        self, x: int | None = None, y: int | None = None, *, modifiers: str | None = None
    ) -> None:
        await self._click(x, y, button="left", count=3, modifiers=modifiers)

    async def mouse_move(self, x: int, y: int) -> None:
        self._check_point(x, y)
        with _translated_errors("mouse_move"):
            await self._page.mouse.move(x, y)
        self._cursor = (x, y)

    async def left_click_drag(
        self,
        *,
        start_x: int,
        start_y: int,
        end_x: int,
        end_y: int,
        modifiers: str | None = None,
    ) -> None:
        """Press at the start, move to the end, release; `modifiers` are held throughout."""
        self._check_point(start_x, start_y, "start_coordinate")
        self._check_point(end_x, end_y)
        held = _parsed_modifiers(modifiers)
        mouse = self._page.mouse
        with _translated_errors("left_click_drag"):
            await mouse.move(start_x, start_y)
            async with self._holding(held):
                await mouse.down()
                try:
                    await mouse.move(end_x, end_y, steps=DRAG_STEPS)
                finally:
                    await mouse.up()
        self._cursor = (end_x, end_y)

    async def left_mouse_down(self, x: int | None = None, y: int | None = None) -> None:
        """Press the left button at (x, y), or where the cursor is when no point is given."""
        await self._move_if_given(x, y, "left_mouse_down")
        with _translated_errors("left_mouse_down"):
            await self._page.mouse.down()

    async def left_mouse_up(self, x: int | None = None, y: int | None = None) -> None:
        await self._move_if_given(x, y, "left_mouse_up")
        with _translated_errors("left_mouse_up"):
            await self._page.mouse.up()

    async def scroll(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        direction: ScrollDirection = "down",
        amount: int = DEFAULT_SCROLL_AMOUNT,
        modifiers: str | None = None,
    ) -> None:
        """Turn the wheel `amount` clicks of SCROLL_CLICK_PX over (x, y), or where the cursor is."""
        x, y = self._point_or_cursor(x, y, "scroll")
        if direction not in get_args(ScrollDirection):
            raise PageActionError(
                f"scroll_direction must be one of up, down, left, right, not {direction!r}"
            )
        if not _is_int(amount) or amount < 0:
            raise PageActionError(f"scroll_amount must be a non-negative integer, not {amount!r}")
        pixels = amount * SCROLL_CLICK_PX
        match direction:
            case "up":
                dx, dy = 0, -pixels
            case "down":
                dx, dy = 0, pixels
            case "left":
                dx, dy = -pixels, 0
            case "right":
                dx, dy = pixels, 0
        held = _parsed_modifiers(modifiers)
        with _translated_errors("scroll"):
            await self._page.mouse.move(x, y)
            self._cursor = (x, y)
            async with self._holding(held):
                await self._page.mouse.wheel(dx, dy)

    # -- keyboard ------------------------------------------------------------

    async def type_text(self, text: str) -> None:
        with _translated_errors("type"):
            await self._page.keyboard.type(text)

    async def key(self, text: str, *, repeat: int = 1) -> None:
        """Press an xdotool key or combination ("ctrl+a", "Return"), several separated by
        spaces, `repeat` times over."""
        if not _is_int(repeat) or not 1 <= repeat <= MAX_KEY_REPEAT:
            raise PageActionError(
                f"repeat must be an integer from 1 to {MAX_KEY_REPEAT}, not {repeat!r}"
            )
        try:
            chords = parse_key_sequence(text)
        except ValueError as e:
            raise PageActionError(str(e)) from e
        with _translated_errors("key"):
            for _ in range(repeat):
                for chord in chords:
                    async with self._holding(chord):
                        pass

    async def hold_key(self, text: str, *, duration: float = DEFAULT_HOLD_S) -> None:
        """Hold every key of `text` down for `duration` seconds, then release them in reverse."""
        _check_duration(duration)
        try:
            keys = [key for chord in parse_key_sequence(text) for key in chord]
        except ValueError as e:
            raise PageActionError(str(e)) from e
        with _translated_errors("hold_key"):
            async with self._holding(keys):
                await asyncio.sleep(duration)

    async def wait(self, duration: float = 1.0) -> None:
        _check_duration(duration)
        await asyncio.sleep(duration)

    # -- navigation ----------------------------------------------------------

    async def navigate(self, url: str) -> None:
        with _translated_errors(f"navigation to {url}"):
            await self._page.goto(url, wait_until="load", timeout=self.navigation_timeout * 1000)

    async def go_back(self) -> bool:
        """False when there is no previous page."""
        with _translated_errors("going back"):
            response = await self._page.go_back(
                wait_until="load", timeout=self.navigation_timeout * 1000
            )
        return response is not None

    async def go_forward(self) -> bool:
        with _translated_errors("going forward"):
            response = await self._page.go_forward(
                wait_until="load", timeout=self.navigation_timeout * 1000
            )
        return response is not None

    # -- settling and capture --------------------------------------------------

    async def settle(self) -> float:
        """Wait, at most `settle_timeout` s, until no request or navigation is pending and two
        frames have been painted with none starting; return (and keep) the milliseconds spent."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.settle_timeout):
                while True:
                    await self._idle.wait()
                    seen = self._requests_seen
                    try:
                        await self._page.evaluate(_TWO_FRAMES_JS)
                    except PlaywrightError:
                        if self._page.is_closed():
                            raise PageActionError("the page has been closed") from None
                        # the document went away mid-evaluate: a navigation is under way
                        await asyncio.sleep(0.01)
                        continue
                    if self._idle.is_set() and seen == self._requests_seen:
                        break
        except TimeoutError:
            pass
        self.last_settle_ms = (loop.time() - started) * 1000
        return self.last_settle_ms

    async def screenshot(
        self,
        *,
        image_format: ImageFormat | None = None,
        quality: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> bytes:
        """The viewport as an image, at display size or scaled down to `size` (width, height);
        also kept as `last_frame`.

        webp comes straight from Chromium (Playwright >= 1.55 supports it); quality applies to
        jpeg and webp, and is ignored for png. A scaled capture needs Chromium (CDP).
        """
        fmt = image_format or self.image_format
        quality = None if fmt == "png" else _first_given(quality, self.image_quality)
        display_w, display_h = self.display_size
        if size is None or tuple(size) == (display_w, display_h):
            with _translated_errors("screenshot"):
                frame = await self._page.screenshot(
                    type=fmt, quality=quality, scale="css", caret="initial"
                )
        else:
            out_w, out_h = size
            frame = await self._capture(
                "screenshot", (0, 0, display_w, display_h), out_w / display_w, out_h, fmt, quality
            )
        self._last_frame = frame
        return frame

    async def zoom(
        self,
        region: Sequence[int],
        *,
        image_format: ImageFormat | None = None,
        quality: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> bytes:
        """Region [x1, y1, x2, y2] of the display, re-rendered at the scale that fits it into
        `size` (default: the display size), so a 320x180 region of a 1280x720 display comes
        back 1280x720, sharp. Without a CDP session (not Chromium) it falls back to the region
        at 1:1."""
        x1, y1, x2, y2 = self._check_region(region)
        width, height = x2 - x1, y2 - y1
        fit_w, fit_h = size or self.display_size
        scale = min(fit_w / width, fit_h / height)
        fmt = image_format or self.image_format
        quality = None if fmt == "png" else _first_given(quality, self.image_quality)
        return await self._capture(
            "zoom", (x1, y1, width, height), scale, round(height * scale), fmt, quality
        )

    async def aclose(self) -> None:
        for event, listener in self._listeners:
            self._page.remove_listener(event, listener)
        self._listeners.clear()
        if self._cdp is not None:
            cdp, self._cdp = self._cdp, None
            try:
                await cdp.detach()
            except PlaywrightError:
                pass  # the page or browser is already gone

    # -- internals -----------------------------------------------------------

    async def _capture(
        self,
        what: str,
        clip: tuple[int, int, int, int],
        scale: float,
        out_height: int,
        fmt: ImageFormat,
        quality: int | None,
    ) -> bytes:
        """The viewport rectangle `clip` (x, y, width, height), rendered at `scale` into an image
        exactly `out_height` pixels high (its width is round(width * scale))."""
        x, y, width, _ = clip
        with _translated_errors(what):
            cdp = await self._cdp_session()
            if cdp is None:
                if scale != 1 and what == "screenshot":
                    raise PageActionError("a scaled screenshot needs Chromium (a CDP session)")
                rect = FloatRect(x=x, y=y, width=width, height=clip[3])
                return await self._page.screenshot(
                    type=fmt, quality=quality, clip=rect, scale="css", caret="initial"
                )
            metrics = await cdp.send("Page.getLayoutMetrics")
            viewport = metrics["cssVisualViewport"]
            params: dict[str, Any] = {
                "format": fmt,
                # CDP clips in document coordinates, from viewport ones here; the clip's height
                # is the one whose scaled size rounds to exactly out_height
                "clip": {
                    "x": viewport["pageX"] + x,
                    "y": viewport["pageY"] + y,
                    "width": width,
                    "height": out_height / scale,
                    "scale": scale,
                },
                "captureBeyondViewport": False,
            }
            if quality is not None:
                params["quality"] = quality
            result = await cdp.send("Page.captureScreenshot", params)
        return base64.b64decode(result["data"])

    async def _click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: Literal["left", "right", "middle"],
        count: int,
        modifiers: str | None,
    ) -> None:
        x, y = self._point_or_cursor(x, y, f"{button} click")
        held = _parsed_modifiers(modifiers)
        with _translated_errors(f"{button} click"):
            async with self._holding(held):
                await self._page.mouse.click(x, y, button=button, click_count=count)
        self._cursor = (x, y)

    def _point_or_cursor(self, x: int | None, y: int | None, action: str) -> tuple[int, int]:
        if x is None and y is None:
            return self._cursor
        if x is None or y is None:
            raise PageActionError(f"{action} needs both x and y, or neither")
        self._check_point(x, y)
        return x, y

    async def _move_if_given(self, x: int | None, y: int | None, action: str) -> None:
        if x is None and y is None:
            return
        if x is None or y is None:
            raise PageActionError(f"{action} needs both x and y, or neither")
        await self.mouse_move(x, y)

    @asynccontextmanager
    async def _holding(self, keys: Sequence[str]) -> AsyncIterator[None]:
        keyboard = self._page.keyboard
        pressed: list[str] = []
        try:
            for key in keys:
                await keyboard.down(key)
                pressed.append(key)
            yield
        finally:
            for key in reversed(pressed):
                await keyboard.up(key)

    async def _cdp_session(self) -> CDPSession | None:
        if self._cdp is None:
            try:
                self._cdp = await self._page.context.new_cdp_session(self._page)
            except PlaywrightError:
                return None
        return self._cdp

    def _check_point(self, x: int, y: int, name: str = "coordinate") -> None:
        if not (_is_int(x) and _is_int(y)):
            raise PageActionError(f"{name} must be two integers [x, y], got [{x!r}, {y!r}]")
        width, height = self.display_size
        if not (0 <= x < width and 0 <= y < height):
            raise PageActionError(
                f"{name} [{x}, {y}] is outside the {width}x{height} display: "
                f"x must be 0-{width - 1} and y 0-{height - 1}"
            )

    def _check_region(self, region: Sequence[int]) -> tuple[int, int, int, int]:
        if len(region) != 4 or not all(_is_int(v) for v in region):
            raise PageActionError(f"region must be four integers [x1, y1, x2, y2], got {region!r}")
        x1, y1, x2, y2 = region
        width, height = self.display_size
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise PageActionError(
                f"region {list(region)!r} must satisfy 0 <= x1 < x2 <= {width} and "
                f"0 <= y1 < y2 <= {height}"
            )
        return x1, y1, x2, y2

    def _on_request(self, request: Request) -> None:
        if request.resource_type in _UNSETTLING_RESOURCE_TYPES:
            return
        self._requests_seen += 1
        self._inflight.add(request)
        if request.is_navigation_request() and _is_main_frame_request(self._page, request):
            self._navigation = request
        self._update_idle()

    def _on_request_done(self, request: Request) -> None:
        self._inflight.discard(request)
        if request is self._navigation and request.failure is not None:
            self._navigation = None
        self._update_idle()

    def _on_response(self, response: Response) -> None:
        # a navigation answered with no content or a download never loads a document
        if response.request is self._navigation and (
            response.status in (204, 205)
            or "attachment" in response.headers.get("content-disposition", "")
        ):
            self._navigation = None
            self._update_idle()

    def _on_navigation_end(self, _: object) -> None:
        self._navigation = None
        self._update_idle()

    def _update_idle(self) -> None:
        if self._inflight or self._navigation is not None:
            self._idle.clear()
        else:
            self._idle.set()


def _first_given(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_main_frame_request(page: Page, request: Request) -> bool:
    try:
        return request.frame == page.main_frame
    except PlaywrightError:
        return False  # service-worker requests have no frame


def _check_duration(duration: object) -> None:
    if (
        not isinstance(duration, int | float)
        or isinstance(duration, bool)
        or not 0 <= duration <= MAX_DURATION_S
    ):
        raise PageActionError(
            f"duration must be a number of seconds between 0 and {MAX_DURATION_S:g}, "
            f"not {duration!r}"
        )


def _parsed_modifiers(text: str | None) -> list[str]:
    try:
        return parse_modifiers(text)
    except ValueError as e:
        raise PageActionError(str(e)) from e


@contextmanager
def _translated_errors(what: str) -> Iterator[None]:
    """Playwright errors -> PageActionError with the first line of the message (no call log)."""
    try:
        yield
    except PlaywrightTimeoutError as e:
        raise PageActionError(f"{what} timed out: {_first_line(e.message)}") from e
    except PlaywrightError as e:
        message = _first_line(e.message)
        if any(code in message for code in _BLOCKED_NAVIGATION_ERRORS):
            raise PageActionError(f"navigation blocked: {message}") from e
        raise PageActionError(f"{what} failed: {message}") from e


def _first_line(message: str) -> str:
    """'Page.goto: net::ERR_X at url\nCall log: ...' -> 'net::ERR_X at url'."""
    lines = message.strip().splitlines()
    return _API_PREFIX.sub("", lines[0]) if lines else "unknown error"

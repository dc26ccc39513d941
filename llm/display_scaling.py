"""DisplayScaling: the display the model is shown, and how its coordinates map onto the screen.

The API shrinks an image whose long edge exceeds 1568 px or whose area exceeds about 1.15
megapixels before the model sees it, and the model then answers in the shrunk image's
coordinates: clicks land off target on the real screen. So, as Anthropic's reference computer-use
implementation (anthropic-quickstarts, computer-use-demo) does, a large screen is declared to the
model at a target resolution, every screenshot is scaled down to it, and every coordinate the
model gives is scaled back up (and cursor positions down). Targets, as in the reference: XGA
1024x768 (4:3), WXGA 1280x800 (16:10), FWXGA 1366x768 (~16:9), the first whose aspect ratio is
within 0.02 of the screen's, when it is smaller than the screen. A screen of another shape that
exceeds the API's limits is scaled by the documented factor
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool, "Handle
coordinate scaling for higher resolutions"). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["API_MAX_LONG_EDGE", "API_MAX_PIXELS", "SCALING_TARGETS", "DisplayScaling"]

API_MAX_LONG_EDGE = 1568
API_MAX_PIXELS = 1_150_000
SCALING_TARGETS: dict[str, tuple[int, int]] = {
    "XGA": (1024, 768),
    "WXGA": (1280, 800),
    "FWXGA": (1366, 768),
}
_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class DisplayScaling:
    screen: tuple[int, int]
    """The real display (the page's viewport), in CSS pixels."""
    model: tuple[int, int]
    """The display declared to the model: the size of every screenshot it is shown."""

    @classmethod
    def for_screen(cls, width: int, height: int) -> DisplayScaling:
        """The scaling the reference implementation applies to a screen of this size."""
        ratio = width / height
        for target_w, target_h in SCALING_TARGETS.values():
            if abs(target_w / target_h - ratio) < _ASPECT_TOLERANCE:
                if target_w < width:
                    return cls((width, height), (target_w, target_h))
                return cls.none(width, height)
        long_edge_factor = API_MAX_LONG_EDGE / max(width, height)
        factor = min(1.0, long_edge_factor, math.sqrt(API_MAX_PIXELS / (width * height)))
        if factor >= 1.0:
            return cls.none(width, height)
        return cls((width, height), (int(width * factor), int(height * factor)))

    @classmethod
    def none(cls, width: int, height: int) -> DisplayScaling:
        return cls((width, height), (width, height))

    @property
    def scaled(self) -> bool:
        return self.model != self.screen

    def to_screen(self, x: int, y: int) -> tuple[int, int]:
        """A model coordinate (inside the model's display) as a screen coordinate."""
        (screen_w, screen_h), (model_w, model_h) = self.screen, self.model
        return (
            min(round(x * screen_w / model_w), screen_w - 1),
            min(round(y * screen_h / model_h), screen_h - 1),
        )

    def to_model(self, x: int, y: int) -> tuple[int, int]:
        """A screen coordinate as the model's coordinate."""
        (screen_w, screen_h), (model_w, model_h) = self.screen, self.model
        return (
            min(round(x * model_w / screen_w), model_w - 1),
            min(round(y * model_h / screen_h), model_h - 1),
        )

    def region_to_screen(self, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A zoom region [x1, y1, x2, y2] of the model's display on the screen (edges inclusive
        of the far side: x2 may be the display's width)."""
        (screen_w, screen_h), (model_w, model_h) = self.screen, self.model
        x1, y1, x2, y2 = region
        return (
            round(x1 * screen_w / model_w),
            round(y1 * screen_h / model_h),
            min(round(x2 * screen_w / model_w), screen_w),
            min(round(y2 * screen_h / model_h), screen_h),
        )

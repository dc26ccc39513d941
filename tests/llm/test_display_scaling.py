"""DisplayScaling: which display the model is shown, and coordinates mapped both ways. Pure."""

from __future__ import annotations

import pytest

from relayq.llm.display_scaling import API_MAX_LONG_EDGE, API_MAX_PIXELS, DisplayScaling


@pytest.mark.parametrize(
    ("screen", "model"),
    [
        ((1920, 1080), (1366, 768)),  # ~16:9 -> FWXGA, as the reference implementation does
        ((2560, 1440), (1366, 768)),
        ((1920, 1200), (1280, 800)),  # 16:10 -> WXGA
        ((1440, 900), (1280, 800)),
        ((1600, 1200), (1024, 768)),  # 4:3 -> XGA
        ((2560, 1080), (1568, 661)),  # 21:9 matches no target: the API's own factor
        ((1280, 720), (1280, 720)),  # within the limits: shown as it is
        ((1280, 800), (1280, 800)),
        ((1024, 768), (1024, 768)),
        ((800, 600), (800, 600)),
    ],
)
def test_the_model_is_shown_a_display_within_the_api_limits(
    screen: tuple[int, int], model: tuple[int, int]
) -> None:
    scaling = DisplayScaling.for_screen(*screen)
    assert scaling.model == model
    assert scaling.scaled is (model != screen)
    width, height = scaling.model
    assert max(width, height) <= API_MAX_LONG_EDGE and width * height <= API_MAX_PIXELS


def test_model_coordinates_scale_up_to_the_screen_and_back() -> None:
    scaling = DisplayScaling.for_screen(1920, 1080)
    assert scaling.to_screen(683, 384) == (960, 540)
    assert scaling.to_model(960, 540) == (683, 384)
    assert scaling.to_screen(0, 0) == (0, 0)
    assert scaling.to_screen(1365, 767) == (1919, 1079)  # the last model pixel stays on screen
    for x, y in [(0, 0), (17, 933), (1440, 864), (1919, 1079)]:
        back = scaling.to_screen(*scaling.to_model(x, y))
        assert abs(back[0] - x) <= 1 and abs(back[1] - y) <= 1


def test_a_zoom_region_of_the_model_display_covers_the_same_part_of_the_screen() -> None:
    scaling = DisplayScaling.for_screen(1920, 1200)
    assert scaling.region_to_screen((0, 0, 1280, 800)) == (0, 0, 1920, 1200)
    assert scaling.region_to_screen((320, 200, 640, 400)) == (480, 300, 960, 600)


def test_without_scaling_coordinates_are_unchanged() -> None:
    scaling = DisplayScaling.none(1920, 1080)
    assert scaling.model == scaling.screen == (1920, 1080)
    assert scaling.to_screen(1000, 700) == (1000, 700) == scaling.to_model(1000, 700)

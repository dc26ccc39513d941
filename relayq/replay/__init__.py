"""Replays of a job: its final attempt as numbered steps, shown as one self-contained HTML page,
an optional GIF/WebP animation, or screenshot files.

    run = await collect_run(client, job_id)        # a snapshot; never waits for the job to end
    Path("run.html").write_text(render_html(run))

A step is one `action` event of the final attempt with the model text and usage of the turn that
asked for it and the `screenshot` taken after it. A `retry` event voids the steps of the attempt
it names, exactly as `relayq.transcript.Transcript` voids text.

    model      Run, Step, Shot
    collect    collect_run: the job hash and stream, folded into steps
    actions    describe_action and where an action touched the screen
    page       render_html (Jinja2 templates in templates/, autoescaped)
    animation  render_animation (Pillow)
    files      write_replay, save_screenshots, save_screenshot_event

Jinja2 and Pillow (the `replay` extra) are imported only when a page or an animation is made.
"""

from relayq.replay.actions import describe_action
from relayq.replay.animation import render_animation
from relayq.replay.collect import collect_run
from relayq.replay.files import save_screenshot_event, save_screenshots, write_replay
from relayq.replay.model import Run, Shot, Step
from relayq.replay.page import render_html

__all__ = [
    "Run",
    "Shot",
    "Step",
    "collect_run",
    "describe_action",
    "render_animation",
    "render_html",
    "save_screenshot_event",
    "save_screenshots",
    "write_replay",
]

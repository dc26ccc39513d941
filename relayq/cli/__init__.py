"""The `relayq` command line.

entry        main(): parse, run, one-line errors
parser       the command tree, help, examples
errors       CliError/UsageError and how lower errors read
connection   which Redis, and a fast check that it answers
producer     submit, watch, cancel (the core install: redis + pydantic)
watch        following a job: JSON lines, plain lines, the live view
watch_state  what a watch knows; watch_view: how it shows it
operator     worker, status, jobs, gateway, simulator, demo, replay, redis-stop
fleet_view   status and jobs as tables or JSON; tables: plain-text tables
terminal     ANSI styles, terminal size, a frame redrawn in place
demo         `relayq demo`
"""

from relayq.cli.entry import main

__all__ = ["main"]

"""``python -m relayq.simulator``: serve the simulator until SIGINT/SIGTERM."""

from .server import main

main()

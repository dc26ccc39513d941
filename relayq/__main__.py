from relayq.cli import main

main()

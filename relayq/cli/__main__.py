from relayq.cli.entry import main

main()

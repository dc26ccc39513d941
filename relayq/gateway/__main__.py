from relayq.gateway.server import main

main()

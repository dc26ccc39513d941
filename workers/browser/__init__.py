"""The computer-use browser: a network policy (policy), the SOCKS5 egress filter that enforces it
after DNS (egress), the per-context guard that routes and watches navigations (guard), and the
warm pool of guarded contexts (pool)."""

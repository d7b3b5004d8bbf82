"""Tests of the proxy: the pure model (tables, playbooks) and the userspace mode (real sockets)."""

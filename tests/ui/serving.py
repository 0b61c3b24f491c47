"""Helpers for tests that serve the app."""

import socket


def free_port() -> int:
    """A port nothing listens on, from the system: a test app never takes the 7860 a user's app may hold."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

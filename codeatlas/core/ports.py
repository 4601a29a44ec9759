"""A free TCP port on loopback, picked by the kernel (for the embedded child servers)."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

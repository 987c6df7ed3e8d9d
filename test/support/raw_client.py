#!/usr/bin/env python3
"""A client that sends raw bytes to a server's socket, for the tests of what a
server does with bad frames: argv[1] the socket, argv[2] the bytes in hex,
argv[3] (optional) a file whose descriptor goes with them (SCM_RIGHTS). It then
reads until the server closes the connection (or 10 s pass) and prints one JSON
line: what came back, in hex, and whether the server closed the connection.
With RAW_CLIENT_CLOSE=1 it closes the connection right after sending."""

import json
import os
import socket
import sys

path, payload = sys.argv[1], bytes.fromhex(sys.argv[2])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(path)
except OSError as error:
    print(json.dumps({"connected": False, "errno": error.errno}))
    sys.exit(0)
try:
    if len(sys.argv) > 3:
        fd = os.open(sys.argv[3], os.O_RDONLY)
        socket.send_fds(sock, [payload], [fd])
        os.close(fd)
    elif payload:
        sock.sendall(payload)
except (BrokenPipeError, ConnectionResetError):
    pass  # the server may close first (a refused connection): what it sent is still there to read
if os.environ.get("RAW_CLIENT_CLOSE") == "1":
    sock.close()
    print(json.dumps({"connected": True, "received": "", "closed": False, "uid": os.getuid()}))
    sys.exit(0)
sock.settimeout(10)
received, closed = b"", False
try:
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
            break
        received += chunk
except socket.timeout:
    pass
except ConnectionResetError:
    closed = True
print(json.dumps({"connected": True, "received": received.hex(), "closed": closed, "uid": os.getuid()}))

#!/usr/bin/env python3
"""The tutorial's server, unchanged in behaviour.

It binds, listens with a backlog of 1 and then, forever: accepts one client, reads one
chunk of up to 1024 bytes, prints it, answers `hello client`. It never closes a
connection explicitly: the previous one goes away only when its object is replaced by
the next accepted one. It answers one request per connection and serves one client at a
time.

Differences from the tutorial, so that tests can use it:
  * the address comes from the command line: `unix PATH` or `tcp HOST PORT`
    (default: unix /tmp/uds_socket);
  * once listening it prints `listening on unix:PATH` or `listening on tcp:HOST:PORT`
    (with the real port when PORT is 0) and flushes;
  * TCP listeners use SO_REUSEADDR.
"""
import socket
import sys


def parse_address(argv):
    if not argv:
        return socket.AF_UNIX, "/tmp/uds_socket"
    if argv[0] == "unix" and len(argv) == 2:
        return socket.AF_UNIX, argv[1]
    if argv[0] == "tcp" and len(argv) == 3:
        return socket.AF_INET, (argv[1], int(argv[2]))
    sys.exit("usage: tutorial_server.py [unix PATH | tcp HOST PORT]")


def describe(family, server):
    if family == socket.AF_UNIX:
        return "unix:" + server.getsockname()
    host, port = server.getsockname()[:2]
    return f"tcp:{host}:{port}"


def main():
    family, address = parse_address(sys.argv[1:])
    server = socket.socket(family, socket.SOCK_STREAM)
    if family != socket.AF_UNIX:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(address)
    server.listen(1)
    print("listening on " + describe(family, server), flush=True)

    while True:
        connection, client_address = server.accept()
        data = connection.recv(1024)
        print(data.decode(errors="replace"), flush=True)
        connection.sendall(b"hello client")


if __name__ == "__main__":
    main()

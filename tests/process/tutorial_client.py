#!/usr/bin/env python3
"""The tutorial's client, unchanged in behaviour.

Connects, sends `hello server`, reads one chunk of up to 1024 bytes, prints it decoded,
closes. The only difference from the tutorial: the address comes from the command line,
`unix PATH` or `tcp HOST PORT` (default: unix /tmp/uds_socket).
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
    sys.exit("usage: tutorial_client.py [unix PATH | tcp HOST PORT]")


def main():
    family, address = parse_address(sys.argv[1:])
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(address)
    client.sendall(b"hello server")
    data = client.recv(1024)
    print(data.decode())
    client.close()


if __name__ == "__main__":
    main()

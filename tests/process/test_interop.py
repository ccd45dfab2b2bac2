#!/usr/bin/env python3
"""hello-server and hello-client against the tutorial's Python scripts, and the scripts
against each other, over UNIX and TCP sockets."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (CLIENT, EX_OK, EX_TEMPFAIL, PYTHON, TUTORIAL_CLIENT, Server,  # noqa: E402
                     TutorialServer, describe, run, sockaddr, socket_path)


def tutorial_client_args(endpoint):
    """tutorial_client.py's arguments for an endpoint the server reported."""
    _, address = sockaddr(endpoint)
    if endpoint.startswith("unix:"):
        return ["unix", address]
    return ["tcp", address[0], str(address[1])]


class TutorialClientAgainstHelloServer(unittest.TestCase):
    def check(self, listen):
        with Server("--listen", listen) as server:
            result = run([PYTHON, TUTORIAL_CLIENT, *tutorial_client_args(server.endpoints[0])])
            self.assertEqual(result.returncode, 0, describe(result))
            self.assertEqual(result.stdout, "hello client\n", describe(result))
            self.assertEqual(result.stderr, "", describe(result))

    def test_unix(self):
        self.check("unix:" + socket_path(self))

    def test_tcp(self):
        self.check("tcp:127.0.0.1:0")

    def test_twice_in_a_row(self):
        # The tutorial client closes without reading EOF; the next one must be served too.
        with Server("--listen", "unix:" + socket_path(self)) as server:
            for _ in range(2):
                result = run([PYTHON, TUTORIAL_CLIENT, *tutorial_client_args(server.endpoints[0])])
                self.assertEqual((result.returncode, result.stdout), (0, "hello client\n"), describe(result))


class HelloClientAgainstTutorialServer(unittest.TestCase):
    def start_tutorial_server(self, kind):
        if kind == "unix":
            return TutorialServer("unix", socket_path(self))
        return TutorialServer("tcp", "127.0.0.1", "0")

    def check(self, kind):
        with self.start_tutorial_server(kind) as tutorial:
            result = run([CLIENT, "--connect", tutorial.endpoint])
            self.assertEqual(result.returncode, EX_OK, describe(result))
            self.assertEqual(result.stdout, "hello client\n", describe(result))
            self.assertEqual(result.stderr, "", describe(result))
            # The tutorial server printed what it received.
            self.assertEqual(tutorial.stdout.wait_line(lambda l: l == "hello server", 5), "hello server",
                             tutorial.stdout.text())
            # It never closes the previous connection and serves one client at a time;
            # a second client is served all the same.
            result = run([CLIENT, "--connect", tutorial.endpoint])
            self.assertEqual((result.returncode, result.stdout), (EX_OK, "hello client\n"), describe(result))
            self.assertTrue(tutorial.alive(), tutorial.stderr.text())

    def test_unix(self):
        self.check("unix")

    def test_tcp(self):
        self.check("tcp")

    def test_second_request_on_a_connection_times_out(self):
        # The tutorial server answers the first request on a connection only.
        with self.start_tutorial_server("unix") as tutorial:
            result = run([CLIENT, "--connect", tutorial.endpoint, "-n", "2", "--timeout", "0.5"])
            self.assertEqual(result.returncode, EX_TEMPFAIL, describe(result))
            self.assertEqual(result.stdout, "hello client\n", describe(result))
            self.assertEqual(len(result.stderr.splitlines()), 1, describe(result))
            self.assertIn("request 2", result.stderr, describe(result))


class TutorialScriptsTogether(unittest.TestCase):
    """The reference pair itself, so that a failure above is not blamed on the scripts."""

    def test_unix(self):
        with TutorialServer("unix", socket_path(self)) as tutorial:
            result = run([PYTHON, TUTORIAL_CLIENT, *tutorial_client_args(tutorial.endpoint)])
            self.assertEqual((result.returncode, result.stdout), (0, "hello client\n"), describe(result))

    def test_tcp(self):
        with TutorialServer("tcp", "127.0.0.1", "0") as tutorial:
            self.assertRegex(tutorial.endpoint, r"^tcp:127\.0\.0\.1:[1-9][0-9]*$")
            result = run([PYTHON, TUTORIAL_CLIENT, *tutorial_client_args(tutorial.endpoint)])
            self.assertEqual((result.returncode, result.stdout), (0, "hello client\n"), describe(result))


if __name__ == "__main__":
    unittest.main()

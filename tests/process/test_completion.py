#!/usr/bin/env python3
"""The bash completion (config/bash-completion/hello) in a real bash: source it, set
COMP_WORDS and COMP_CWORD as readline would, call the function `complete -p` names for the
command, read COMPREPLY. Every option `--help` lists must be offered, so the two cannot drift."""
import os
import shlex
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from help_options import help_options  # noqa: E402
from helpers import CLIENT, SERVER, make_tempdir  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config", "bash-completion", "hello")
BASH = shutil.which("bash")


def complete(words, cwd=None):
    """COMPREPLY for the command line `words`, the cursor at the end of the last word."""
    command = words[0]
    script = f"""
set -u
source {shlex.quote(os.path.abspath(SCRIPT))}
spec=$(complete -p {shlex.quote(command)}) || exit 3
function=$(sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p' <<<"$spec")
[ -n "$function" ] || exit 4
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(" ".join(words))}
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$function" {shlex.quote(command)} {shlex.quote(words[-1])} {shlex.quote(words[-2] if len(words) > 1 else "")}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", script], capture_output=True, text=True, cwd=cwd,
                          timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"bash exited {done.returncode} completing {words}: {done.stderr}")
    return [line for line in done.stdout.splitlines() if line]


@unittest.skipUnless(BASH, "no bash")
class BashCompletion(unittest.TestCase):
    def test_every_option_of_help_is_offered(self):
        for program, command in ((SERVER, "hello-server"), (CLIENT, "hello-client")):
            offered = set(complete([command, "-"]))
            for option in help_options(program):
                with self.subTest(command=command, option=option.name):
                    self.assertIn(f"--{option.name}", offered, f"{command} --<TAB> does not offer --{option.name}")
                    if option.short:
                        self.assertIn(f"-{option.short}", offered)

    def test_a_prefix_narrows_the_options(self):
        self.assertEqual(complete(["hello-server", "--fr"]), ["--framing"])
        self.assertEqual(sorted(complete(["hello-server", "--max-"])), ["--max-connections", "--max-request-bytes"])
        self.assertEqual(complete(["hello-client", "--wa"]), ["--wait"])

    def test_framing_values(self):
        for command in ("hello-server", "hello-client"):
            self.assertEqual(complete([command, "--framing", ""]), ["raw", "line"])
            self.assertEqual(complete([command, "--framing", "l"]), ["line"])
            # `--framing=l`: bash splits the word at '=' (COMP_WORDBREAKS)
            self.assertEqual(complete([command, "--framing", "=", "l"]), ["line"])
            self.assertEqual(complete([command, "--framing", "="]), ["raw", "line"])
        # and a COMP_WORDBREAKS without '=' leaves the word whole
        self.assertEqual(complete(["hello-server", "--framing=r"]), ["--framing=raw"])

    def test_log_level_values(self):
        self.assertEqual(complete(["hello-server", "--log-level", ""]),
                         ["trace", "debug", "info", "warn", "error", "off"])
        self.assertEqual(complete(["hello-server", "--threads", "2", "--log-level", "d"]), ["debug"])

    def test_config_completes_files(self):
        where = make_tempdir(self)
        for name in ("hello-server.conf", "hello-other.conf", "unrelated.txt"):
            open(os.path.join(where, name), "w").close()
        os.mkdir(os.path.join(where, "hello-dir"))
        self.assertEqual(sorted(complete(["hello-server", "--config", "hello-"], cwd=where)),
                         ["hello-dir", "hello-other.conf", "hello-server.conf"])
        self.assertEqual(complete(["hello-server", "--config", f"{where}/unr"]), [f"{where}/unrelated.txt"])

    def test_values_that_are_numbers_or_text_offer_no_options(self):
        self.assertEqual(complete(["hello-server", "--threads", ""]), [])
        self.assertEqual(complete(["hello-client", "--count", ""]), [])
        self.assertEqual(complete(["hello-client", "--message", "-"]), [])

    def test_users_and_groups(self):
        self.assertIn("root", complete(["hello-server", "--allow-uid", "ro"]))
        self.assertIn("root", complete(["hello-server", "--socket-group", "ro"]))

    def test_both_commands_are_registered(self):
        for command in ("hello-server", "hello-client"):
            self.assertTrue(complete([command, "--h"]), f"nothing for {command} --h")


if __name__ == "__main__":
    unittest.main()

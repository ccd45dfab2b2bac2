#!/usr/bin/env python3
"""The manual pages (config/man/) against the programs: every option `--help` lists has an
entry of its own in the page, with its default where --help gives one, every setting is in
hello-server.conf(5) and has its HELLO_* variable in hello-server(8); and the pages render
without a single warning from man."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from help_options import help_options  # noqa: E402
from helpers import CLIENT, SERVER  # noqa: E402

MAN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config", "man")
PAGES = {name: os.path.join(MAN_DIR, name) for name in ("hello-server.8", "hello-client.1", "hello-server.conf.5")}


def plain(line):
    """A roff source line as text: escaped hyphens as hyphens, font changes and quotes gone."""
    line = line.replace(r"\-", "-").replace(r"\e", "\\").replace(r"\~", " ")
    line = re.sub(r"\\f(?:\[[^]]*\]|[BIRP])", "", line)
    return line.replace('"', "")


def entries(path, section=None):
    """{header text: body text} for every .TP/.TQ item of a page (of its `.SH section` only, if
    given): the header is the line after the macro, the body runs to the next item or section."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if section is not None:
        start = lines.index(f".SH {section}")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH ")), len(lines))
        lines = lines[start:end]
    found, header, body = {}, None, []
    for i, line in enumerate(lines):
        if line.startswith((".TP", ".TQ", ".SH", ".SS")):
            if header is not None:
                found[header] = " ".join(body)
            header, body = None, []
            if line.startswith((".TP", ".TQ")) and i + 1 < len(lines):
                header = plain(lines[i + 1])
        elif header is not None and plain(line) != header:
            body.append(plain(line))
    if header is not None:
        found[header] = " ".join(body)
    return found


def names(header):
    """The words of a header: `.BR -l ", " --listen " ENDPOINT"` -> {"-l", "--listen", "ENDPOINT"}."""
    return set(re.split(r"[\s,|]+", re.sub(r"^\.\w+\s*", "", header)))


def page_text(path):
    with open(path, encoding="utf-8") as f:
        return "\n".join(plain(line) for line in f.read().splitlines())


class ManualPageOptions(unittest.TestCase):
    def check_page(self, program, page, command=(), section=None):
        items = entries(PAGES[page], section)
        for option in help_options(program, *command):
            with self.subTest(option=option.name):
                spelled = f"--{option.name}"
                headers = [h for h in items if spelled in names(h)]
                self.assertTrue(headers, f"{page} has no entry for {spelled}, which `{os.path.basename(program)} "
                                         f"--help` lists ({option.help.strip()})")
                header = headers[0]
                if option.short:
                    self.assertIn(f"-{option.short}", names(header), f"{page}: {spelled}'s entry lacks -{option.short}")
                if "default" in option.help.lower():
                    self.assertIn("default", items[header].lower(),
                                  f"{page}: {spelled}'s entry gives no default (--help: {option.help.strip()})")

    def test_every_server_option_is_in_hello_server_8(self):
        self.check_page(SERVER, "hello-server.8")

    def test_every_client_option_is_in_hello_client_1(self):
        self.check_page(CLIENT, "hello-client.1")

    def test_every_bench_option_is_in_hello_client_1s_bench_section(self):
        self.check_page(CLIENT, "hello-client.1", ("bench",), "BENCH")

    def test_every_server_setting_is_in_hello_server_conf_5_and_has_its_variable(self):
        settings = [o for o in help_options(SERVER) if o.section.startswith("Settings")]
        self.assertGreater(len(settings), 5, "no settings section found in hello-server --help")
        conf_items = entries(PAGES["hello-server.conf.5"])
        server_text = page_text(PAGES["hello-server.8"])
        environment = server_text[server_text.index(".SH ENVIRONMENT"):server_text.index(".SH SIGNALS")]
        for option in settings:
            with self.subTest(setting=option.name):
                self.assertTrue([h for h in conf_items if option.name in names(h) and "=" in names(h)],
                                f"hello-server.conf.5 has no `{option.name} = ...` entry")
                variable = "HELLO_" + option.name.upper().replace("-", "_")
                self.assertRegex(environment, rf"\b{variable}\b", f"hello-server.8's ENVIRONMENT lacks {variable}")
        self.assertRegex(environment, r"\bHELLO_CONFIG\b")

    def test_pages_name_the_programs_version(self):
        version = subprocess.run([SERVER, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
        for page, path in PAGES.items():
            with open(path, encoding="utf-8") as f:
                th = next(line for line in f if line.startswith(".TH "))
            self.assertIn(f"uds-hello {version}", th, f"{page}'s .TH line names another version: {th}")


class ManualPagesRender(unittest.TestCase):
    @unittest.skipUnless(shutil.which("man"), "man (man-db) is not installed")
    def test_man_warns_about_nothing(self):
        for page, path in PAGES.items():
            with self.subTest(page=page):
                env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
                done = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True, env=env,
                                      timeout=60)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual(done.stderr, "", f"man --warnings -l {page}")
                self.assertIn("EXIT STATUS" if page != "hello-server.conf.5" else "SETTINGS", done.stdout)


if __name__ == "__main__":
    unittest.main()

"""The options a program's --help lists, parsed generically from Boost.Program_options'
layout, so that the tests built on it catch every option added later without being told."""
import re
import subprocess

# An option line: two blanks, then "-x [ --name ]" or "--name", then the value's name and the
# help text. Continuation lines are indented further (and may start with "--" themselves).
_OPTION = re.compile(r"^  (?:-(?P<short>\w) \[ --(?P<long1>[\w-]+) \]|--(?P<long2>[\w-]+))(?P<rest>.*)$")
_SECTION = re.compile(r"^(?P<title>\S.*):$")


class Option:
    def __init__(self, name, short, section):
        self.name = name  # without the dashes
        self.short = short  # one letter, or None
        self.section = section  # the heading it is listed under ("Settings (also HELLO_...)")
        self.help = ""

    def __repr__(self):
        return f"--{self.name}"


def help_options(program, *command):
    """[Option] for `program [command...] --help`, in the order listed."""
    out = subprocess.run([program, *command, "--help"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    options, section, current = [], "", None
    for line in out.splitlines():
        m = _OPTION.match(line)
        if m:
            current = Option(m["long1"] or m["long2"], m["short"], section)
            current.help = m["rest"]
            options.append(current)
        elif _SECTION.match(line):
            section, current = line, None
        elif current and line.startswith("   "):
            current.help += " " + line.strip()
        else:
            current = None
    if not options:
        raise AssertionError(f"{program} --help lists no option:\n{out}")
    return options

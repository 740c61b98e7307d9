"""Build time: the man page dropsonde(1) and the bash and zsh completion files,
generated from the command line's own definition (the click tree Typer builds
from dropsonde.cli), so they list exactly the commands and options the
packaged program has.

    python3 packaging/cli_docs.py OUTDIR DATE
writes OUTDIR/dropsonde.1, OUTDIR/dropsonde.bash and OUTDIR/_dropsonde.
Needs dropsonde and its dependencies importable (the build puts them on
PYTHONPATH). DATE (YYYY-MM-DD) goes into the page's header, so a rebuild of
the same release gives the same bytes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import typer.main

from dropsonde import __version__
from dropsonde.cli import app

# Options whose value is a path: completed with file names.
PATH_OPTIONS = {"--cachepath", "--confdir", "--codedir", "--vardir", "--puppetserver-confd", "--from-file",
                "--filename", "--db", "--out"}


@dataclass
class Option:
    names: List[str]
    help: str
    takes_value: bool
    metavar: str
    choices: List[str] = field(default_factory=list)


@dataclass
class Command:
    path: str  # "" for the top level, "dev inventory" for a subcommand
    help: str
    options: List[Option]
    arguments: List[Tuple[str, str]]
    children: Dict[str, "Command"]


def _option(param) -> Optional[Option]:
    if not param.opts or not param.opts[0].startswith("-"):
        return None
    names = list(param.opts) + list(getattr(param, "secondary_opts", []) or [])
    names = [n for n in names if n.startswith("-")]
    takes_value = not getattr(param, "is_flag", False)
    choices = ["human", "json"] if "--format" in names else []
    if not takes_value:
        metavar = ""
    elif set(names) & PATH_OPTIONS:
        metavar = "PATH"
    elif param.type.name.startswith("int"):
        metavar = "N"
    else:
        metavar = "FORMAT" if choices else "VALUE"
    return Option(sorted(names, key=lambda n: len(n) > 2), param.help or "", takes_value, metavar, choices)


def _walk(command, path: str) -> Command:
    options = [o for o in (_option(p) for p in command.params) if o is not None]
    options.append(Option(["--help"], "Show the help of this command and exit.", False, ""))
    arguments = [(p.name.upper(), getattr(p, "help", "") or "") for p in command.params
                 if not (p.opts and p.opts[0].startswith("-"))]
    children = {}
    for name, child in sorted(getattr(command, "commands", {}).items()):
        if not getattr(child, "hidden", False):
            children[name] = _walk(child, f"{path} {name}".strip())
    help_text = (command.help or "").strip()
    return Command(path, help_text, options, arguments, children)


def command_tree() -> Command:
    """The whole command line, as built for `dropsonde` itself."""
    return _walk(typer.main.get_command(app), "")


def _all(command: Command) -> List[Command]:
    found = [command]
    for child in command.children.values():
        found.extend(_all(child))
    return found


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.splitlines())


def _option_lines(options: List[Option]) -> List[str]:
    lines = []
    for option in options:
        names = ", ".join(f"\\fB{_roff(name)}\\fR" for name in option.names)
        value = f" \\fI{option.metavar}\\fR" if option.takes_value else ""
        lines += [".TP", names + value, _roff(option.help)]
    return lines


def man_page(tree: Command, date: str) -> str:
    lines = [
        f'.TH DROPSONDE 1 "{date}" "dropsonde {__version__}" "User Commands"',
        ".SH NAME",
        "dropsonde \\- " + _roff(tree.help.split(":")[0].rstrip(".")),
        ".SH SYNOPSIS",
        ".B dropsonde",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".br",
        ".B puppetserver dropsonde",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _roff(tree.help),
        ".PP",
        "Run as \\fBpuppetserver dropsonde\\fR, Puppet's directories come from Puppet Server's conf.d and the "
        "program runs as the user Puppet Server runs as. Nothing is sent on a schedule unless Puppet Server's "
        "conf.d has \\fBdropsonde { enabled: true }\\fR.",
        ".SH GLOBAL OPTIONS",
        *_option_lines(tree.options),
        ".SH COMMANDS",
    ]
    for command in _all(tree)[1:]:
        usage = " [\\fIOPTIONS\\fR]" + "".join(f" \\fI{name}\\fR" for name, _ in command.arguments)
        if command.children:
            usage = " \\fICOMMAND\\fR" + usage
        lines += [f'.SS "dropsonde {command.path}"', f".B dropsonde {command.path}", usage.strip(), ".PP",
                  _roff(command.help)]
        options = [o for o in command.options if o.names != ["--help"]]
        if options:
            lines += _option_lines(options)
    lines += [
        ".SH FILES",
        ".TP", "\\fI/etc/puppetlabs/telemetry.yaml\\fR, \\fI/etc/telemetry.yaml\\fR",
        "Defaults for the global and command options (beside Puppet's confdir).",
        ".TP", "\\fI<server\\-var\\-dir>/dropsonde/\\fR",
        "The Forge module cache, the parse cache and the record of the last submission.",
        ".SH SEE ALSO",
        "\\fBpuppetserver\\fR(8), /usr/share/doc/dropsonde/README.md",
    ]
    return "\n".join(lines) + "\n"


def _word_list(words: List[str]) -> str:
    return " ".join(words)


def bash_completion(tree: Command) -> str:
    """A static completion: the command path typed so far picks the candidates."""
    value_options = sorted({n for c in _all(tree) for o in c.options if o.takes_value for n in o.names})
    path_options = sorted(n for n in value_options if n in PATH_OPTIONS)
    cases = []
    for command in _all(tree):
        words = list(command.children) + [n for o in command.options for n in o.names]
        cases.append(f'        "{command.path}") words="{_word_list(words)}" ;;')
    return "\n".join([
        "# bash completion for dropsonde, generated from its command line at build time",
        "_dropsonde() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    local path='' word i words",
        f"    local takes_value=' {_word_list(value_options)} '",
        f"    case \" {_word_list(path_options)} \" in *\" $prev \"*) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac",
        "    case $prev in --format|-f) COMPREPLY=($(compgen -W 'human json' -- \"$cur\")); return ;; esac",
        "    case $takes_value in *\" $prev \"*) COMPREPLY=(); return ;; esac",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]}",
        "        case $word in",
        "            -*) case $takes_value in *\" $word \"*) ((i++)) ;; esac ;;",
        "            *) path=${path:+$path }$word ;;",
        "        esac",
        "    done",
        "    case $path in",
        *cases,
        "        *) words='' ;;",
        "    esac",
        "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))",
        "}",
        "complete -F _dropsonde dropsonde",
        "",
    ])


def _zsh_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]")


def _zsh_option_specs(command: Command) -> List[str]:
    specs = []
    for option in command.options:
        action = ""
        if option.takes_value:
            if option.choices:
                action = f":{option.metavar.lower()}:({' '.join(option.choices)})"
            elif option.names[-1] in PATH_OPTIONS or option.names[0] in PATH_OPTIONS:
                action = f":{option.metavar.lower()}:_files"
            else:
                action = f":{option.metavar.lower()}: "
        help_text = _zsh_escape(option.help.split(". ")[0])
        names = option.names
        exclusive = f"({' '.join(names)})" if len(names) > 1 else ""
        name_part = f"{{{','.join(names)}}}" if len(names) > 1 else names[0]
        spec = f"'{exclusive}'{name_part}'[{help_text}]{action}'"
        specs.append(spec)
    return specs


def zsh_completion(tree: Command) -> str:
    """One function per command: its options, then its subcommands or nothing."""
    lines = ["#compdef dropsonde", "# zsh completion for dropsonde, generated from its command line at build time", ""]
    for command in _all(tree):
        name = "_dropsonde" + "".join(f"_{part.replace('-', '_')}" for part in command.path.split())
        lines.append(f"{name}() {{")
        specs = _zsh_option_specs(command)
        if command.children:
            lines.append("    local curcontext=$curcontext state line")
            lines.append("    _arguments -C \\")
            lines += [f"        {spec} \\" for spec in specs]
            lines.append("        '1: :->command' '*:: :->argument'")
            lines.append("    case $state in")
            lines.append("    command)")
            described = " ".join(f"'{child}:{_zsh_escape(sub.help.splitlines()[0] if sub.help else '')}'"
                                 for child, sub in command.children.items())
            lines.append(f"        local -a commands=({described})")
            lines.append("        _describe command commands ;;")
            lines.append("    argument)")
            lines.append("        case $line[1] in")
            for child in command.children:
                lines.append(f"        {child}) {name}_{child.replace('-', '_')} ;;")
            lines.append("        esac ;;")
            lines.append("    esac")
        else:
            args = " ".join(f"'{i + 1}:{arg.lower()}:_files'" for i, (arg, _) in enumerate(command.arguments))
            lines.append("    _arguments \\")
            lines += [f"        {spec} \\" for spec in specs]
            lines.append(f"        {args}" if args else "        ''")
        lines.append("}")
        lines.append("")
    lines.append('_dropsonde "$@"')
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> None:
    outdir, date = Path(argv[1]), argv[2]
    tree = command_tree()
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "dropsonde.1").write_text(man_page(tree, date), encoding="utf-8")
    (outdir / "dropsonde.bash").write_text(bash_completion(tree), encoding="utf-8")
    (outdir / "_dropsonde").write_text(zsh_completion(tree), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)

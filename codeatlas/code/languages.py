"""Which language a file is in (extension, name, shebang) and whether it is text at all.

Split out of :mod:`codeatlas.code.parsing`, which re-exports :func:`detect_language` and
:func:`is_binary`; pure functions, no I/O.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------ language detection

_EXTENSIONS: dict[str, str] = {
    "py": "python", "pyi": "python", "pyw": "python",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "mts": "typescript", "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "java": "java",
    "rs": "rust",
    "c": "c", "h": "c",
    "cpp": "cpp", "cc": "cpp", "cxx": "cpp", "c++": "cpp",
    "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "h++": "cpp", "ipp": "cpp", "tpp": "cpp",
    "rb": "ruby", "rake": "ruby", "gemspec": "ruby",
    "php": "php",
    "cs": "csharp",
    "kt": "kotlin", "kts": "kotlin",
    "swift": "swift",
    "scala": "scala", "sc": "scala",
    "sh": "bash", "bash": "bash", "zsh": "bash", "ksh": "bash",
    "pl": "perl", "pm": "perl",
    "lua": "lua",
    "r": "r",
    "dart": "dart",
    "ex": "elixir", "exs": "elixir",
    "erl": "erlang", "hrl": "erlang",
    "hs": "haskell",
    "ml": "ocaml", "mli": "ocaml",
    "clj": "clojure", "cljs": "clojure",
    "vue": "vue", "svelte": "svelte",
    "proto": "proto",
    "md": "markdown", "markdown": "markdown", "rst": "rst",
    "json": "json", "jsonc": "json",
    "yaml": "yaml", "yml": "yaml",
    "toml": "toml",
    "ini": "ini", "cfg": "ini",
    "xml": "xml",
    "sql": "sql",
    "html": "html", "htm": "html",
    "css": "css", "scss": "scss",
    "tf": "hcl", "hcl": "hcl",
}  # fmt: skip

_FILENAMES: dict[str, str] = {
    "dockerfile": "dockerfile",
    "makefile": "make",
    "gnumakefile": "make",
    "cmakelists.txt": "cmake",
    "gemfile": "ruby",
    "rakefile": "ruby",
    "vagrantfile": "ruby",
    "jenkinsfile": "groovy",
}

# Interpreter (version suffix stripped) -> language, for extension-less scripts.
_INTERPRETERS: dict[str, str] = {
    "python": "python", "pypy": "python",
    "node": "javascript", "nodejs": "javascript", "bun": "javascript",
    "deno": "typescript", "ts-node": "typescript", "tsx": "typescript",
    "bash": "bash", "sh": "bash", "dash": "bash", "zsh": "bash", "ksh": "bash", "ash": "bash",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "rscript": "r",
}  # fmt: skip

_INTERPRETER_VERSION = re.compile(r"[\d.]+$")
# `.h` is shared by C and C++; these constructs cannot appear in a C header, so seeing
# one early is a cheap and reliable signal to use the C++ grammar instead.
_CPP_HEADER_HINT = re.compile(
    rb"^\s*(?:namespace\b|template\s*<|class\s+\w+[^;]*[{:]|(?:public|private|protected)\s*:"
    rb"|using\s+namespace\b|#include\s*<[a-z_]+>\s*$)",
    re.MULTILINE,
)


def detect_language(path: str, head: bytes | None = None) -> str | None:
    """Guess the language of ``path`` from its extension, then from a shebang in ``head``.

    ``head`` is optional leading file content (a few hundred bytes suffice); it is also
    used to tell C++ headers from C headers. Returns a lowercase name or ``None``.
    """
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    if "." in lowered.lstrip("."):
        ext = lowered.rsplit(".", 1)[1]
        language = _EXTENSIONS.get(ext)
        if language is not None:
            if ext == "h" and head and _CPP_HEADER_HINT.search(head[:16384]):
                return "cpp"
            return language
    by_name = _FILENAMES.get(lowered)
    if by_name is not None:
        return by_name
    if head:
        return _language_from_shebang(head)
    return None


def _language_from_shebang(head: bytes) -> str | None:
    if not head.startswith(b"#!"):
        return None
    first_line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    tokens = first_line.split()
    if not tokens:
        return None
    program = tokens[0].rsplit("/", 1)[-1]
    if program == "env":
        # `env -S python3 -u` / `env FOO=1 node`: the interpreter is the first operand.
        operands = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]
        if not operands:
            return None
        program = operands[0].rsplit("/", 1)[-1]
    program = _INTERPRETER_VERSION.sub("", program.lower())
    return _INTERPRETERS.get(program)


# Bytes that plain text never contains: C0 controls except whitespace/backspace/escape,
# plus DEL. Deleting everything else with bytes.translate counts them at C speed.
_NON_TEXT = bytes([*range(0x00, 0x08), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_KEEP_NON_TEXT = bytes(b for b in range(256) if b not in _NON_TEXT)
_ASCII = bytes(range(0x80))


def is_binary(data: bytes) -> bool:
    """Heuristically decide whether ``data`` is binary (not worth indexing as text).

    Looks at the first 8 KiB only: any NUL byte, or more than 5 % control bytes, means
    binary. Invalid UTF-8 alone does not (Latin-1 source exists); it counts as binary
    only when most of the sample is non-ASCII.
    """
    sample = data[:8192]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    if len(sample.translate(None, _KEEP_NON_TEXT)) > len(sample) * 0.05:
        return True
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 8 KiB boundary is not evidence of binary.
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return False
    return len(sample.translate(None, _ASCII)) > len(sample) * 0.30

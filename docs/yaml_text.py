"""A small YAML emitter for the generated documents (docs/asyncapi.yaml, docs/openapi.yaml).

The product does not depend on a YAML library, and the documents must be byte-stable across library
releases, so they are written by this emitter: plain scalars where YAML reads them back unchanged,
JSON-quoted strings otherwise, literal blocks for multi-line text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$./-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED:
            return value
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _block(value: str) -> bool:
    """Whether a string is written as a literal block (`|-`)."""
    return (
        "\n" in value
        and not value.startswith((" ", "\n"))
        and not value.endswith("\n")
        and "\r" not in value
        and all(not line.endswith(" ") for line in value.splitlines())
    )


def _lines(value: object, indent: int) -> list[str]:
    """`value` (a non-empty dict or list) as YAML lines at `indent` levels of two spaces."""
    pad = "  " * indent
    out: list[str] = []
    items: list[tuple[str, object]]
    if isinstance(value, dict):
        items = [(f"{_scalar(str(key))}:", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [("-", item) for item in value]
    else:
        raise TypeError("only dicts and lists nest")
    for head, item in items:
        if isinstance(item, dict | list) and item:
            if head == "-":
                nested = _lines(item, indent + 1)
                if isinstance(item, dict):
                    out.append(pad + "- " + nested[0].lstrip(" "))
                    out.extend(nested[1:])
                else:
                    out.append(pad + "-")
                    out.extend(nested)
            else:
                out.append(pad + head)
                out.extend(_lines(item, indent + 1))
        elif isinstance(item, dict | list):
            out.append(f"{pad}{head} {'{}' if isinstance(item, dict) else '[]'}")
        elif isinstance(item, str) and _block(item):
            out.append(f"{pad}{head} |-")
            out.extend(("  " * (indent + 1) + line) if line else "" for line in item.split("\n"))
        else:
            out.append(f"{pad}{head} {_scalar(item)}")
    return out


def yaml_text(document: dict[str, Any]) -> str:
    """`document` (builtins) as YAML text ending in a newline."""
    return "\n".join(_lines(document, 0)) + "\n"


def generator_main(output: Path, render: Callable[[], str], module: str, argv: list[str] | None) -> int:
    """The command line of a document generator: write `output`, or with --check exit 1 when the
    committed file is not what `render` writes."""
    parser = argparse.ArgumentParser(description=f"Write {output.name} (python -m {module}).")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: run python -m {module}", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0

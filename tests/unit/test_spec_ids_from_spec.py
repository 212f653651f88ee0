"""Class and method ids come from the generated spec (``*spec.BasicPublish.IDS``), never as number
literals: a literal can name the wrong method and nothing would notice."""

from __future__ import annotations

import ast
from pathlib import Path

# This checkout's source, not whichever copy of lapine the interpreter would import.
SOURCE = Path(__file__).resolve().parents[2] / "src" / "lapine"
GENERATED = {SOURCE / "amqp" / "spec.py", SOURCE / "amqp" / "constants.py"}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_int(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def literal_ids(tree: ast.AST) -> list[int]:
    """Lines where an AMQP error is given number literals for its class and method, or a content
    header a literal class id (``encode_basic_header`` needs none)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node)
        if name.endswith("Error") and any(_is_int(arg) for arg in node.args[2:]):
            lines.append(node.lineno)
        if name == "encode_content_header" and node.args and _is_int(node.args[0]):
            lines.append(node.lineno)
    return lines


def test_the_check_finds_literal_ids() -> None:
    tree = ast.parse('raise ChannelError(406, "x", 60, 40)\nencode_content_header(60, 0, b"")\n')
    assert literal_ids(tree) == [1, 2]
    assert literal_ids(ast.parse('raise ChannelError(406, "x", *spec.BasicPublish.IDS)')) == []


def test_no_module_spells_class_or_method_ids_as_numbers() -> None:
    found = {
        f"{path.relative_to(SOURCE)}:{line}"
        for path in SOURCE.rglob("*.py")
        if path not in GENERATED
        for line in literal_ids(ast.parse(path.read_text(), str(path)))
    }
    assert not found, sorted(found)

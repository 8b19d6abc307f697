"""Parse-tree nodes of Go's text/template; ``str(node)`` prints them back as Go does.

Error messages quote a node (``executing "" at <service "x|y">``), so each node keeps its
position (a character offset in the template text) and Go's printed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Node:
    """Base node: ``pos`` is the offset of its first character in the template."""

    pos: int


@dataclass(eq=False)
class TextNode(Node):
    """Plain text between actions."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class CommentNode(Node):
    """A comment (kept only for printing)."""

    text: str

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(eq=False)
class ListNode(Node):
    """A sequence of nodes."""

    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(eq=False)
class DotNode(Node):
    """``.``"""

    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class NilNode(Node):
    """``nil``"""

    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class BoolNode(Node):
    """``true`` / ``false``"""

    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class NumberNode(Node):
    """A number constant with the interpretations it allows (as Go's parse.NumberNode)."""

    text: str
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    int_value: int = 0
    uint_value: int = 0
    float_value: float = 0.0

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class StringNode(Node):
    """A quoted string: ``quoted`` as written, ``text`` unquoted."""

    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class IdentifierNode(Node):
    """A function name."""

    ident: str

    def __str__(self) -> str:
        return self.ident


@dataclass(eq=False)
class FieldNode(Node):
    """``.A.B``"""

    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass(eq=False)
class VariableNode(Node):
    """``$x.A.B``: idents[0] is the variable name."""

    idents: list[str]

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass(eq=False)
class ChainNode(Node):
    """``(pipe).A.B`` or ``fn.A``: a term followed by fields."""

    node: Node
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        base = str(self.node)
        if isinstance(self.node, PipeNode):
            base = f"({base})"
        return base + "".join("." + f for f in self.fields)


@dataclass(eq=False)
class CommandNode(Node):
    """One command of a pipeline: a function or operand with arguments."""

    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(eq=False)
class PipeNode(Node):
    """``$x := a | b c``: declarations and commands."""

    line: int
    decl: list[VariableNode] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        text = ""
        if self.decl:
            text = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return text + " | ".join(str(c) for c in self.cmds)


@dataclass(eq=False)
class ActionNode(Node):
    """``{{pipeline}}``; ``fields`` is set for the common ``{{ .A.B }}`` (a fast path)."""

    line: int
    pipe: PipeNode
    fields: tuple[str, ...] | None = None
    variable: str | None = None  # set for ``{{ $x }}``

    def __post_init__(self) -> None:
        pipe = self.pipe
        if not pipe.decl and len(pipe.cmds) == 1 and len(pipe.cmds[0].args) == 1:
            arg = pipe.cmds[0].args[0]
            if type(arg) is FieldNode:
                self.fields = tuple(arg.idents)
            elif type(arg) is VariableNode and len(arg.idents) == 1:
                self.variable = arg.idents[0]

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(eq=False)
class BranchNode(Node):
    """Common shape of if, range and with."""

    line: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    keyword: str = ""

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            text += "{{else}}" + str(self.else_list)
        return text + "{{end}}"


class IfNode(BranchNode):
    """``{{if}}``"""


class RangeNode(BranchNode):
    """``{{range}}``"""


class WithNode(BranchNode):
    """``{{with}}``"""


@dataclass(eq=False)
class TemplateNode(Node):
    """``{{template "name" pipeline}}``"""

    line: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        from ctmpl.gotemplate.fmtvalue import quote

        if self.pipe is None:
            return "{{template " + quote(self.name) + "}}"
        return "{{template " + quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(eq=False)
class BreakNode(Node):
    """``{{break}}``"""

    line: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(eq=False)
class ContinueNode(Node):
    """``{{continue}}``"""

    line: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(eq=False)
class EndNode(Node):
    """``{{end}}`` (only during parsing)."""

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(eq=False)
class ElseNode(Node):
    """``{{else}}`` (only during parsing)."""

    line: int

    def __str__(self) -> str:
        return "{{else}}"


def is_empty_tree(node: Any) -> bool:
    """Go's IsEmptyTree: only white space text and (nested) empty lists."""
    if node is None:
        return True
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return not node.text.strip()
    return isinstance(node, CommentNode)

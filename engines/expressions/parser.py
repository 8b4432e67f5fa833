"""Parsing: expression text -> a Python ``ast`` tree that only holds the syntax we allow.

This module owns the size limits on text, the translation of Python's syntax errors (and of the
parser's own RecursionError/MemoryError on hostile input) into located ``ExpressionError``s, the
list of forbidden constructs, the nesting limit and the mapping of AST nodes to 0-based character
positions. It knows nothing about fields, functions or types (see ``checker``).
"""
from __future__ import annotations

import ast
from types import MappingProxyType

from .types import MAX_DEPTH, MAX_EXPONENT, MAX_LENGTH, MAX_LITERAL, ExpressionError

ALLOWED_BINOPS = MappingProxyType({ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**"})
# Left-associative operators of one precedence level form a flat chain (a + b - c) that counts as
# one level of nesting and is compiled without recursion.
FAMILY = MappingProxyType({ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul", ast.Mod: "mul", ast.Pow: "pow"})
REFUSED_BINOPS = MappingProxyType({
    ast.FloorDiv: "'//' is not supported: use ROUND(a / b) / 不支持 '//'，请用 ROUND(a / b)",
    ast.MatMult: "'@' is not supported / 不支持 '@'",
    ast.BitAnd: "'&' is not supported: use 'and' / 不支持 '&'，请用 and",
    ast.BitOr: "'|' is not supported: use 'or' / 不支持 '|'，请用 or",
    ast.BitXor: "'^' is not supported: use '**' for powers / 不支持 '^'，乘方请用 '**'",
    ast.LShift: "'<<' is not supported / 不支持 '<<'",
    ast.RShift: "'>>' is not supported / 不支持 '>>'",
})
FORBIDDEN = MappingProxyType({
    ast.Lambda: "lambda", ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
    ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "':=' (assignment)", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.Subscript: "indexing or slicing (x[...])", ast.Slice: "a slice", ast.Starred: "'*' unpacking",
    ast.Dict: "a dict literal", ast.Set: "a set literal", ast.Tuple: "a tuple (write a list: [a, b])",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
})


class Source:
    """Maps (lineno, byte col_offset) of AST nodes back to 0-based character offsets in the text."""

    def __init__(self, text: str, offset: int, parsed: str):
        self.text = text
        self.offset = offset
        self.lines = parsed.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.ascii = parsed.isascii()

    def char_col(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        if self.ascii:
            return col
        return len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def pos(self, node: ast.AST) -> int:
        lineno = getattr(node, "lineno", 1)
        return self.offset + self.starts[lineno - 1] + self.char_col(lineno, getattr(node, "col_offset", 0))

    def error(self, message: str, node: ast.AST | None) -> ExpressionError:
        return ExpressionError(message, None if node is None else self.pos(node), self.text)


def parse(text: object) -> tuple[ast.expr, Source]:
    """Parse ``text`` into an AST holding only allowed syntax, or raise ``ExpressionError``."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__} / 表达式必须是文本",
                              None, None)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters, at most {MAX_LENGTH}) / "
            f"表达式过长（{len(text)} 个字符，最多 {MAX_LENGTH} 个）", MAX_LENGTH, text)
    body = text.lstrip()
    if not body.strip():
        raise ExpressionError("expression is empty / 表达式为空", 0, text)
    offset = len(text) - len(body)
    src = Source(text, offset, body)
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, src) from None
    except (RecursionError, MemoryError, OverflowError, ValueError) as exc:
        # CPython's parser gives up on deeply nested input with these rather than SyntaxError.
        raise ExpressionError(f"expression is too deeply nested or too complex / 表达式嵌套过深或过于复杂"
                              f" ({type(exc).__name__})", offset, text) from None
    _check_shape(tree.body, src)
    return tree.body, src


def _syntax_error(exc: SyntaxError, src: Source) -> ExpressionError:
    msg = (exc.msg or "invalid syntax").strip()
    if "null bytes" in msg:
        return ExpressionError("expression contains a NUL character / 表达式包含空字符", None, src.text)
    lineno = exc.lineno if exc.lineno and 1 <= exc.lineno <= len(src.lines) else len(src.lines)
    line = src.lines[lineno - 1]
    col = exc.offset - 1 if exc.offset and exc.offset >= 1 else len(line)   # 0 = "at the end"
    pos = src.offset + src.starts[lineno - 1] + min(col, len(line))
    return ExpressionError(f"syntax error: {msg} / 语法错误", min(pos, len(src.text)), src.text)


def _check_shape(root: ast.expr, src: Source) -> None:
    """Refuse forbidden syntax and too deep nesting, iteratively (the tree may be very deep)."""
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH and not isinstance(node, (ast.Constant, ast.Name)):   # leaves do not nest
            raise src.error(f"expression is nested too deeply (more than {MAX_DEPTH} levels) / "
                            f"表达式嵌套超过 {MAX_DEPTH} 层", node)
        children = _check_node(node, src)
        for child in reversed(children):
            same_chain = (isinstance(node, ast.BinOp) and child is node.left and isinstance(child, ast.BinOp)
                          and FAMILY.get(type(child.op)) == FAMILY.get(type(node.op)))
            stack.append((child, depth if same_chain else depth + 1))


def _check_node(node: ast.AST, src: Source) -> list[ast.expr]:
    """Check one node; return its sub-expressions in source order."""
    if isinstance(node, ast.Constant):
        _check_constant(node, src)
        return []
    if isinstance(node, ast.Name):
        if node.id.startswith("__"):
            raise src.error(f"'{node.id}': names starting with '__' are not allowed / 不允许以 '__' 开头的名称", node)
        return []
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            raise src.error(f"'.{node.attr}': private attributes are not allowed / 不允许访问私有属性", node)
        if not isinstance(node.value, (ast.Name, ast.Attribute)):
            raise src.error("'.' is only allowed to follow a lookup field, as in customer.industry / "
                            "'.' 只能用于关联字段，例如 customer.industry", node)
        return [node.value]
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op not in ALLOWED_BINOPS:
            raise src.error(REFUSED_BINOPS.get(op, "operator not supported / 不支持的运算符"), node)
        if op is ast.Pow and isinstance(node.right, ast.Constant) and _is_number(node.right.value) \
                and abs(node.right.value) > MAX_EXPONENT:
            raise src.error(f"exponent {node.right.value} is too large (at most {MAX_EXPONENT}) / "
                            f"指数过大（最多 {MAX_EXPONENT}）", node.right)
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Invert):
            raise src.error("'~' is not supported: use 'not' / 不支持 '~'，请用 not", node)
        return [node.operand]
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if isinstance(op, (ast.Is, ast.IsNot)):
                raise src.error("'is' is not supported: use == / != or ISBLANK(x) / "
                                "不支持 'is'，请用 == / != 或 ISBLANK(x)", node)
        return [node.left, *node.comparators]
    if isinstance(node, ast.IfExp):
        return [node.test, node.body, node.orelse]
    if isinstance(node, ast.List):
        return list(node.elts)
    if isinstance(node, ast.Call):
        return _check_call(node, src)
    what = FORBIDDEN.get(type(node), type(node).__name__)
    raise src.error(f"{what} is not allowed in an expression / 表达式中不允许使用 {what}", node)


def _check_call(node: ast.Call, src: Source) -> list[ast.expr]:
    if not isinstance(node.func, ast.Name):
        raise src.error("only library functions can be called, as in LEN(name) / "
                        "只能调用函数库中的函数，例如 LEN(name)", node)
    if node.keywords:
        raise src.error("keyword arguments are not supported / 不支持关键字参数", node.keywords[0])
    return [node.func, *node.args]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_constant(node: ast.Constant, src: Source) -> None:
    value = node.value
    if isinstance(value, str) and "\x00" in value:      # '\x00' or '\0': no database text holds NUL
        raise src.error("text may not hold NUL (\\x00) / 文本中不能含有 NUL 字符", node)
    if value is None or isinstance(value, (bool, str)):
        return
    if _is_number(value):
        if abs(value) > MAX_LITERAL:
            raise src.error(f"number {value!r} is too large (at most 1e15) / 数字过大（最多 1e15）", node)
        return
    kind = {bytes: "a bytes literal", complex: "a complex number"}.get(type(value), repr(value))
    raise src.error(f"{kind} is not allowed in an expression / 表达式中不允许使用 {kind}", node)

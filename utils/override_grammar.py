"""Hydra's override grammar (as hydra-core 1.3 reads a command line), without Hydra.

    KEY=VALUE   +KEY=VALUE   ++KEY=VALUE   ~KEY   ~KEY=VALUE
    VALUE: 0.1  true  null  text  'quoted, text'  [1, 2]  {lr: 0.1}  {lr:0.1}
           a,b,c  choice(a,b)  range(1,4[,step])  interval(0.1,1)  sort(...)  shuffle(...)
           int(...)  float(...)  str(...)  bool(...)  tag(log, interval(a,b))
    escapes outside quotes: \\, \\( \\) \\[ \\] \\{ \\} \\: \\= \\, and a backslash-space

parse_override_text() reads one item into (op, key, value): the value a plain Python value,
or a Sweep (Choice, Range, Interval) for -m. Characters the grammar does not allow in an
unquoted value (`#`, `~`, `;`, non-ASCII letters, ...) are an error suggesting quotes, as in
Hydra; what Hydra accepts but this project does not do (config groups `a/b=x`, `@package`,
`glob(...)`) is one line naming it. tests/test_hydra_parity.py compares this module
with Hydra's own parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from utils.config_limits import MAX_DEPTH, depth_error, read_int
from utils.override_sweeps import Choice, GrammarError, Interval, Range, call

# ---------------------------------------------------------------- tokens

_INTU = r"(?:0|[1-9](?:_?[0-9])*)"
_DIGITS = r"[0-9](?:_?[0-9])*"
_POINT = rf"(?:{_INTU}?\.{_DIGITS}|{_INTU}\.)"
_TOKENS: list[tuple[str, re.Pattern]] = [(name, re.compile(rx)) for name, rx in (
    ("POPEN", r"[ \t]*\([ \t]*"), ("COMMA", r"[ \t]*,[ \t]*"), ("PCLOSE", r"[ \t]*\)"),
    ("BOPEN", r"\[[ \t]*"), ("BCLOSE", r"[ \t]*\]"),
    ("DOPEN", r"\{[ \t]*"), ("DCLOSE", r"[ \t]*\}"),
    ("COLON", r"[ \t]*:[ \t]*"), ("EQUAL", r"[ \t]*=[ \t]*"),
    ("FLOAT", rf"[+-]?(?:{_INTU}?\.{_DIGITS}[eE][+-]?{_DIGITS}|{_INTU}\.?[eE][+-]?{_DIGITS}"
              rf"|{_POINT}|[Ii][Nn][Ff]|[Nn][Aa][Nn])"),
    ("INT", rf"[+-]?{_INTU}"), ("BOOL", r"(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])"),
    ("NULL", r"[Nn][Uu][Ll][Ll]"), ("CHAR", r"[/\-\\+.$%*@?|]"),
    ("ID", r"[a-zA-Z_][a-zA-Z0-9_\-]*"), ("ESC", r"(?:\\\\|\\[()\[\]{}:=, \t])+"),
    ("WS", r"[ \t]+"), ("INTER", r"\$\{[^}]+\}"))]
_PRIMITIVE = {"ID", "NULL", "INT", "FLOAT", "BOOL", "INTER", "CHAR", "COLON", "ESC", "WS"}
_DICT_KEY = _PRIMITIVE - {"INTER", "COLON"}
_SHOWN = {"POPEN": "(", "COMMA": ",", "PCLOSE": ")", "BOPEN": "[", "BCLOSE": "]",
          "DOPEN": "{", "DCLOSE": "}", "COLON": ":", "EQUAL": "=", "END": "the end"}


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def _quoted_end(text: str, pos: int) -> int:
    """The end of the quoted string starting at text[pos], or -1: the first matching quote
    not escaped by an odd number of backslashes."""
    quote, i = text[pos], pos + 1
    while i < len(text):
        if text[i] == quote:
            run = len(text[pos + 1:i]) - len(text[pos + 1:i].rstrip("\\"))
            if run % 2 == 0:
                return i + 1
        i += 1
    return -1


def _unquote(token: str) -> str:
    """'x\\'y' -> x'y: backslashes before a quote of the kind used are halved (a trailing
    run too); every other backslash stays."""
    quote, body = token[0], token[1:-1]
    return re.sub(rf"(\\+)({re.escape(quote)}|$)",
                  lambda m: m.group(1)[:len(m.group(1)) // 2] + m.group(2), body)


def _tokens(text: str) -> list[_Token]:
    """Hydra's value lexer: the longest match wins, the first rule on a tie."""
    out, pos = [], 0
    while pos < len(text):
        if text[pos] in "'\"":
            end = _quoted_end(text, pos)
            if end < 0:
                raise GrammarError(f"unclosed quote {text[pos]} at '{text[pos:][:20]}'")
            out.append(_Token("QUOTED", text[pos:end], pos))
            pos = end
            continue
        best: tuple[int, str] = (0, "")
        for kind, rx in _TOKENS:
            m = rx.match(text, pos)
            if m and m.end() - pos > best[0]:
                best = (m.end() - pos, kind)
        if not best[0]:
            ch = text[pos]
            raise GrammarError(f"{ch!r} cannot appear in an unquoted value (Hydra's override "
                               f"grammar; ' #' starts no comment here); quote the value, "
                               f"e.g. KEY='...'")
        out.append(_Token(best[1], text[pos:pos + best[0]], pos))
        pos += best[0]
    out.append(_Token("END", "", len(text)))
    return out


# ---------------------------------------------------------------- values


class _Parser:
    """Recursive descent over the tokens of one value (nesting bounded by MAX_DEPTH)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self, kind: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(f"expected '{_SHOWN.get(kind, kind)}'")
        self.i += 1
        return token

    def fail(self, what: str) -> None:
        token = self.peek()
        at = "the end" if token.kind == "END" else f"'{self.text[token.pos:][:20]}'"
        raise GrammarError(f"cannot read the value at {at}: {what}")

    def value(self) -> Any:
        if self.peek().kind == "END":
            return ""
        items = [self.element()]
        while self.peek().kind == "COMMA":
            self.i += 1
            items.append(self.element())
        if self.peek().kind != "END":
            self.fail("expected ',' or the end of the value")
        if len(items) == 1:
            return items[0]
        if any(isinstance(v, Choice | Range | Interval) for v in items):
            raise GrammarError("a sweep (choice / range / interval) cannot be one value of a,b,..."
                               "; write one sweep per key")
        return Choice(items, simple=True)

    def element(self) -> Any:
        token = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise depth_error("")
        try:
            if token.kind == "ID" and self.peek(1).kind == "POPEN":
                return self.function()
            if token.kind in ("BOPEN", "DOPEN"):
                return self.container(token.kind)
            if token.kind == "QUOTED":
                self.i += 1
                return _unquote(token.text)
            return self.primitive(_PRIMITIVE)
        finally:
            self.depth -= 1

    def container(self, kind: str) -> list | dict:
        self.i += 1
        close = "BCLOSE" if kind == "BOPEN" else "DCLOSE"
        items: list = []
        if self.peek().kind != close:
            while True:
                if kind == "BOPEN":
                    items.append(self.element())
                else:
                    key = self.primitive(_DICT_KEY)
                    self.take("COLON")
                    items.append((key, self.element()))
                if self.peek().kind != "COMMA":
                    break
                self.i += 1
        self.take(close)
        if any(isinstance(v, Choice | Range | Interval)
               for v in (items if kind == "BOPEN" else [v for _, v in items])):
            raise GrammarError("a sweep (a,b / choice / range / interval) inside a list or "
                               "mapping is not supported; sweep the whole value")
        return items if kind == "BOPEN" else dict(items)

    def primitive(self, kinds: set[str]) -> Any:
        start = self.i
        while self.peek().kind in kinds:
            self.i += 1
        parts = self.tokens[start:self.i]
        if parts and parts[0].kind == "WS":
            parts = parts[1:]
        if parts and parts[-1].kind == "WS":
            parts = parts[:-1]
        if not parts:
            self.fail("expected a value")
        if len(parts) > 1:
            return "".join(t.text[1::2] if t.kind == "ESC" else t.text for t in parts)
        token = parts[0]
        kind, text = token.kind, token.text
        if kind == "INT":
            return read_int(text.replace("_", ""))
        if kind == "FLOAT":
            return float(text)
        if kind == "BOOL":
            return text.lower() == "true"
        if kind == "NULL":
            return None
        return text[1::2] if kind == "ESC" else text

    def function(self) -> Any:
        name = self.take("ID").text
        self.take("POPEN")
        args: list = []
        kwargs: dict[str, Any] = {}
        if self.peek().kind != "PCLOSE":
            while True:
                if self.peek().kind == "ID" and self.peek(1).kind == "EQUAL":
                    arg = self.take("ID").text
                    self.i += 1
                    kwargs[arg] = self.element()
                elif kwargs:
                    self.fail(f"{name}(...): a positional argument after a keyword one")
                else:
                    args.append(self.element())
                if self.peek().kind != "COMMA":
                    break
                self.i += 1
        self.take("PCLOSE")
        return call(name, args, kwargs)


def parse_value_text(text: str) -> Any:
    """One override's value (after '='): a plain value, or a Choice/Range/Interval."""
    return _Parser(text.lstrip(" \t")).value()


# ---------------------------------------------------------------- KEY=VALUE

_KEY_PART = r"(?:[A-Za-z_$][A-Za-z0-9_\-$]*|0|[1-9](?:_?[0-9])*)"
_KEY = re.compile(rf"[A-Za-z_$][A-Za-z0-9_\-$]*|{_KEY_PART}(?:\.{_KEY_PART})+")


def split_item(item: str) -> tuple[str, str, str | None]:
    """'++a.b=3' -> ('++', 'a.b', '3'); the value None for a bare ~KEY. Keys as Hydra spells
    them; config groups and @package are one line naming them."""
    op = next((p for p in ("++", "+", "~") if item.startswith(p)), "=")
    body = item if op == "=" else item[len(op):]
    key, sep, text = body.partition("=")
    if "@" in key:
        raise GrammarError("Hydra's KEY@PACKAGE is not supported (this project has no config "
                           "groups to place); set the key itself")
    if "/" in key and _KEY.fullmatch(key.replace("/", ".")):
        raise GrammarError(f"'{key}' is a Hydra config group; this project has no config "
                           f"groups: name a config file with -c, or set keys with dots "
                           f"({key.replace('/', '.')}=...)")
    if (not sep and op != "~") or not _KEY.fullmatch(key):
        raise GrammarError("expected KEY.PATH=VALUE, +KEY.PATH=VALUE (add), ++KEY.PATH=VALUE "
                           "(add or override) or ~KEY.PATH (delete)")
    return op, key, text if sep else None

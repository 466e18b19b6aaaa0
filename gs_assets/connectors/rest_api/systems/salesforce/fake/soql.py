"""The SOQL subset the fake understands, parsed and checked as Salesforce does.

SELECT f1, f2 FROM T [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]
where cond combines comparisons (=, !=, <>, <, <=, >, >=, LIKE, IN, NOT IN) with AND / OR / NOT and
parentheses. As in SOQL, AND and OR cannot be mixed at one level without parentheses. Literals:
'strings' (backslash escapes), numbers, TRUE/FALSE, NULL, dates (2026-11-30) and datetimes
(2026-11-30T12:00:00Z, 2026-11-30T12:00:00.000+0000, +00:00). Field and object names are matched
case-insensitively and answered with their API spelling. Errors carry Salesforce's error codes
(MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE) and its message layout (the query, a caret, the
row and column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Optional

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)

KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
            "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "GROUP", "HAVING", "TYPEOF", "WITH",
            "FOR", "USING", "INCLUDES", "EXCLUDES"}
NUMERIC_TYPES = {"double", "currency", "int", "percent", "long"}
TEXT_TYPES = {"string", "textarea", "picklist", "multipicklist", "email", "url", "phone", "combobox",
              "encryptedstring"}
ID_TYPES = {"id", "reference"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\",
            "_": "\\_", "%": "\\%"}


class SoqlError(Exception):
    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass
class Tok:
    kind: str
    text: str
    pos: int          # 0-based offset in the query

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass
class Literal:
    kind: str         # string, number, date, datetime, boolean, null
    value: Any
    tok: Tok


@dataclass
class Cmp:
    field: str
    op: str           # = != < <= > >= LIKE IN NOTIN
    values: list[Literal]
    tok: Tok


@dataclass
class BoolOp:
    op: str           # AND, OR, NOT
    parts: list


@dataclass
class OrderKey:
    field: str
    desc: bool = False
    nulls_last: Optional[bool] = None   # None: Salesforce's default (ASC -> NULLS FIRST, DESC -> NULLS LAST)
    tok: Optional[Tok] = None


@dataclass
class Query:
    text: str
    fields: list[str]
    field_toks: list[Tok]
    sobject: str
    sobject_tok: Tok
    where: Optional[object] = None
    order: list[OrderKey] = field(default_factory=list)
    limit: Optional[int] = None
    offset: Optional[int] = None
    clauses: set[str] = field(default_factory=set)   # ORDER BY, LIMIT, OFFSET present
    count: bool = False   # SELECT COUNT() FROM ...: only totalSize is returned

    # set by resolve()
    describe: Optional[dict] = None


def parse_datetime_literal(text: str) -> datetime:
    t = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", t):
        t = t[:-2] + ":" + t[-2:]
    return datetime.fromisoformat(t).astimezone(timezone.utc)


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _where(query: str, pos: int) -> str:
    """Salesforce's error preamble: the query, a caret under the offending token, row and column."""
    line_start = query.rfind("\n", 0, pos) + 1
    row = query.count("\n", 0, pos) + 1
    col = pos - line_start + 1
    line_end = query.find("\n", pos)
    line = query[line_start: line_end if line_end >= 0 else len(query)]
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise SoqlError("MALFORMED_QUERY", _where(text, pos) + f"unexpected token: '{text[pos]}'")
            if m.lastgroup != "ws":
                self.toks.append(Tok(m.lastgroup, m.group(), pos))
            pos = m.end()
        self.toks.append(Tok("eof", "<EOF>", len(text)))
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, tok: Tok, what: Optional[str] = None) -> SoqlError:
        shown = tok.text if tok.kind == "eof" else f"'{tok.text}'" if what is None else what
        return SoqlError("MALFORMED_QUERY", _where(self.text, tok.pos) + f"unexpected token: {shown}")

    def kw(self, word: str) -> bool:
        t = self.peek()
        if t.kind == "ident" and t.upper == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> Tok:
        t = self.next()
        if t.kind != "ident" or t.upper != word:
            raise self.fail(t)
        return t

    def ident(self) -> Tok:
        t = self.next()
        if t.kind != "ident" or t.upper in KEYWORDS:
            raise self.fail(t)
        return t

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields, toks = [], []
        count = False
        while True:
            t = self.ident()
            if t.upper == "COUNT" and not fields and self.peek().kind == "punct" and self.peek().text == "(":
                self.next()
                close = self.next()
                if close.kind == "punct" and close.text == ")" and self.peek().kind == "ident" \
                        and self.peek().upper == "FROM":
                    count = True  # COUNT() alone (documented): the number of matching rows in totalSize
                    break
                raise SoqlError("MALFORMED_QUERY", _where(self.text, t.pos)
                                + "COUNT(field) and other aggregates are not supported by this fake; COUNT() is")
            if self.peek().kind == "punct" and self.peek().text == "(":
                raise SoqlError("MALFORMED_QUERY", _where(self.text, t.pos)
                                + f"{t.text}() is not supported by this fake (aggregate and FIELDS() functions)")
            fields.append(t.text)
            toks.append(t)
            if not (self.peek().kind == "punct" and self.peek().text == ","):
                break
            self.next()
        self.expect_kw("FROM")
        obj = self.ident()
        q = Query(text=self.text, fields=fields, field_toks=toks, sobject=obj.text, sobject_tok=obj, count=count)
        if self.kw("WHERE"):
            q.where = self.cond()
        if self.peek().kind == "ident" and self.peek().upper in ("GROUP", "HAVING", "TYPEOF", "WITH", "FOR", "USING"):
            t = self.peek()
            raise SoqlError("MALFORMED_QUERY", _where(self.text, t.pos)
                            + f"{t.upper} is not supported by this fake")
        if self.kw("ORDER"):
            self.expect_kw("BY")
            q.clauses.add("ORDER BY")
            while True:
                t = self.ident()
                key = OrderKey(t.text, tok=t)
                if self.kw("DESC"):
                    key.desc = True
                else:
                    self.kw("ASC")
                if self.kw("NULLS"):
                    nt = self.next()
                    if nt.kind != "ident" or nt.upper not in ("FIRST", "LAST"):
                        raise self.fail(nt)
                    key.nulls_last = nt.upper == "LAST"
                q.order.append(key)
                if not (self.peek().kind == "punct" and self.peek().text == ","):
                    break
                self.next()
        if self.kw("LIMIT"):
            q.clauses.add("LIMIT")
            q.limit = self.integer()
        if self.kw("OFFSET"):
            q.clauses.add("OFFSET")
            q.offset = self.integer()
        t = self.peek()
        if t.kind != "eof":
            raise self.fail(t)
        return q

    def integer(self) -> int:
        t = self.next()
        if t.kind != "number" or not t.text.isdigit():
            raise self.fail(t)
        return int(t.text)

    def cond(self):
        parts = [self.unary()]
        joiner = None
        while self.peek().kind == "ident" and self.peek().upper in ("AND", "OR"):
            t = self.next()
            if joiner is not None and t.upper != joiner:
                raise self.fail(t)   # SOQL: AND and OR need parentheses when mixed
            joiner = t.upper
            parts.append(self.unary())
        return parts[0] if joiner is None else BoolOp(joiner, parts)

    def unary(self):
        if self.kw("NOT"):
            return BoolOp("NOT", [self.unary()])
        t = self.peek()
        if t.kind == "punct" and t.text == "(":
            self.next()
            inner = self.cond()
            close = self.next()
            if close.kind != "punct" or close.text != ")":
                raise self.fail(close)
            return inner
        return self.comparison()

    def comparison(self) -> Cmp:
        f = self.ident()
        t = self.next()
        if t.kind == "op":
            op = "!=" if t.text == "<>" else t.text
            return Cmp(f.text, op, [self.literal()], f)
        if t.kind == "ident" and t.upper == "LIKE":
            return Cmp(f.text, "LIKE", [self.literal()], f)
        negate = False
        if t.kind == "ident" and t.upper == "NOT":
            negate = True
            t = self.next()
        if t.kind == "ident" and t.upper == "IN":
            o = self.next()
            if o.kind != "punct" or o.text != "(":
                raise self.fail(o)
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.next()
                values.append(self.literal())
            c = self.next()
            if c.kind != "punct" or c.text != ")":
                raise self.fail(c)
            return Cmp(f.text, "NOTIN" if negate else "IN", values, f)
        raise self.fail(t)

    def literal(self) -> Literal:
        t = self.next()
        if t.kind == "string":
            return Literal("string", _unescape(t.text[1:-1]), t)
        if t.kind == "number":
            return Literal("number", float(t.text) if "." in t.text else int(t.text), t)
        if t.kind == "datetime":
            try:
                return Literal("datetime", parse_datetime_literal(t.text), t)
            except ValueError:
                raise self.fail(t) from None
        if t.kind == "date":
            try:
                return Literal("date", date.fromisoformat(t.text), t)
            except ValueError:
                raise self.fail(t) from None
        if t.kind == "ident" and t.upper in ("TRUE", "FALSE"):
            return Literal("boolean", t.upper == "TRUE", t)
        if t.kind == "ident" and t.upper == "NULL":
            return Literal("null", None, t)
        raise self.fail(t)


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text).parse()


# ------------------------------------------------------------------------------------------------
# Resolution against the org's schema, and evaluation


def resolve(q: Query, objects: dict) -> Query:
    """Match object and field names to the org's describe (case-insensitively), check literal types."""
    by_lower = {name.lower(): name for name in objects}
    name = by_lower.get(q.sobject.lower())
    if name is None:
        raise SoqlError("INVALID_TYPE", _where(q.text, q.sobject_tok.pos)
                        + f"sObject type '{q.sobject}' is not supported. If you are attempting to use a custom "
                          "object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                          "or the describe call for the appropriate names.")
    obj = objects[name]
    q.sobject = name
    q.describe = obj
    fields = {f.name.lower(): f for f in obj.fields.values()}

    def field_of(fname: str, tok: Tok):
        if "." in fname:
            rel = fname.split(".")[0]
            raise SoqlError("INVALID_FIELD", _where(q.text, tok.pos)
                            + f"Didn't understand relationship '{rel}' in field path. If you are attempting to use "
                              "a custom relationship, be sure to append the '__r' after the custom relationship name. "
                              "Please reference your WSDL or the describe call for the appropriate names.")
        f = fields.get(fname.lower())
        if f is None:
            raise SoqlError("INVALID_FIELD", _where(q.text, tok.pos)
                            + f"No such column '{fname}' on entity '{name}'. If you are attempting to use a custom "
                              "field, be sure to append the '__c' after the custom field name. Please reference your "
                              "WSDL or the describe call for the appropriate names.")
        return f

    q.fields = [field_of(f, t).name for f, t in zip(q.fields, q.field_toks)]
    seen = set()
    for f, t in zip(q.fields, q.field_toks):
        if f in seen:
            raise SoqlError("MALFORMED_QUERY", _where(q.text, t.pos) + f"duplicate field selected: {f}")
        seen.add(f)
    for key in q.order:
        key.field = field_of(key.field, key.tok).name

    def check(node):
        if isinstance(node, BoolOp):
            for p in node.parts:
                check(p)
            return
        f = field_of(node.field, node.tok)
        node.field = f.name
        for lit in node.values:
            _check_literal(q, f, node, lit)

    if q.where is not None:
        check(q.where)
    return q


def _check_literal(q: Query, f, node: Cmp, lit: Literal) -> None:
    if lit.kind == "null":
        if node.op not in ("=", "!=", "IN", "NOTIN"):
            raise SoqlError("MALFORMED_QUERY", _where(q.text, lit.tok.pos) + "unexpected token: null")
        return
    t = f.type
    problem = None
    if t == "datetime":
        if lit.kind != "datetime":
            problem = "must be of type dateTime and should not be enclosed in quotes"
    elif t == "date":
        if lit.kind != "date":
            problem = "must be of type date and should not be enclosed in quotes"
    elif t == "boolean":
        if lit.kind != "boolean":
            problem = "must be of type boolean and should not be enclosed in quotes"
    elif t in NUMERIC_TYPES:
        if lit.kind != "number":
            problem = f"must be of type {'integer' if t == 'int' else 'double'} and should not be enclosed in quotes"
    elif t in TEXT_TYPES or t in ID_TYPES:
        if lit.kind != "string":
            problem = "must be of type string and should be enclosed in quotes"
        elif t in ID_TYPES and node.op != "LIKE" and len(lit.value) not in (15, 18):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", _where(q.text, lit.tok.pos)
                            + f"invalid ID field: {lit.value}")
    if node.op == "LIKE" and t not in TEXT_TYPES and t not in ID_TYPES:
        raise SoqlError("INVALID_FIELD", _where(q.text, node.tok.pos)
                        + f"invalid operator on {t} field: LIKE")
    if problem:
        raise SoqlError("INVALID_FIELD", _where(q.text, lit.tok.pos)
                        + f"value of filter criterion for field '{f.name}' {problem}")


def _norm(ftype: str, v):
    """A comparable form of a value of a field of this type (text compares case-insensitively,
    ids on their case-sensitive 15-character form)."""
    if v is None:
        return None
    if ftype in ID_TYPES:
        return v[:15]
    if ftype in TEXT_TYPES:
        return v.lower()
    return v


def _like(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def compile_where(q: Query):
    """A predicate over a record's values dict."""
    types = {f.name: f.type for f in q.describe.fields.values()}

    def build(node):
        if isinstance(node, BoolOp):
            parts = [build(p) for p in node.parts]
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            if node.op == "OR":
                return lambda r: any(p(r) for p in parts)
            inner = parts[0]
            return lambda r: not inner(r)
        name, ftype, op = node.field, types[node.field], node.op
        vals = [_norm(ftype, lit.value) for lit in node.values]
        if op == "LIKE":
            rx = _like(node.values[0].value or "")
            return lambda r: r.get(name) is not None and rx.fullmatch(r.get(name)) is not None
        if op in ("IN", "NOTIN"):
            s = set(vals)
            if op == "IN":
                return lambda r: _norm(ftype, r.get(name)) in s
            return lambda r: _norm(ftype, r.get(name)) not in s
        v = vals[0]
        if op == "=":
            return lambda r: _norm(ftype, r.get(name)) == v
        if op == "!=":
            return lambda r: _norm(ftype, r.get(name)) != v
        cmp = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]

        def pred(r):
            a = _norm(ftype, r.get(name))
            return a is not None and v is not None and cmp(a, v)
        return pred

    return build(q.where) if q.where is not None else (lambda r: True)


def sort_rows(q: Query, rows: list[dict]) -> list[dict]:
    """ORDER BY as Salesforce sorts: ASC puts nulls first, DESC puts them last, unless NULLS says."""
    types = {f.name: f.type for f in q.describe.fields.values()}
    for key in reversed(q.order):
        ftype = types[key.field]
        nulls_last = key.nulls_last if key.nulls_last is not None else key.desc
        present = [r for r in rows if r.get(key.field) is not None]
        absent = [r for r in rows if r.get(key.field) is None]
        present.sort(key=lambda r: _norm(ftype, r[key.field]), reverse=key.desc)
        rows = present + absent if nulls_last else absent + present
    return rows

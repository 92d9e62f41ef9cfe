"""Uniform read access to one raw record, whatever its container format.

A mapping names source values with expressions: a column header (CSV), a
dotted path (JSON) or an XPath (XML). An accessor evaluates them, names the
place of each value for error reports, and remembers which expressions were
read (when given a ``used`` set) so that a field the mapping never uses can be
reported; translation itself does not pay for that bookkeeping.
"""

from __future__ import annotations

from typing import Any

from lxml import etree


class CsvAccessor:
    """A CSV row: expressions are header names."""

    def __init__(self, row: dict, location: str, used: set | None = None):
        self.row, self.location = row, location
        self.used = used  # a set to record the expressions read (mapping tests), or None

    def get(self, expr: str, all_values: bool = False):
        if self.used is not None:
            self.used.add(expr)
        value = self.row.get(expr)
        return [value] if all_values and value is not None else value

    def each(self, expr: str) -> list:
        raise ValueError("CSV rows have no nested records; use 'split' instead of 'each'")

    def where(self, expr: str) -> str:
        return f"{self.location}, column '{expr}'"

    def present(self) -> set[str]:
        return {k for k, v in self.row.items() if v is not None and str(v).strip()}


class JsonAccessor:
    """A JSON object: expressions are dotted paths (``subject.firstName``)."""

    def __init__(self, data: Any, pointer: str, used: set | None = None, prefix: str = ""):
        self.data, self.pointer, self.prefix = data, pointer.rstrip("/") or "", prefix
        self.used = used  # a set to record the expressions read (mapping tests), or None

    def _walk(self, expr: str):
        node = self.data
        for part in expr.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def get(self, expr: str, all_values: bool = False):
        if self.used is not None:
            self.used.add(self.prefix + expr)
        value = self._walk(expr)
        if all_values:
            return value if isinstance(value, list) else ([] if value is None else [value])
        return value

    def each(self, expr: str) -> list["JsonAccessor"]:
        if self.used is not None:
            self.used.add(self.prefix + expr)
        items = self._walk(expr)
        if not isinstance(items, list):
            return []
        base = f"{self.pointer}/{expr.replace('.', '/')}"
        return [JsonAccessor(item, f"{base}/{i}", self.used, f"{self.prefix}{expr}[].")
                for i, item in enumerate(items)]

    def where(self, expr: str) -> str:
        return f"{self.pointer}/{expr.replace('.', '/')}"

    def present(self) -> set[str]:
        """Dotted paths (``family[].name`` inside lists) of every value that is given."""
        out: set[str] = set()

        def walk(node, prefix):
            for key, value in node.items():
                path = prefix + key
                if isinstance(value, dict):
                    walk(value, path + ".")
                elif isinstance(value, list):
                    if any(not isinstance(x, dict) for x in value if x not in (None, "")):
                        out.add(path)
                    for item in value:
                        if isinstance(item, dict):
                            walk(item, path + "[].")
                elif value not in (None, ""):
                    out.add(path)

        if isinstance(self.data, dict):
            walk(self.data, "")
        return out


class XmlAccessor:
    """An lxml element: expressions are XPaths relative to it, with the mapping's prefixes."""

    # Compiled XPath objects, shared by every record: compiling is most of an XPath's cost.
    _compiled: dict = {}

    def __init__(self, element, location: str, namespaces: dict, used: set | None = None, prefix: str = ""):
        self.element, self.location, self.ns, self.prefix = element, location, namespaces, prefix
        self.used = used  # a set to record the expressions read (mapping tests), or None
        self._ns_key = tuple(sorted(namespaces.items()))

    def _xpath(self, expr: str):
        key = (expr, self._ns_key)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = etree.XPath(expr, namespaces=self.ns)
        return compiled(self.element)

    def _text(self, node) -> str | None:
        if isinstance(node, str):  # attribute or text() result
            return str(node)
        return node.text if node.text is not None else ""

    def get(self, expr: str, all_values: bool = False):
        if self.used is not None:
            self.used.add(self.prefix + expr)
        result = self._xpath(expr)
        if isinstance(result, (bool, float)):  # boolean() / count() expressions
            return [result] if all_values else result
        if not isinstance(result, list):
            result = [result]
        values = [self._text(n) for n in result]
        if all_values:
            return values
        return values[0] if values else None

    def each(self, expr: str) -> list["XmlAccessor"]:
        if self.used is not None:
            self.used.add(self.prefix + expr)
        out = []
        for n, node in enumerate(self._xpath(expr), start=1):
            out.append(XmlAccessor(node, f"{self.location}/{expr}[{n}]", self.ns, self.used,
                                   f"{self.prefix}{expr}/"))
        return out

    def where(self, expr: str) -> str:
        return f"{self.location}/{expr}"

    def present(self) -> set[str]:
        """Paths (with the mapping's prefixes) of every element or attribute that holds a value."""
        reverse = {v: k for k, v in self.ns.items()}
        out: set[str] = set()

        def name(qname: str) -> str:
            q = etree.QName(qname)
            return f"{reverse[q.namespace]}:{q.localname}" if q.namespace in reverse else q.localname

        def walk(el, path):
            for attr, val in el.attrib.items():
                if val.strip():
                    out.add(f"{path}@{name(attr)}" if path else f"@{name(attr)}")
            children = [c for c in el if isinstance(c.tag, str)]
            if not children and (el.text or "").strip() and path:
                out.add(path.rstrip("/"))
            for c in children:
                walk(c, f"{path}{name(c.tag)}/")

        walk(self.element, "")
        return out

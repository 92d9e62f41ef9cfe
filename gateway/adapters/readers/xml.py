"""Reader for police Public Protection Notices (``ppn-xml``, XML v1).

A file holds one ``PublicProtectionNotice`` or a ``NoticeBatch`` of many; a
batch can be a force's whole day, so it is streamed with ``iterparse`` one
notice at a time and every notice is cleared once the caller has finished
with it.

Police XML comes from outside the trust boundary, so parsing is locked down:
no entities are resolved, no DTD is loaded, nothing is fetched from the
network, and a file that declares a DOCTYPE at all is refused before lxml
sees it (a DOCTYPE is how entity-expansion and external-entity attacks get
in, and PPN XML never needs one).

Each notice is validated on its own against the project's XSD
(``mappings/ppn-xml/ppn.xsd``), so one bad notice becomes a
:class:`BadRecord` and the rest of the batch carries on.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from gateway.adapters import limits as input_limits
from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord

PPN_NS = "urn:x-police-uk:ppn:1"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"

BATCH_TAG = f"{{{PPN_NS}}}NoticeBatch"
NOTICE_TAG = f"{{{PPN_NS}}}PublicProtectionNotice"
SIGNATURE_TAG = f"{{{DS_NS}}}Signature"

BATCH_XPATH = "/ppn:NoticeBatch"
SINGLE_XPATH = "/ppn:PublicProtectionNotice"

# How much of the file may come before the root element (XML declaration,
# comments). Real exports have a line or two; this only bounds the look-ahead.
_PROLOG_LIMIT = 1024 * 1024
_READ_SIZE = 64 * 1024

_REEXPORT = "Re-export the file from the force's system, or ask the force to send it again."


# Schema ---------------------------------------------------------------------


def default_xsd_path() -> Path:
    """Return the path of the bundled PPN XML v1 schema (``ppn-xml/ppn.xsd`` in the mappings folder)."""
    from gateway.config import Settings

    return Settings().mappings_dir / "ppn-xml" / "ppn.xsd"


@functools.lru_cache(maxsize=8)
def _load_schema_cached(path: str) -> etree.XMLSchema:
    # The schema is the project's own file, but it is parsed as carefully as
    # any input: it must never pull anything in from elsewhere.
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    return etree.XMLSchema(etree.parse(path, parser))


def load_schema(xsd_path: str | Path | None = None) -> etree.XMLSchema:
    """Return the compiled XML Schema at ``xsd_path`` (default: :func:`default_xsd_path`).

    Compiled schemas are cached per path. Raises ``OSError`` when the file
    cannot be read and ``lxml.etree.XMLSchemaParseError`` when it is not a
    usable schema; both are faults of the installation, not of the input.
    """
    path = Path(xsd_path) if xsd_path is not None else default_xsd_path()
    return _load_schema_cached(str(path.resolve()))


# Reader ---------------------------------------------------------------------


def read_ppn_xml(stream: BinaryIO, filename: str, options: dict | None = None) -> Iterator[RawRecord | BadRecord]:
    """Yield one record per ``PublicProtectionNotice`` in ``stream``, in file order.

    A valid notice gives a :class:`RawRecord` whose ``data`` is the notice's
    lxml element (valid only until the next record is requested: it is then
    cleared to keep memory flat), ``location`` its XPath
    (``/ppn:NoticeBatch/ppn:PublicProtectionNotice[3]`` or
    ``/ppn:PublicProtectionNotice``), ``line`` its first line, and
    ``context`` the keys ``root`` (``"NoticeBatch"`` or
    ``"PublicProtectionNotice"``), ``generatedAt`` (the batch attribute as
    written, or ``None``), ``signed`` (``True`` when the notice carries an
    enveloped ``ds:Signature``; the element is kept, not verified) and
    ``schemaVersion``.

    A notice that fails the schema gives a :class:`BadRecord` naming its
    XPath, the line, the schema's complaint in plain words and what to do. A
    file cut short gives the notices completed before the break, then one
    :class:`BadRecord` for the broken remainder.

    ``options`` may carry ``xsd_path`` to validate against another schema.

    Raises :class:`InputUnreadable` when the file as a whole cannot be read:
    empty, not XML (binary, an HTML error page), a DOCTYPE (refused for
    safety), a root element other than ``ppn:NoticeBatch`` or
    ``ppn:PublicProtectionNotice`` in namespace ``urn:x-police-uk:ppn:1``, or
    broken before any notice could be read; and its
    :class:`~gateway.adapters.limits.LimitExceeded` when elements nest deeper
    than the nesting limit. A notice with a text or attribute longer than the
    field limit is a :class:`BadRecord`.
    """
    options = options or {}
    limits = input_limits.current()
    schema = load_schema(options.get("xsd_path"))
    source = _ReplayStream(_read_prolog(stream, filename), stream)
    events = etree.iterparse(
        source,
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )

    root: etree._Element | None = None
    batch = False
    doc_context: dict = {}
    depth = 0
    done = 0  # records given out so far (notices and stray batch children)
    notices = 0  # position of the last notice, for its XPath
    while True:
        try:
            event, elem = next(events)
        except StopIteration:
            return
        except etree.XMLSyntaxError as exc:
            # A file cut short fails where its data stops; any earlier failure
            # is broken markup, whatever the parser had read ahead by then.
            truncated = source.eof and bool(exc.position) and exc.position[0] >= source.last_line
            yield _broken(exc, filename, root=root, batch=batch, depth=depth, done=done, notices=notices,
                          truncated=truncated)
            return

        if event == "start":
            depth += 1
            if depth > limits.max_nesting_depth:
                raise limits.depth_exceeded(filename, f"line {elem.sourceline}", kind="XML")
            if root is None:
                root = elem
                _check_root(elem, filename)
                batch = elem.tag == BATCH_TAG
                doc_context = {
                    "root": etree.QName(elem).localname,
                    "generatedAt": elem.get("generatedAt") if batch else None,
                }
            continue

        depth -= 1
        if batch and depth == 1:
            done += 1
            if elem.tag == NOTICE_TAG:
                notices += 1
                location = f"{BATCH_XPATH}/ppn:PublicProtectionNotice[{notices}]"
                yield _notice(elem, location, schema, doc_context, limits)
            else:
                yield _stray(elem)
            # The caller is done with this notice: drop it and everything
            # before it, or a 1 GB batch would be held whole in memory.
            _release(elem)
        elif not batch and depth == 0:
            done += 1
            yield _notice(elem, SINGLE_XPATH, schema, doc_context, limits)
            _release(elem)


def _release(elem: etree._Element) -> None:
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _notice(elem: etree._Element, location: str, schema: etree.XMLSchema, doc_context: dict,
            limits: input_limits.Limits) -> RawRecord | BadRecord:
    longest = max((len(text) for node in elem.iter() for text in (node.text, node.tail, *node.attrib.values())
                   if text), default=0)
    if longest > limits.max_field_chars:
        return BadRecord(location=location, reason=limits.field_exceeded("", longest, location).reason,
                         action="Ask the force to check this notice: no field of a notice is this long.",
                         line=elem.sourceline)
    # Validating the element alone treats it as a standalone document, so
    # each notice is judged on its own and person-id keys stay per notice.
    if not schema.validate(elem):
        return _schema_failure(elem, location, schema.error_log)
    context = dict(doc_context)
    context["signed"] = elem.find(SIGNATURE_TAG) is not None
    context["schemaVersion"] = elem.get("schemaVersion")
    return RawRecord(location=location, data=elem, context=context, line=elem.sourceline)


def _stray(elem: etree._Element) -> BadRecord:
    return BadRecord(
        location=f"{BATCH_XPATH}/{_prefixed(elem.tag)}",
        reason=f"the batch holds a <{_prefixed(elem.tag)}> element where only ppn:PublicProtectionNotice may appear",
        action="Ask the force to export this item as a PublicProtectionNotice, or remove it.",
        line=elem.sourceline,
    )


# Plain words for the schema's messages -------------------------------------

_NS_BRACES = re.compile(r"\{urn:x-police-uk:ppn:1\}")
_DS_BRACES = re.compile(r"\{http://www\.w3\.org/2000/09/xmldsig#\}")
_PLAIN = [
    (re.compile(r"^Element '([^']+)': \[facet 'enumeration'\] The value '([^']*)' is not an element of the set \{(.*)\}\.?$"),
     r"\1: '\2' is not one of the allowed values (\3)."),
    (re.compile(r"^Element '([^']+)', attribute '([^']+)': \[facet 'enumeration'\] The value '([^']*)' is not an element of the set \{(.*)\}\.?$"),
     r"\1/@\2: '\3' is not one of the allowed values (\4)."),
    (re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: \[facet 'pattern'\] The value '([^']*)' is not accepted by the pattern '([^']*)'\.?$"),
     r"\1: '\3' is not in the expected form (\4)."),
    (re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: '([^']*)' is not a valid value of the atomic type 'xs:dateTime'\.?$"),
     r"\1: '\3' is not a date and time like 2018-09-09T03:00:00+01:00."),
    (re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: '([^']*)' is not a valid value of the atomic type 'xs:date'\.?$"),
     r"\1: '\3' is not a date like 2013-05-14."),
    (re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: '([^']*)' is not a valid value of the atomic type 'xs:boolean'\.?$"),
     r"\1: '\3' is not true or false."),
    (re.compile(r"^Element '([^']+)': Missing child element\(s\)\. Expected is (?:one of )?\( ?(.*?) ?\)\.?$"),
     r"\1: a required element is missing; expected \2 next."),
    (re.compile(r"^Element '([^']+)': This element is not expected\. Expected is (?:one of )?\( ?(.*?) ?\)\.?$"),
     r"\1: this element is not expected here; expected \2."),
    (re.compile(r"^Element '([^']+)': This element is not expected\.?$"),
     r"\1: this element is not expected here."),
    (re.compile(r"^Element '([^']+)': The attribute '([^']+)' is required but missing\.?$"),
     r"\1: the attribute '\2' is required but missing."),
    (re.compile(r"^Element '([^']+)': No match found for key-sequence \['([^']*)'\] of keyref '[^']*'\.?$"),
     r"\1 refers to person '\2', who is not listed under ppn:Persons."),
    (re.compile(r"^Element '([^']+)': Duplicate key-sequence \['([^']*)'\] in (?:key|unique) identity-constraint '[^']*'\.?$"),
     r"\1: '\2' appears twice but must be unique."),
    (re.compile(r"^Element '([^']+)': \[facet 'minLength'\] The value '([^']*)' has a length of '0'.*$"),
     r"\1: must not be empty."),
]


def plain_schema_message(message: str) -> str:
    """Return the schema validator's ``message`` rewritten for people (``ppn:`` prefixes, plain phrases)."""
    text = _DS_BRACES.sub("ds:", _NS_BRACES.sub("ppn:", message.strip()))
    for pattern, replacement in _PLAIN:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return re.sub(r"^Element '([^']+)': ", r"\1: ", text)


def _schema_failure(elem: etree._Element, location: str, error_log) -> BadRecord:
    errors = list(error_log)
    first = errors[0]
    field = None
    if first.path:
        # The validator saw the notice as a document of its own; its path
        # starts at the notice, which is what a field name should say.
        relative = first.path.split("/", 2)[2] if first.path.count("/") >= 2 else ""
        field = re.sub(r"ppn:|\[\d+\]", "", relative) or None
    words = [plain_schema_message(e.message) for e in errors[:3]]
    more = f" (and {len(errors) - 3} more problems)" if len(errors) > 3 else ""
    notice_id = elem.findtext(f"{{{PPN_NS}}}NoticeId")
    which = f"notice {notice_id.strip()}" if notice_id and notice_id.strip() else "the notice"
    return BadRecord(
        location=location,
        reason=f"{which} does not follow the PPN XML v1 schema: " + " ".join(words) + more,
        action="Ask the force to correct this notice and send it again; the other notices in the file are processed as usual.",
        field=field,
        line=first.line or elem.sourceline,
    )


# Broken and unreadable input ------------------------------------------------


def _broken(exc: etree.XMLSyntaxError, filename: str, *, root, batch: bool, depth: int, done: int, notices: int,
            truncated: bool) -> BadRecord:
    """Return the record for the unreadable rest of a file; raise InputUnreadable if nothing was read."""
    line, column = exc.position if exc.position else (exc.lineno, None)
    where = f"line {line}" + (f", column {column}" if column else "")
    detail = _strip_position(exc.msg)
    if root is None:
        raise InputUnreadable(
            filename,
            f"this is not well-formed XML ({detail} at {where}).",
            "Check that this is a PPN XML export; " + _REEXPORT[0].lower() + _REEXPORT[1:],
        )
    if done == 0:
        what = "the file ends before the first notice is complete (truncated?)" if truncated else (
            f"the XML is broken before the first notice is complete ({detail} at {where})")
        raise InputUnreadable(filename, what + "; nothing could be read.", _REEXPORT)
    if depth == 0:
        # Everything up to the end of the root element was read; what
        # follows it is not part of any notice but must not pass unnoticed.
        return BadRecord(
            location=f"after {BATCH_XPATH if batch else SINGLE_XPATH}",
            reason=f"unexpected content after the end of the document at {where} ({detail}); it was not read",
            action="Check the export: the notices before it were read as usual.",
            line=line,
        )
    location = f"{BATCH_XPATH}/ppn:PublicProtectionNotice[{notices + 1}]"
    inside = depth >= 2
    if truncated:
        reason = (
            f"file ends in the middle of a notice (truncated?): the XML stops at {where}"
            if inside else
            f"file ends before the end of the batch (truncated?) at {where}; any notices after the first {notices} are missing"
        )
    else:
        reason = f"the XML is broken at {where} ({detail}); the rest of the file cannot be read"
        return BadRecord(location=location, reason=reason, line=line,
                         action="re-export the file; if the fault is in the force's export, ask the force to correct it")
    return BadRecord(location=location, reason=reason, action="re-export the file", line=line)


_SYNTAX_WORDS = {
    "xmlParseEntityRef: no name": "a bare '&' that should have been written '&amp;'",
    "StartTag: invalid element name": "a '<' that does not start an element (should it be '&lt;'?)",
}


def _strip_position(msg: str) -> str:
    # libxml2 appends ", line L, column C" itself; the report says it once.
    text = re.sub(r"(, line \d+)*, column \d+$", "", msg or "").strip() or "syntax error"
    return _SYNTAX_WORDS.get(text, text)


def _check_root(elem: etree._Element, filename: str) -> None:
    # Belt and braces: the prolog scan already refused any DOCTYPE.
    if elem.getroottree().docinfo.doctype:
        raise _doctype_refused(filename)
    if elem.tag in (BATCH_TAG, NOTICE_TAG):
        return
    # Split by hand: lxml's QName refuses some names its parser let through ("ppn:" from damaged
    # markup), and this is the place that tells the sender what the root is.
    namespace, _, localname = elem.tag[1:].rpartition("}") if elem.tag.startswith("{") else ("", "", elem.tag)
    if localname.lower() == "html":
        raise _html_page(filename)
    if localname in ("NoticeBatch", "PublicProtectionNotice"):
        ns = f"namespace '{namespace}'" if namespace else "no namespace"
        raise InputUnreadable(
            filename,
            f"the root element is {localname} in {ns}, but PPN XML v1 uses the namespace {PPN_NS}.",
            "Check that this is a PPN XML v1 export; another version of the format needs its own mapping.",
            location="/" + localname,
        )
    raise InputUnreadable(
        filename,
        f"the root element is <{_prefixed(elem.tag)}>, not ppn:NoticeBatch or ppn:PublicProtectionNotice; this is not a police PPN file.",
        "Check that the right file and --format were chosen.",
        location="/" + localname,
    )


def _prefixed(tag: str) -> str:
    return _DS_BRACES.sub("ds:", _NS_BRACES.sub("ppn:", tag))


def _doctype_refused(filename: str) -> InputUnreadable:
    return InputUnreadable(
        filename,
        "the file declares a DOCTYPE; DTDs and entity declarations are refused for safety (PPN XML never needs one).",
        "Ask the force to export the notices without a DOCTYPE.",
    )


def _html_page(filename: str) -> InputUnreadable:
    return InputUnreadable(
        filename,
        "this is an HTML page, not PPN XML (probably an error page saved as .xml).",
        "Download the export again from the force's system, or ask the force to send it again.",
    )


_MAGIC = [
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old-style Office document"),
]


def _read_prolog(stream: BinaryIO, filename: str) -> bytes:
    """Read up to the root element's ``<`` and return the bytes read.

    Raises :class:`InputUnreadable` for an empty file, a file that is not XML,
    an HTML page, or any DOCTYPE. The scan happens before lxml sees a byte, so
    a hostile internal subset is never parsed at all.
    """
    buf = b""
    eof = False
    while True:
        verdict = _scan_prolog(buf, eof)
        if verdict == "root":
            return buf
        if verdict == "more":
            if eof or len(buf) > _PROLOG_LIMIT:
                if not buf.strip():
                    raise InputUnreadable(filename, "the file is empty.", _REEXPORT)
                raise InputUnreadable(
                    filename,
                    "the file has no root element within its first megabyte; it is not a PPN XML export.",
                    _REEXPORT,
                )
            chunk = stream.read(_READ_SIZE)
            eof = not chunk
            buf += chunk
            continue
        if verdict == "doctype":
            raise _doctype_refused(filename)
        if verdict == "html":
            raise _html_page(filename)
        # verdict == "not-xml"
        for magic, kind in _MAGIC:
            if buf.startswith(magic):
                raise InputUnreadable(filename, f"this is {kind}, not PPN XML.", "Extract or convert it to the PPN XML export first.")
        raise InputUnreadable(
            filename,
            "this is not an XML file (it does not start with '<'; binary data or plain text?).",
            _REEXPORT,
        )


def _scan_prolog(buf: bytes, eof: bool) -> str:
    """Classify what comes before the root element: root, more, doctype, html, not-xml."""
    text = _decode_for_scan(buf)
    if text is None:
        return "not-xml"
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        rest = text[pos:pos + 10]
        if pos >= n or (len(rest) < 10 and not eof):
            return "more"
        if text.startswith("<?", pos):
            end = text.find("?>", pos)
            if end < 0:
                return "more" if not eof else "not-xml"
            pos = end + 2
            continue
        if text.startswith("<!--", pos):
            end = text.find("-->", pos)
            if end < 0:
                return "more" if not eof else "not-xml"
            pos = end + 3
            continue
        if rest.upper().startswith("<!DOCTYPE"):
            name = re.match(r"<!DOCTYPE\s+([^\s>\[]+)", text[pos:pos + 80], re.IGNORECASE)
            return "html" if name and name.group(1).lower() == "html" else "doctype"
        if text.startswith("<", pos):
            if text[pos + 1:pos + 5].lower() == "html" and not text[pos + 5:pos + 6].isalnum():
                return "html"
            return "root"
        return "not-xml"


def _decode_for_scan(buf: bytes) -> str | None:
    # Markup in the prolog is ASCII; decoding as Latin-1 keeps every byte
    # position and never fails, except for UTF-16, which needs its own codec.
    if buf.startswith(codecs.BOM_UTF8):
        buf = buf[3:]
    if buf.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or buf[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        codec = "utf-16" if buf[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else (
            "utf-16-le" if buf[:1] == b"<" else "utf-16-be")
        return buf[: len(buf) // 2 * 2].decode(codec, errors="replace")
    if b"\x00" in buf[:1024]:
        return None
    return buf.decode("latin-1")


class _ReplayStream:
    """A read-only stream that gives back the bytes already read, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest
        self.eof = False
        # 1-based number of the last line given out, to tell a file that
        # stops short from one that is broken further up.
        self.last_line = 1

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._rest.read(), b""
            else:
                data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._rest.read(size)
        if not data:
            self.eof = True
        self.last_line += data.count(b"\n")
        return data

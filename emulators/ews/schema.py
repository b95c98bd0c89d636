"""Microsoft's EWS schema (messages.xsd / types.xsd), loaded once, for checking requests and responses."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from lxml import etree

_XML_IMPORT = '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>'


def schema_folder() -> Path:
    """Where the schema files are: $EWS_SCHEMA_DIR, else ../shared/reference/ews-schema beside the repository."""
    configured = os.environ.get("EWS_SCHEMA_DIR")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "reference" / "ews-schema"


@functools.cache
def load_schema(folder: Path | None = None) -> etree.XMLSchema:
    """Compile the schema (about 0.1 s); the copy in a temporary folder gives the xml: import a location."""
    folder = folder or schema_folder()
    work = Path(tempfile.mkdtemp(prefix="ews-schema-"))
    try:
        shutil.copy(folder / "xml.xsd", work / "xml.xsd")
        types = (folder / "types.xsd").read_text(encoding="utf-8")
        types = types.replace(
            _XML_IMPORT,
            '<xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>',
        )
        (work / "types.xsd").write_text(types, encoding="utf-8")
        shutil.copy(folder / "messages.xsd", work / "messages.xsd")
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.XMLSchema(etree.parse(str(work / "messages.xsd"), parser))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def violations(element: etree._Element, schema: etree.XMLSchema | None = None) -> list[str]:
    """Schema violations of one message element (the first child of a SOAP Body); empty when it is valid."""
    schema = schema or load_schema()
    # Validate a standalone copy: lxml validates a subtree most reliably as its own document.
    document = etree.fromstring(etree.tostring(element))
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]

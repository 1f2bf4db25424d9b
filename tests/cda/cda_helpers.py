"""Helpers of the CDA tests: a fixed clock and functions that alter generated documents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from lxml import etree

NOW = datetime(2026, 5, 10, 14, 2, 11, tzinfo=UTC)
NS = {"h": "urn:hl7-org:v3", "c": "urn:cnsaSDO"}


def alter(xml: bytes, change: Callable[[etree._Element], None]) -> bytes:
    """Return ``xml`` after ``change`` edited its tree (re-serialised as UTF-8)."""
    root = etree.fromstring(xml)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def remove(xpath: str) -> Callable[[etree._Element], None]:
    """Return a change that deletes every element matched by ``xpath``."""

    def change(root: etree._Element) -> None:
        found = root.xpath(xpath, namespaces=NS)
        assert found, f"nothing matches {xpath}"
        for element in found:
            element.getparent().remove(element)

    return change


def set_attr(xpath: str, name: str, value: str) -> Callable[[etree._Element], None]:
    """Return a change that sets attribute ``name`` on every element matched by ``xpath``."""

    def change(root: etree._Element) -> None:
        found = root.xpath(xpath, namespaces=NS)
        assert found, f"nothing matches {xpath}"
        for element in found:
            element.set(name, value)

    return change

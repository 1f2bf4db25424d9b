"""Helpers of the CDA tests: a fixed clock, functions that alter generated documents, a legacy-shaped document."""

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


# A legacy document shaped like the IG's 2024 sample (hand-written here): social-security number as
# text, identifiantDecision rooted at the template OID, "nbJour" spelling, gender from an old system.
LEGACY = b"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:cnsaSDO="urn:cnsaSDO"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="1.2.250.1.213.1.1.1.4.8"/>
  <templateId root="2.16.840.1.113883.10.12.2"/>
  <id root="11111111-2222-3333-4444-555555555555" extension="007"/>
  <code code="18825-0" codeSystem="2.16.840.1.113883.4.642.3.240"/>
  <title>Test</title>
  <effectiveTime value="20240301"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <setId root="11111111-2222-3333-4444-555555555555" extension="NAT-0001"/>
  <versionNumber value="2"/>
  <recordTarget><patientRole>
    <id extension="IND-1" root="1.2.250.1.213.7.24"/>
    <cnsaSDO:numSecuriteSocialeOuvrantDroit>1 84 12 76 451 089 46</cnsaSDO:numSecuriteSocialeOuvrantDroit>
    <cnsaSDO:idMDPHResponsable extension="22-COTES D ARMOR" root="1.2.250.1.213.7.24"/>
    <patient>
      <name><family qualifier="BR">Test</family><given>Alpha Beta</given><given qualifier="BR">Alpha</given></name>
      <administrativeGenderCode code="M" codeSystem="1.2.250.1.213.2.53"/>
      <birthTime value="19840101"/>
    </patient>
  </patientRole></recordTarget>
  <relatedDocument typeCode="RPLC"><parentDocument><id root="11111111-2222-3333-4444-555555555555"
    extension="006"/></parentDocument></relatedDocument>
  <component><structuredBody><component><section>
    <templateId root="1.2.250.1.213.1.1.2.235"/>
    <cnsaSDO:decision>
      <cnsaSDO:identifiantDecision root="1.2.250.1.213.1.1.1.4.8" extension="DEC-1"/>
      <cnsaSDO:typeDeDecision code="1" codeSystem="1.2.250.1.213.3.3.202"/>
      <cnsaSDO:dateDeDecision value="20240215"/>
      <cnsaSDO:motivation code="364" codeSystem="1.2.250.1.213.3.3.148"/>
      <cnsaSDO:droitPrestation>
        <cnsaSDO:typeDroitOuPrestation code="13.2" codeSystem="1.2.250.1.213.3.3.204"/>
        <cnsaSDO:natureDroit code="1" codeSystem="1.2.250.1.213.3.3.151"/>
        <cnsaSDO:dateOuvertureDuDroit value="20240301"/>
        <cnsaSDO:dateEcheanceDuDroit value="20290228"/>
        <cnsaSDO:qualification code="1" codeSystem="1.2.250.1.213.3.3.171"/>
        <cnsaSDO:existencePAG value="true"/>
        <cnsaSDO:detailTypeDroitPrestation>
          <cnsaSDO:temporaliteAccueil code="01" codeSystem="1.2.250.1.213.3.3.31"/>
          <cnsaSDO:nbJourDerogationAccueilTemporaire value="16"/>
          <cnsaSDO:priseEnCharge>
            <cnsaSDO:modePriseEnCharge code="46" codeSystem="1.2.250.1.213.3.3.13"/>
            <cnsaSDO:quantification><cnsaSDO:nombre value="15"/>
              <cnsaSDO:unite code="2" codeSystem="1.2.250.1.213.3.3.211"/>
              <cnsaSDO:periodicite code="3" codeSystem="1.2.250.1.213.3.3.163"/></cnsaSDO:quantification>
          </cnsaSDO:priseEnCharge>
        </cnsaSDO:detailTypeDroitPrestation>
      </cnsaSDO:droitPrestation>
    </cnsaSDO:decision>
  </section></component></structuredBody></component>
</ClinicalDocument>
"""

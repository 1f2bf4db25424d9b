"""``vtdui rehearse``: the ViaTrajectoire scenarios of the Ségur referencing, played as a DUI does, with evidence.

:mod:`~vtdui.rehearsal.scenarios` names the scenarios and their DUI actions, :mod:`~vtdui.rehearsal.actions`
does those actions the way a DUI screen does (plain FHIR on HAPI), :mod:`~vtdui.rehearsal.runner` plays
them and checks what ViaTrajectoire received and what the work list shows, :mod:`~vtdui.rehearsal.report`
writes the evidence (HTML report, payloads for EVSClient, redacted traces).
"""

"""Plivo and Vobiz Hangup outcomes, one test per row of the published hangup-cause tables.

Expected states are written here by hand from the tables (plivo.com/docs/voice/troubleshooting/hangup-causes
and docs.vobiz.ai/concepts/hangup-causes: code, cause name, category) and from docs/providers.md's reading
of them, not taken from the code under test. Each row is sent through the real adapters, by code alone and
by name alone, on a call with no evidence of an answer; then the answer evidence and event time rows.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import orjson
import pytest

from receiver.delivery import FORM, JSON, Delivery
from receiver.providers import PROVIDERS
from receiver.settings import Source

#: (code, cause name, canonical end of an unanswered call), as the tables list them.
TABLE_ROWS: list[tuple[int, str, str]] = [
    (1000, "Canceled", "canceled"),
    (1010, "Canceled (Out Of Credits)", "failed"),
    (1020, "Canceled (Simultaneous dial limit reached)", "failed"),
    (2000, "Invalid Destination Address", "failed"),
    (2010, "Destination Out Of Service", "failed"),
    (2020, "Endpoint Not Registered", "failed"),
    (2030, "Destination Country Barred", "failed"),
    (2040, "Destination Number Barred", "failed"),
    (2050, "Destination Prefix Barred", "failed"),
    (2060, "Loop Detected", "failed"),
    (2070, "Violates Media Anchoring", "failed"),
    (3000, "No Answer", "no_answer"),
    (3010, "Busy Line", "busy"),
    (3020, "Rejected", "rejected"),
    (3030, "Unknown Caller ID", "failed"),
    (3040, "Forbidden", "rejected"),
    (3050, "Unallocated number", "failed"),
    (3070, "Request timeout", "failed"),
    (3080, "Internal server error from carrier", "failed"),
    (3090, "Network congestion from carrier", "failed"),
    (3100, "Busy everywhere", "busy"),
    (3110, "Declined", "rejected"),
    (3120, "User does not exist anywhere", "failed"),
    (3130, "Spam block", "failed"),
    (3140, "DNO Caller ID", "failed"),
    (4000, "Normal Hangup", "completed"),
    (4010, "End Of XML Instructions", "completed"),
    (4020, "Multiparty Call Ended", "completed"),
    (4030, "Kicked Out Of Multiparty Call", "completed"),
    (5000, "Network Error", "failed"),
    (5010, "Internal Error", "failed"),
    (5020, "Routing Error", "failed"),
    (5030, "Concurrency Limit Breached", "failed"),
    (6000, "Scheduled Hangup", "completed"),
    (6010, "Ring Timeout Reached", "no_answer"),
    (6020, "Media Timeout", "failed"),
    (7011, "Error Reaching Answer URL", "failed"),
    (7012, "Error Reaching Action URL", "failed"),
    (7013, "Error Reaching Transfer URL", "failed"),
    (7014, "Error Reaching Redirect URL", "failed"),
    (7022, "Invalid Action URL", "failed"),
    (7023, "Invalid Transfer URL", "failed"),
    (7024, "Invalid Redirect URL", "failed"),
    (7032, "Invalid Method For Action URL", "failed"),
    (7033, "Invalid Method For Transfer URL", "failed"),
    (7034, "Invalid Method For Redirect URL", "failed"),
    (8011, "Invalid Answer XML", "failed"),
    (8012, "Invalid Action XML", "failed"),
    (8013, "Invalid Transfer XML", "failed"),
    (8014, "Invalid Redirect XML", "failed"),
    (9000, "Lost Race", "canceled"),
    (9100, "Machine Detected", "completed"),
    (9110, "Confirm Key Challenge Failed", "no_answer"),
]

#: The Vobiz page's textual SIP hangup causes (``HangupCause``), with the end of an unanswered call.
SIP_ROWS: list[tuple[str, str]] = [
    ("NORMAL_CLEARING", "completed"),
    ("USER_BUSY", "busy"),
    ("NO_ANSWER", "no_answer"),
    ("ORIGINATOR_CANCEL", "canceled"),
    ("CALL_REJECTED", "rejected"),
    ("REJECTED", "rejected"),
    ("INVALID_NUMBER", "failed"),
    ("UNALLOCATED_NUMBER", "failed"),
    ("SERVICE_UNAVAILABLE", "failed"),
    ("SERVER_ERROR", "failed"),
    ("MEDIA_TIMEOUT", "failed"),
    ("PROTOCOL_ERROR", "failed"),
    ("NETWORK_OUT_OF_ORDER", "failed"),
    ("DESTINATION_OUT_OF_ORDER", "failed"),
    ("NORMAL_TEMPORARY_FAILURE", "failed"),
    ("SWITCH_CONGESTION", "failed"),
]

#: A Hangup with no evidence of an answer: empty AnswerTime, nothing billed (fields of the Vobiz page).
UNANSWERED = {
    "CallUUID": "c-1",
    "Event": "Hangup",
    "Direction": "outbound",
    "CallStatus": "completed",  # Vobiz: "always completed" on a Hangup; decides nothing
    "StartTime": "2026-05-29 17:30:01",
    "AnswerTime": "",
    "EndTime": "2026-05-29 17:30:51",
    "BillDuration": "0",
}


def outcome(provider: str, fields: dict[str, Any], content_type: str = FORM) -> str:
    body = orjson.dumps(fields) if content_type == JSON else urllib.parse.urlencode(fields).encode()
    source = Source(name=provider, provider=provider, verify=False)
    delivery = Delivery(source, body, {"content-type": content_type}, f"http://testserver/webhooks/{provider}", 0.0)
    (event,) = PROVIDERS[provider].normalize(delivery)
    return event.event.value


@pytest.mark.parametrize("provider", ["plivo", "vobiz"])
@pytest.mark.parametrize(("code", "name", "expected"), TABLE_ROWS, ids=[f"{c}" for c, _, _ in TABLE_ROWS])
def test_each_table_row_by_code(provider: str, code: int, name: str, expected: str) -> None:
    """``HangupCauseCode`` alone decides an unanswered call's end, whatever CallStatus says."""
    assert outcome(provider, {**UNANSWERED, "HangupCauseCode": str(code)}) == expected


@pytest.mark.parametrize("provider", ["plivo", "vobiz"])
@pytest.mark.parametrize(("code", "name", "expected"), TABLE_ROWS, ids=[n for _, n, _ in TABLE_ROWS])
def test_each_table_row_by_name(provider: str, code: int, name: str, expected: str) -> None:
    """``HangupCauseName`` alone (the CDR's and the trunk's spelling) decides the same end."""
    assert outcome(provider, {**UNANSWERED, "HangupCauseName": name}) == expected


@pytest.mark.parametrize(("cause", "expected"), SIP_ROWS, ids=[c for c, _ in SIP_ROWS])
def test_each_sip_hangup_cause(cause: str, expected: str) -> None:
    """The textual ``HangupCause`` of the Vobiz SIP table, when no code is sent."""
    assert outcome("vobiz", {**UNANSWERED, "HangupCause": cause}) == expected


def test_code_wins_over_the_sip_cause_text() -> None:
    """The code is the published table's verdict; the SIP text is the layer below (3010 Busy Line although the
    B2BUA said NORMAL_CLEARING)."""
    assert outcome("plivo", {**UNANSWERED, "HangupCauseCode": "3010", "HangupCause": "NORMAL_CLEARING"}) == "busy"


def test_unknown_code_zero_leaves_the_decision_to_the_name_and_status() -> None:
    """Code 0 "Unknown" says nothing: the cause text, then CallStatus, decide; with neither, no_answer."""
    assert outcome("plivo", {**UNANSWERED, "HangupCauseCode": "0", "HangupCause": "USER_BUSY"}) == "busy"
    assert outcome("plivo", {**UNANSWERED, "HangupCauseCode": "0", "CallStatus": "failed"}) == "failed"
    assert outcome("plivo", {**UNANSWERED, "HangupCauseCode": "0", "HangupCause": "UNKNOWN"}) == "no_answer"


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        ({"AnswerTime": "2026-05-29 17:30:09"}, "completed"),
        ({"BillDuration": "60"}, "completed"),
        ({"Billsec": "3"}, "completed"),
        ({"Duration": "8", "RingTime": "5"}, "completed"),  # trunk: Duration is ring + talk time
        ({"Duration": "8", "RingTime": "8"}, "busy"),  # rang 8 s, talked 0 s
        ({"Duration": "30"}, "busy"),  # a callback's Duration is not defined as time connected
        ({"BillDuration": "0", "Billsec": "0"}, "busy"),
    ],
    ids=["answer-time", "bill-duration", "billsec", "duration-less-ring", "all-ring", "bare-duration", "zero-billed"],
)
def test_answer_evidence_beats_the_cause(evidence: dict[str, str], expected: str) -> None:
    """Every duration field that means time connected ends the call completed, even with a busy cause
    (cost, duration and cause stay in the extras); the others do not."""
    fields = {**UNANSWERED, "HangupCauseCode": "3010", "HangupCauseName": "Busy Line", **evidence}
    assert outcome("vobiz", fields) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [("busy", "busy"), ("no-answer", "no_answer"), ("cancel", "canceled"), ("timeout", "failed"), ("failed", "failed")],
)
def test_call_status_decides_when_no_cause_is_sent(status: str, expected: str) -> None:
    """Plivo's hangup CallStatus values for outbound calls; ``timeout`` is a carrier or network failure."""
    assert outcome("plivo", {**UNANSWERED, "CallStatus": status}) == expected


def test_nothing_known_is_no_answer() -> None:
    """No answer evidence, no cause, CallStatus completed (as Vobiz always sends): nobody answered."""
    assert outcome("vobiz", UNANSWERED) == "no_answer"

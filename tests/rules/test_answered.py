"""A decision's JSON is built once and serves the log row, the reply and the remembered answer: it
must be exactly what the model serialises, and never outlive a change to the decision."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import orjson

from gateway.channels.base import json_reply
from gateway.rules.vocabulary import Banner, Decision, Matched, Reason, Target, plain_json


def _decision() -> Decision:
    return Decision(
        contact_id="0b9f6c1e-3d4a-4f7e-9a51-6f0c2d1e8b7a",
        action="deflect",
        target=Target(type="voicemail", id="caution-team"),
        flagged=True,
        banner=Banner(
            severity="danger", text="Écrivez-nous — «merci» ☎", restriction_ids=[7, 3], review_due=date(2027, 1, 31)
        ),
        customer_message="Please write to us at 1 High Street.",
        matched=Matched(customer_ids=[12, 4], case_id=9),
        reasons=[Reason(source="restriction", id="7", because="written contact only")],
        ruleset_version=3,
        received_at=datetime(2026, 11, 26, 10, 15, 30, 123456, tzinfo=UTC),
    )


def test_the_answer_is_what_the_model_serialises_and_is_built_once():
    decision = _decision()
    answered = decision.answered()
    assert answered == decision.model_dump(mode="json")
    assert decision.answered() is answered
    assert orjson.dumps(answered).decode() == decision.model_dump_json()


def test_changing_a_field_drops_the_answer_built_before():
    decision = _decision()
    decision.answered()
    decision.received_at = datetime(2026, 11, 27, tzinfo=UTC)
    decision.flagged = False
    assert decision.answered() == decision.model_dump(mode="json")
    assert decision.answered()["flagged"] is False


def test_a_copy_with_changes_is_answered_afresh_and_equality_ignores_the_answer():
    decision = _decision()
    decision.answered()
    held = decision.model_copy(update={"action": "hold"})
    assert held.answered()["action"] == "hold"
    assert decision.answered()["action"] == "deflect"
    assert _decision() == decision  # one has built its answer, the other not
    assert held != decision


def test_the_reply_is_the_models_own_json_with_its_status():
    decision = _decision()
    for created, status in ((True, 201), (False, 200)):
        reply = json_reply(decision, created)
        assert reply.status == status
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
        assert reply.body == decision.model_dump_json().encode()


def test_text_the_fast_encoder_refuses_is_still_answered():
    decision = _decision()
    decision.customer_message = "half a pair: \ud800"  # only malformed input can carry one
    reply = json_reply(decision, True)
    assert reply.status == 201
    assert json.loads(reply.text) == decision.answered()


def test_the_json_is_serialised_once_and_dropped_with_the_answer():
    decision = _decision()
    body = decision.answered_json()
    assert body == decision.model_dump_json().encode()
    assert decision.answered_json() is body
    decision.flagged = False
    assert decision.answered_json() == decision.model_dump_json().encode()
    copied = decision.model_copy(update={"action": "hold"})
    assert orjson.loads(copied.answered_json())["action"] == "hold"


def test_a_stamped_decision_has_json_of_its_own():
    template = _decision()
    template.answered_json()
    at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    stamped = template.stamped("1d2c3b4a-0000-4000-8000-000000000001", at)
    assert stamped.answered_json() == stamped.model_dump_json().encode()
    assert orjson.loads(stamped.answered_json())["contact_id"] == "1d2c3b4a-0000-4000-8000-000000000001"
    assert orjson.loads(template.answered_json())["contact_id"] == template.contact_id


def test_a_template_is_cut_once_and_text_holding_a_marker_is_serialised_whole():
    template = _decision()
    template.stamped("a", datetime(2026, 11, 27, tzinfo=UTC))
    assert len(template.__pydantic_private__["_cut"]) == 3  # the pieces are kept and used
    at = datetime(2026, 11, 27, 9, tzinfo=UTC)
    for text, cut in (("Write to us \u2063contact-id\u2063 today", 3), ('Quoted: "\u2063contact-id\u2063', 0)):
        marked = _decision().model_copy(update={"customer_message": text})
        stamped = marked.stamped("b", at)
        assert stamped.answered_json() == stamped.model_dump_json().encode()
        assert len(marked.__pydantic_private__["_cut"]) == cut  # () cannot be cut: remembered, not tried again


def test_json_a_store_may_refuse_is_never_taken_as_plain_stamped_or_not():
    """A stamped decision's JSON is known plain from its template, looked at once; a template whose
    text holds NUL (escaped as \\u0000 in JSON) is not cut, and each decision stamped from it is
    looked at on its own; a field set afterwards makes it looked at again."""
    at = datetime(2026, 11, 27, 9, tzinfo=UTC)
    clean = _decision().stamped("c", at)
    assert clean.__pydantic_private__["_plain"] is True
    assert clean.answered_json_if_plain() == clean.model_dump_json().encode()
    for text in ("a NUL: \x00", "a lone half of a pair: \ud800"):
        unclean = _decision().model_copy(update={"customer_message": text})
        stamped = unclean.stamped("d", at)
        assert unclean.__pydantic_private__["_cut"] == ()
        assert stamped.answered_json_if_plain() is None
    assert _decision().stamped("an id with a NUL \x00", at).answered_json_if_plain() is None  # the id is looked at too
    clean.customer_message = "now \x00 with a NUL"
    assert clean.answered_json_if_plain() is None
    # A backslash in the text looks so: the record is looked at again, and cleaned if need be.
    assert plain_json(b'{"a": "\\\\ud is a backslash and text"}') is False
    assert plain_json(_decision().answered_json())

"""Unit tests for ``<Dial><Client>``: the identity as text or ``<Identity>``, custom ``<Parameter>``, attributes,
Twilio's 31105 for a bad identity, and mixing with ``<Number>``/``<Sip>``."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from twiml.errors import CLIENT_INVALID_NAME, SCHEMA_VALIDATION, VERB_NOT_SUPPORTED, TwimlError
from twiml.parse import CHILDREN, NOUNS, parse
from twiml.schema import ELEMENTS, MAX_CLIENT_IDENTITY, UNSUPPORTED
from twiml.verbs import MAX_DIAL_NOUNS, Client, Dial, Number, Sip


def dial_of(document: str) -> Dial:
    """The one ``<Dial>`` of ``document`` (a whole document, or the inside of ``<Response>``)."""
    if not document.lstrip().startswith(("<?xml", "<Response")):
        document = f"<Response>{document}</Response>"
    response = parse(document)
    [verb] = response.verbs
    assert isinstance(verb, Dial)
    return verb


def warnings_of(document: str) -> list[tuple[int, str]]:
    return [(w.code, w.message) for w in parse(f"<Response>{document}</Response>").warnings]


def error_of(document: str) -> TwimlError:
    with pytest.raises(TwimlError) as info:
        parse(f"<Response>{document}</Response>")
    return info.value


# --- the identity ------------------------------------------------------------------------------------------------


def test_identity_as_text_with_defaults() -> None:
    r = VoiceResponse()
    r.dial().client("alice")
    assert dial_of(str(r)).nouns == (
        Client(
            identity="alice",
            parameters=(),
            url=None,
            method="POST",
            status_callback=None,
            status_callback_method="POST",
            status_callback_event=("completed",),
        ),
    )
    assert parse(str(r)).warnings == ()


def test_identity_text_is_stripped() -> None:
    assert dial_of("<Dial><Client>\n    alice_01\n  </Client></Dial>").nouns == (Client(identity="alice_01"),)


def test_identity_element_with_parameters() -> None:
    r = VoiceResponse()
    client = r.dial().client()
    client.identity("alice")
    client.parameter(name="FirstName", value="Alice")
    client.parameter(name="Ticket", value="42 & counting")
    verb = dial_of(str(r))
    assert verb.nouns == (
        Client(identity="alice", parameters=(("FirstName", "Alice"), ("Ticket", "42 & counting"))),
    )
    assert parse(str(r)).warnings == ()


def test_parameters_keep_document_order_repeats_and_empty_values() -> None:
    doc = (
        "<Dial><Client><Parameter name='b' value='2'/><Identity>bob</Identity><Parameter name='a'/>"
        "<Parameter name='b' value=''/></Client></Dial>"
    )
    assert dial_of(doc).nouns == (Client(identity="bob", parameters=(("b", "2"), ("a", ""), ("b", ""))),)


def test_text_identity_with_parameters() -> None:
    doc = "<Dial><Client>carol<Parameter name='k' value='v'/></Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="carol", parameters=(("k", "v"),)),)


def test_identity_of_exactly_256_characters_is_accepted() -> None:
    identity = "a" * MAX_CLIENT_IDENTITY
    assert dial_of(f"<Dial><Client>{identity}</Client></Dial>").nouns == (Client(identity=identity),)
    assert MAX_CLIENT_IDENTITY == 256


def test_identity_may_hold_punctuation_and_non_ascii() -> None:
    doc = "<Dial><Client>agent.7-x_y@support</Client><Client><Identity>zoë</Identity></Client></Dial>"
    assert [n.identity for n in dial_of(doc).nouns if isinstance(n, Client)] == ["agent.7-x_y@support", "zoë"]


# --- attributes ----------------------------------------------------------------------------------------------------


def test_all_attributes() -> None:
    r = VoiceResponse()
    r.dial().client(
        "alice",
        url="/whisper",
        method="get",
        status_callback_event="initiated ringing answered completed",
        status_callback="https://example.com/status",
        status_callback_method="get",
    )
    assert dial_of(str(r)).nouns == (
        Client(
            identity="alice",
            url="/whisper",
            method="GET",
            status_callback="https://example.com/status",
            status_callback_method="GET",
            status_callback_event=("initiated", "ringing", "answered", "completed"),
        ),
    )


def test_status_callback_events_comma_separated_without_repeats() -> None:
    [client] = dial_of("<Dial><Client statusCallbackEvent='ringing,answered ringing'>a</Client></Dial>").nouns
    assert isinstance(client, Client) and client.status_callback_event == ("ringing", "answered")


def test_empty_urls_mean_not_given() -> None:
    [client] = dial_of("<Dial><Client url='' statusCallback=' '>a</Client></Dial>").nouns
    assert isinstance(client, Client) and client.url is None and client.status_callback is None


@pytest.mark.parametrize(
    ("attribute", "needle"),
    [
        pytest.param('method="PUT"', "expected GET or POST", id="method"),
        pytest.param('statusCallbackMethod="DELETE"', "expected GET or POST", id="status-method"),
        pytest.param('statusCallbackEvent="answered hungup"', "expected one or more of", id="events"),
    ],
)
def test_bad_attribute_values_warn_and_use_the_default(attribute: str, needle: str) -> None:
    doc = f"<Dial><Client {attribute}>alice</Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice"),)
    [(code, message)] = warnings_of(doc)
    assert code == SCHEMA_VALIDATION
    assert message.startswith("<Client> attribute ") and needle in message and message.endswith("default was used")


def test_unknown_attribute_is_a_warning_and_ignored() -> None:
    doc = "<Dial><Client sendDigits='1' statuscallback='/s'>alice</Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice"),)
    assert warnings_of(doc) == [
        (SCHEMA_VALIDATION, "<Client> does not allow the attribute sendDigits; it was ignored"),
        (SCHEMA_VALIDATION,
         "<Client> does not allow the attribute statuscallback (did you mean statusCallback?); it was ignored"),
    ]


def test_client_notification_url_is_accepted_and_ignored() -> None:
    doc = "<Dial><Client clientNotificationUrl='https://example.com/n'>alice</Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice"),)
    assert warnings_of(doc) == [
        (SCHEMA_VALIDATION, "<Client> attribute clientNotificationUrl is not supported by softswitch and was ignored")
    ]


# --- a bad identity fails the document: Twilio's 31105 "Invalid client name" ----------------------------------------


@pytest.mark.parametrize(
    ("client", "needle"),
    [
        pytest.param("<Client/>", 'identity "" is empty', id="empty"),
        pytest.param("<Client>  \n </Client>", 'identity "" is empty', id="blank"),
        pytest.param("<Client><Identity/></Client>", 'identity "" is empty', id="empty-identity"),
        pytest.param("<Client><Parameter name='a' value='b'/></Client>", 'identity "" is empty', id="params-only"),
        pytest.param(f"<Client>{'b' * 257}</Client>", "is 257 characters long, more than 256", id="too-long"),
        pytest.param(
            f"<Client><Identity>{'c' * 300}</Identity></Client>", "is 300 characters long", id="identity-too-long"
        ),
        pytest.param("<Client>ali ce</Client>", "contains whitespace or a control character (U+0020)", id="space"),
        pytest.param("<Client>ali\tce</Client>", "(U+0009)", id="tab"),
        pytest.param("<Client><Identity>ali\nce</Identity></Client>", "(U+000A)", id="newline"),
        pytest.param("<Client>ali\u00a0ce</Client>", "(U+00A0)", id="nbsp"),
        pytest.param("<Client>ali\u0085ce</Client>", "(U+0085)", id="c1-control"),
        pytest.param("<Client>ali&#x7f;ce</Client>", "(U+007F)", id="delete"),
    ],
)
def test_bad_identity_is_error_31105(client: str, needle: str) -> None:
    error = error_of(f"<Say>first</Say><Dial><Number>+15550100</Number>{client}</Dial>")
    assert error.code == CLIENT_INVALID_NAME == 31105
    assert error.message.startswith("<Client> identity ") and needle in error.message, error.message
    assert error.line == 1


def test_error_names_the_line_of_the_client() -> None:
    doc = "<Response>\n  <Dial>\n    <Client>\n      bad name\n    </Client>\n  </Dial>\n</Response>"
    with pytest.raises(TwimlError) as info:
        parse(doc)
    assert (info.value.code, info.value.line) == (31105, 3)
    assert info.value.message == '<Client> identity "bad name" contains whitespace or a control character (U+0020)'


# --- children: <Identity>, <Parameter>, anything else -------------------------------------------------------------


def test_text_beside_identity_and_a_second_identity_warn_and_the_first_identity_wins() -> None:
    doc = "<Dial><Client>text<Identity>first</Identity><Identity>second</Identity></Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="first"),)
    [(code, message)] = warnings_of(doc)
    assert code == SCHEMA_VALIDATION and "only the first <Identity> is used" in message


def test_parameter_without_a_name_is_skipped_with_a_warning() -> None:
    doc = ("<Dial><Client>alice<Parameter value='x'/><Parameter name=' ' value='y'/><Parameter name='n'/>"
           "</Client></Dial>")
    assert dial_of(doc).nouns == (Client(identity="alice", parameters=(("n", ""),)),)
    assert warnings_of(doc) == [(SCHEMA_VALIDATION, "<Parameter> has no name; it was skipped")] * 2


def test_parameter_unknown_attribute_text_and_children_warn() -> None:
    doc = "<Dial><Client>alice<Parameter name='a' value='b' colour='red'>text<Say>x</Say></Parameter></Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice", parameters=(("a", "b"),)),)
    assert warnings_of(doc) == [
        (SCHEMA_VALIDATION, "<Parameter> does not allow the attribute colour; it was ignored"),
        (SCHEMA_VALIDATION, "<Say> is not allowed inside <Parameter>; it was skipped"),
        (SCHEMA_VALIDATION, "text inside <Parameter> was ignored"),
    ]


def test_other_children_of_client_and_identity_are_skipped() -> None:
    doc = "<Dial><Client><Number>+1</Number><Identity a='1'>ali<Pause/>ce</Identity><Foo/></Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice"),)
    assert warnings_of(doc) == [
        (SCHEMA_VALIDATION, "<Number> is not allowed inside <Client>; it was skipped"),
        (SCHEMA_VALIDATION, "<Identity> does not allow the attribute a; it was ignored"),
        (SCHEMA_VALIDATION, "<Pause> is not allowed inside <Identity>; it was skipped"),
        (SCHEMA_VALIDATION, "unknown element <Foo>; it was skipped"),
    ]


def test_identity_and_client_outside_their_parents_are_misplaced() -> None:
    doc = "<Identity>alice</Identity><Gather><Client>bob</Client></Gather><Dial><Identity>x</Identity>+1</Dial>"
    response = parse(f"<Response>{doc}</Response>")
    assert [type(v).__name__ for v in response.verbs] == ["Gather", "Dial"]
    assert [(w.code, w.message) for w in response.warnings] == [
        (SCHEMA_VALIDATION, "<Identity> is not allowed inside <Response>; it was skipped"),
        (13320, "<Client> is not allowed inside <Gather>; it was skipped"),
        (13215, "<Identity> is not allowed inside <Dial>; it was skipped"),
    ]


# --- in a <Dial> ---------------------------------------------------------------------------------------------------


def test_client_mixes_with_number_and_sip_in_document_order() -> None:
    r = VoiceResponse()
    d = r.dial(sequential=True)
    d.number("+15550100")
    d.client("alice", status_callback_event="answered")
    d.sip("sip:bob@example.com")
    c = d.client()
    c.identity("carol")
    c.parameter(name="k", value="v")
    verb = dial_of(str(r))
    assert verb.sequential
    assert verb.nouns == (
        Number(number="+15550100"),
        Client(identity="alice", status_callback_event=("answered",)),
        Sip(uri="sip:bob@example.com"),
        Client(identity="carol", parameters=(("k", "v"),)),
    )


def test_dial_text_beside_a_client_is_ignored() -> None:
    doc = "<Dial>+1555<Client>alice</Client></Dial>"
    assert dial_of(doc).nouns == (Client(identity="alice"),)
    assert warnings_of(doc) == [
        (SCHEMA_VALIDATION, "<Dial> has both a number as text and nested nouns; the text was ignored")
    ]


def test_ten_nouns_in_all_is_the_limit_whatever_their_kinds() -> None:
    nouns = "".join(f"<Client>c{i}</Client><Number>+155501000{i}</Number>" for i in range(5))
    assert len(dial_of(f"<Dial>{nouns}</Dial>").nouns) == MAX_DIAL_NOUNS == 10
    doc = f"<Dial>{nouns}<Client>eleventh</Client><Sip>sip:twelfth@example.com</Sip></Dial>"
    verb = dial_of(doc)
    assert len(verb.nouns) == 10 and Client(identity="eleventh") not in verb.nouns
    assert warnings_of(doc) == [(13250, "<Dial> has 12 nouns; only the first 10 are rung")]


def test_a_bad_client_fails_even_beside_good_nouns() -> None:
    assert error_of("<Dial><Sip>sip:a@example.com</Sip><Client>a b</Client></Dial>").code == 31105


# --- no longer unsupported -------------------------------------------------------------------------------------------


def test_client_is_no_longer_13750() -> None:
    assert "Client" not in UNSUPPORTED["Dial"]
    response = parse("<Response><Dial><Client>alice</Client></Dial></Response>")
    assert response.warnings == ()
    assert all(w.code != VERB_NOT_SUPPORTED for w in response.warnings)


def test_other_dial_nouns_are_still_13750() -> None:
    error = error_of("<Dial><Client>alice</Client><Sim>DE1</Sim></Dial>")
    assert error.code == VERB_NOT_SUPPORTED and "<Sim> is a Twilio noun of <Dial>" in error.message


def test_tables_know_client() -> None:
    assert NOUNS["Client"] is Client
    assert "Client" in CHILDREN["Dial"]
    assert CHILDREN["Client"] == {"Identity", "Parameter"}
    assert {"Client", "Identity", "Parameter"} <= set(ELEMENTS)
    assert set(ELEMENTS["Client"].attributes) == {
        "url", "method", "statusCallbackEvent", "statusCallback", "statusCallbackMethod",
    }  # fmt: skip


def test_client_is_frozen() -> None:
    client = Client(identity="alice")
    with pytest.raises(AttributeError):
        client.identity = "bob"  # type: ignore[misc]

"""PII redaction: e-mails and public IPs replaced (private ranges kept), counts, tokens."""

import pytest

from filters.pii import Pii, is_public_ip
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table
from pipeline.stats import StageStats


def redact(text, **params):
    stats = StageStats()
    out = Pii(Pii.Params(**params)).process_document(Document(id="d", text=text), stats)
    return out.text, dict(stats.counters)


def test_redacts_emails_and_public_ips_and_counts_them():
    text = ("Write to jane.doe+news@mail.example.co.uk or BOB@EXAMPLE.ORG. Our server 8.8.4.4:53 and "
            "2a00:1450:4001:81b::200e answer; the router at 192.168.1.1 does not.")
    out, counts = redact(text)
    assert out == ("Write to email@example.com or email@example.com. Our server 192.0.2.1:53 and "
                   "2001:db8::1 answer; the router at 192.168.1.1 does not.")
    assert counts == {"emails_replaced": 2, "ipv4_replaced": 1, "ipv6_replaced": 1, "documents_redacted": 1}
    assert redact(out) == (out, {})  # the placeholders are not personal: redacting twice changes nothing


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "127.0.0.1", "172.16.5.4", "100.64.0.1",
                                     "169.254.1.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "::1", "fe80::1"])
def test_private_and_special_addresses_are_kept(address):
    assert not is_public_ip(address)
    assert redact(f"host {address} here") == (f"host {address} here", {})


@pytest.mark.parametrize("text", [
    "version 1.2.3.4.5 and 999.1.1.1 and 1.2.3",  # not IPv4 addresses
    "logo@2x.png, user@localhost, a@b, @handle",  # not e-mail addresses
    "at 12:30:45 the std::vector and cafe::face",  # not IPv6 addresses
    "", " \n ", "Привет, мир! 你好，世界。", "one line without any address",
])
def test_non_pii_is_left_alone(text):
    assert redact(text) == (text, {})


def test_configurable_tokens_and_switching_off():
    text = "Mail a@example.com from 8.8.8.8."
    assert redact(text, email_replacement="<EMAIL>", ip_replacement="<IP>")[0] == "Mail <EMAIL> from <IP>."
    assert redact(text, email_replacement=None)[0] == "Mail a@example.com from 192.0.2.1."
    assert redact(text, ip_replacement=None)[0] == "Mail email@example.com from 8.8.8.8."


def test_process_counts_over_a_partition():
    docs = [Document(id=str(i), text=f"Contact person{i}@example.com or 1.1.1.{i}") for i in range(1, 4)]
    docs.append(Document(id="clean", text="Nothing here."))
    result = Pii().process(documents_to_table(docs, DOCUMENT_SCHEMA))
    assert result.kept.num_rows == 4 and result.rejected.num_rows == 0
    assert result.kept["text"].to_pylist()[0] == "Contact email@example.com or 192.0.2.1"
    assert result.stats.counters == {"emails_replaced": 3, "ipv4_replaced": 3, "documents_redacted": 3}

#!/usr/bin/python3
"""make_seeds.py -- write the seed corpora of the wire fuzzers.

Real DNS queries (tests/fuzz/corpus/wire_query/) and upstream-style answers
(tests/fuzz/corpus/wire_forms/: ID 0, QR RD RA, OPT with DO, DNSSEC records
included, as libunbound hands them back), built with dnspython so the seeds
do not share code with the parser they feed.  The output is deterministic:
running it again rewrites the same files.

    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HERE = os.path.dirname(os.path.abspath(__file__))
SIG = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="


def write(corpus, name, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def query(qname, qtype, edns=True, do=False, flags=dns.flags.RD, opcode=dns.opcode.QUERY, options=None, qid=0x1234):
    m = dns.message.make_query(qname, qtype, use_edns=0 if edns else False,
                               want_dnssec=do, payload=1232, options=options or [])
    m.id = qid
    m.flags = flags
    m.set_opcode(opcode)
    return m.to_wire()


def rr(name, ttl, rdtype, *texts):
    name = dns.name.from_text(name)  # absolute: from_text in rrset would keep it relative
    return dns.rrset.from_text(name, ttl, dns.rdataclass.IN, rdtype, *texts)


def rrsig(name, ttl, covered, labels):
    return rr(name, ttl, "RRSIG",
              "%s 13 %d %d 20300101000000 20200101000000 4242 example.com. %s" % (covered, labels, ttl, SIG))


def answer(qname, qtype, rcode=dns.rcode.NOERROR, an=(), ns=(), ar=()):
    q = dns.message.make_query(qname, qtype, use_edns=0, want_dnssec=True, payload=1232)
    m = dns.message.make_response(q)
    m.id = 0
    m.flags = dns.flags.QR | dns.flags.RD | dns.flags.RA
    m.set_rcode(rcode)
    m.answer.extend(an)
    m.authority.extend(ns)
    m.additional.extend(ar)
    return m.to_wire()


def queries():
    write("wire_query", "a_edns_do", query("www.example.com", "A", do=True))
    write("wire_query", "aaaa_plain", query("Mail.Example.NET", "AAAA", edns=False))
    write("wire_query", "mx_cd", query("example.org", "MX", flags=dns.flags.RD | dns.flags.CD))
    write("wire_query", "any", query("example.com", "ANY"))
    write("wire_query", "axfr", query("example.com", "AXFR", edns=False))
    write("wire_query", "root_ns", query(".", "NS", do=True))
    write("wire_query", "txt_cookie", query("_dmarc.example.com", "TXT",
                                            options=[dns.edns.GenericOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")]))
    write("wire_query", "notify", query("example.com", "SOA", opcode=dns.opcode.NOTIFY, flags=dns.flags.AA))
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    write("wire_query", "longest_name", query(long_name, "A"))
    # EDNS version 1: BADVERS.
    m = dns.message.make_query("example.com", "A", use_edns=1, payload=4096)
    m.id = 7
    write("wire_query", "badvers", m.to_wire())
    # Two OPT records: FORMERR.
    base = query("example.com", "A", edns=False)
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    two = bytearray(base + opt + opt)
    struct.pack_into("!H", two, 10, 2)
    write("wire_query", "two_opts", bytes(two))
    # A question that is a compression pointer to itself.
    write("wire_query", "pointer_loop", struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01")


def answers():
    write("wire_forms", "positive_signed", answer(
        "www.example.com", "A",
        an=[rr("www.example.com", 300, "A", "192.0.2.1", "192.0.2.2"), rrsig("www.example.com", 300, "A", 3)],
        ns=[rr("example.com", 86400, "NS", "ns1.example.com.", "ns2.example.com.")],
        ar=[rr("ns1.example.com", 3600, "A", "192.0.2.53"), rr("ns2.example.com", 3600, "AAAA", "2001:db8::53")]))
    write("wire_forms", "nxdomain_nsec", answer(
        "nx.example.com", "A", rcode=dns.rcode.NXDOMAIN,
        ns=[rr("example.com", 300, "SOA", "ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300"),
            rrsig("example.com", 300, "SOA", 2),
            rr("example.com", 300, "NSEC", "a.example.com. A NS SOA RRSIG NSEC DNSKEY"),
            rrsig("example.com", 300, "NSEC", 2)]))
    write("wire_forms", "nodata_nsec3", answer(
        "example.com", "TXT",
        ns=[rr("example.com", 600, "SOA", "ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 60"),
            rr("2vptu5timamqttgl4luu9kg21e0aor3s.example.com", 60, "NSEC3",
               "1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3t A RRSIG"),
            rrsig("2vptu5timamqttgl4luu9kg21e0aor3s.example.com", 60, "NSEC3", 2)]))
    write("wire_forms", "cname_chain", answer(
        "www.example.org", "A",
        an=[rr("www.example.org", 120, "CNAME", "web.example.org."),
            rr("web.example.org", 60, "CNAME", "cdn.example.net."),
            rr("cdn.example.net", 30, "A", "198.51.100.7")]))
    write("wire_forms", "mx_with_glue", answer(
        "example.com", "MX",
        an=[rr("example.com", 3600, "MX", "10 mx1.example.com.", "20 mx2.example.com.")],
        ar=[rr("mx1.example.com", 3600, "A", "192.0.2.25"), rr("mx2.example.com", 3600, "A", "192.0.2.26")]))
    write("wire_forms", "srv", answer(
        "_sip._tcp.example.com", "SRV",
        an=[rr("_sip._tcp.example.com", 600, "SRV", "10 20 5060 sip.example.com.")]))
    write("wire_forms", "txt_spf", answer(
        "example.com", "TXT",
        an=[rr("example.com", 300, "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"', '"hello" "world"')]))
    write("wire_forms", "ptr", answer(
        "1.2.0.192.in-addr.arpa", "PTR",
        an=[rr("1.2.0.192.in-addr.arpa", 86400, "PTR", "host.example.com.")]))
    write("wire_forms", "dnskey_ds", answer(
        "example.com", "DNSKEY",
        an=[rr("example.com", 3600, "DNSKEY", "257 3 13 " + SIG), rrsig("example.com", 3600, "DNSKEY", 2)]))
    write("wire_forms", "servfail_empty", answer("broken.example", "A", rcode=dns.rcode.SERVFAIL))


if __name__ == "__main__":
    queries()
    answers()

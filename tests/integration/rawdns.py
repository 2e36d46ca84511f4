#!/usr/bin/env python3
"""rawdns.py -- send hand-made and malformed DNS messages to the daemon.

The integration runner uses it for what dig cannot send: broken headers,
wrong counts, compression loops, garbage, and pipelined TCP.  Each
subcommand prints one line of results and exits 0 when the daemon behaved,
1 otherwise, so the runner can assert on both.
"""
import random
import socket
import struct
import sys
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype


def udp_exchange(host, port, payload, timeout=2.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(payload, (host, port))
    try:
        data, _ = s.recvfrom(65535)
        return data
    except socket.timeout:
        return None
    finally:
        s.close()


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QNAME = b"\x03mx1\x07example\x03com\x00"


def expect_rcode(host, port, payload, rcode, label):
    resp = udp_exchange(host, port, payload)
    if resp is None or len(resp) < 12:
        print(f"{label}: no reply")
        return False
    got = resp[3] & 0x0F
    qid = struct.unpack("!H", resp[:2])[0]
    if got != rcode or not resp[2] & 0x80 or qid != struct.unpack("!H", payload[:2])[0]:
        print(f"{label}: rcode {got} qr {resp[2] >> 7} id {qid:#x}, expected rcode {rcode}")
        return False
    if len(resp) > 512:
        print(f"{label}: reply of {len(resp)} bytes to a client without EDNS")
        return False
    return True


def expect_silence(host, port, payload, label):
    resp = udp_exchange(host, port, payload, timeout=0.5)
    if resp is not None:
        print(f"{label}: got a {len(resp)}-byte reply to a packet that should be dropped")
        return False
    return True


def cmd_malformed(host, port):
    """Every malformed case with its expected outcome."""
    question = QNAME + struct.pack("!HH", 1, 1)
    ok = True
    ok &= expect_silence(host, port, b"\x12\x34\x01", "short header")
    ok &= expect_silence(host, port, b"", "empty datagram")
    ok &= expect_silence(host, port, header(flags=0x8100) + question, "QR set (a response)")
    ok &= expect_rcode(host, port, header(qd=0), 1, "QDCOUNT 0")
    ok &= expect_rcode(host, port, header(qd=2) + question + question, 1, "QDCOUNT 2")
    ok &= expect_rcode(host, port, header(flags=0x1100) + question, 4, "opcode STATUS")
    ok &= expect_rcode(host, port, header(flags=0x2100) + question, 4, "opcode NOTIFY")
    ok &= expect_rcode(host, port, header() + b"\x03mx1\x07exam", 1, "truncated question")
    ok &= expect_rcode(host, port, header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1), 1,
                       "compression pointer loop in question")
    ok &= expect_rcode(host, port, header() + b"\x40" + b"a" * 64 + b"\x00" + struct.pack("!HH", 1, 1), 1,
                       "label longer than 63")
    long_name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"
    ok &= expect_rcode(host, port, header() + long_name + struct.pack("!HH", 1, 1), 1, "name longer than 255")
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4) + b"\x00\x0a\x00\x08"
    ok &= expect_rcode(host, port, header(ar=1) + question + opt, 1, "EDNS option longer than its OPT")
    opt_ok = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    ok &= expect_rcode(host, port, header(ar=2) + question + opt_ok + opt_ok, 1, "two OPT records")
    ok &= expect_rcode(host, port, header(ar=3) + question + opt_ok, 1, "ARCOUNT beyond the packet")
    print("malformed cases:", "all as expected" if ok else "FAILED")
    return ok


def cmd_garbage(host, port, count):
    """Random and bit-flipped packets, then a real query that must still work."""
    rng = random.Random(20261124)
    base = dns.message.make_query("mx1.example.com", "A", want_dnssec=True).to_wire()
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for i in range(count):
        if i % 2:
            pkt = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600)))
        else:
            pkt = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                pkt[rng.randrange(len(pkt))] ^= 1 << rng.randrange(8)
            pkt = bytes(pkt[: rng.randint(0, len(pkt))]) if rng.random() < 0.3 else bytes(pkt)
        s.sendto(pkt, (host, port))
        if i % 200 == 199:
            time.sleep(0.01)
    s.close()
    q = dns.message.make_query("mx1.example.com", "A")
    resp = udp_exchange(host, port, q.to_wire(), timeout=5)
    if resp is None:
        print(f"garbage: no answer to a real query after {count} bad packets")
        return False
    r = dns.message.from_wire(resp)
    if r.rcode() != dns.rcode.NOERROR or not r.answer:
        print(f"garbage: real query got {dns.rcode.to_text(r.rcode())} after {count} bad packets")
        return False
    print(f"garbage: {count} bad packets sent, real query still answered")
    return True


def cmd_pipeline(host, port, names):
    """Several queries on one TCP connection, written at once; every answer must come back."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.create_connection((host, port), timeout=10)
    wanted = {}
    blob = b""
    for i, name in enumerate(names):
        q = dns.message.make_query(name, "A")
        q.id = 1000 + i
        wanted[q.id] = name
        w = q.to_wire()
        blob += struct.pack("!H", len(w)) + w
    s.sendall(blob)
    got = {}
    buf = b""
    deadline = time.time() + 10
    while len(got) < len(wanted) and time.time() < deadline:
        chunk = s.recv(65535)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2:
            n = struct.unpack("!H", buf[:2])[0]
            if len(buf) < 2 + n:
                break
            r = dns.message.from_wire(buf[2 : 2 + n])
            buf = buf[2 + n :]
            got[r.id] = r
    s.close()
    del fam
    missing = [wanted[i] for i in wanted if i not in got]
    if missing:
        print("pipeline: no answer for", ", ".join(missing))
        return False
    for qid, r in got.items():
        if str(r.question[0].name).rstrip(".").lower() != wanted[qid].rstrip(".").lower():
            print(f"pipeline: answer {qid} is for {r.question[0].name}, not {wanted[qid]}")
            return False
    print(f"pipeline: {len(got)} answers on one connection")
    return True


def cmd_flood(host, port, source, count):
    """Send count queries at once from source; print "answered truncated"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(1.0)
    for i in range(count):
        q = dns.message.make_query("mx1.example.com", "A")
        q.id = i
        s.sendto(q.to_wire(), (host, port))
    answered = truncated = 0
    try:
        while True:
            data, _ = s.recvfrom(65535)
            if len(data) >= 12 and data[2] & 0x02:
                truncated += 1
            else:
                answered += 1
    except socket.timeout:
        pass
    s.close()
    print(answered, truncated)
    return True


def cmd_tcpcap(host, port, cap):
    """Open cap connections from one host, then one more: the extra one must
    be closed by the server at once while the first ones still work."""
    conns = [socket.create_connection((host, port), timeout=5) for _ in range(cap)]
    time.sleep(0.3)
    extra = socket.create_connection((host, port), timeout=5)
    extra.settimeout(3)
    try:
        closed = extra.recv(1) == b""
    except (ConnectionResetError, socket.timeout) as e:
        closed = isinstance(e, ConnectionResetError)
    extra.close()
    if not closed:
        print("the connection over the per-client cap stayed open")
        return False
    q = dns.message.make_query("mx1.example.com", "A").to_wire()
    c = conns[0]
    c.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", c.recv(2))[0]
    ok = len(c.recv(n)) > 0
    for c in conns:
        c.close()
    print(f"tcpcap: connection {cap + 1} closed, the first {cap} still answered" if ok else "tcpcap: no answer")
    return ok


def main():
    host, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if cmd == "malformed":
        ok = cmd_malformed(host, port)
    elif cmd == "garbage":
        ok = cmd_garbage(host, port, int(sys.argv[4]))
    elif cmd == "flood":
        ok = cmd_flood(host, port, sys.argv[4], int(sys.argv[5]))
    elif cmd == "tcpcap":
        ok = cmd_tcpcap(host, port, int(sys.argv[4]))
    elif cmd == "pipeline":
        ok = cmd_pipeline(host, port, sys.argv[4:])
    else:
        print("unknown command", cmd)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
